"""A customer's saved delivery addresses; checkout takes one by ``address_id``.

The rules (one default while any exist, the first is the default, deleting the default
promotes the newest remaining one, at most 20) live in ``eatcloud.postgres.addresses``.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from eatcloud.api.deps import Customer, Id, Pool
from eatcloud.errors import NotFound
from eatcloud.postgres import addresses

router = APIRouter(prefix="/api/v1/me/addresses", tags=["profile"])

NO_SUCH = "no such address of yours"
Label = Field(min_length=1, max_length=40, description="e.g. Home, Work")
Line = Field(min_length=1, max_length=300, description="the address as a courier reads it")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddressIn(_In):
    label: str = Label
    line: str = Line
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    is_default: bool = Field(default=False, description="make it the default (the first is)")


class AddressPatch(_In):
    label: str | None = Field(default=None, min_length=1, max_length=40)
    line: str | None = Field(default=None, min_length=1, max_length=300)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class AddressOut(BaseModel):
    id: str
    label: str
    line: str
    lat: float
    lon: float
    is_default: bool
    created_at: dt.datetime


def _out(address: addresses.Address) -> AddressOut:
    return AddressOut(**address.__dict__)


@router.get("", response_model=list[AddressOut], summary="The caller's addresses, default first")
async def list_addresses(who: Customer, db: Pool) -> list[AddressOut]:
    return [_out(a) for a in await addresses.addresses_of(db, who.user_id)]


@router.post(
    "",
    status_code=201,
    response_model=AddressOut,
    summary="Save an address (the first one saved is the default)",
    responses={409: {"description": "20 addresses saved already (address-book-full)"}},
)
async def add_address(body: AddressIn, who: Customer, db: Pool) -> AddressOut:
    return _out(
        await addresses.add(
            db, who.user_id, body.label, body.line, body.lat, body.lon, body.is_default
        )
    )


@router.patch(
    "/{address_id}",
    response_model=AddressOut,
    summary="Change an address's label, text or point",
    responses={404: {"description": NO_SUCH}},
)
async def update_address(address_id: Id, body: AddressPatch, who: Customer, db: Pool) -> AddressOut:
    found = await addresses.update(
        db, who.user_id, address_id, label=body.label, line=body.line, lat=body.lat, lon=body.lon
    )
    if found is None:
        raise NotFound(NO_SUCH)
    return _out(found)


@router.delete(
    "/{address_id}",
    status_code=204,
    summary="Delete an address (if it was the default, the newest remaining one becomes it)",
    responses={404: {"description": NO_SUCH}},
)
async def delete_address(address_id: Id, who: Customer, db: Pool) -> None:
    if not await addresses.remove(db, who.user_id, address_id):
        raise NotFound(NO_SUCH)


@router.post(
    "/{address_id}/default",
    response_model=AddressOut,
    summary="Make an address the default",
    responses={404: {"description": NO_SUCH}},
)
async def make_default(address_id: Id, who: Customer, db: Pool) -> AddressOut:
    found = await addresses.make_default(db, who.user_id, address_id)
    if found is None:
        raise NotFound(NO_SUCH)
    return _out(found)
