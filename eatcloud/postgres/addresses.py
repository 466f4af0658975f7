"""Customers' saved delivery addresses in PostgreSQL (a PostGIS point each), with their rules.

The rules: at most ``MAX_ADDRESSES`` per customer; exactly one default while there are any
(the first one saved is the default; deleting the default makes the newest remaining one the
default). Every change runs in one transaction that first locks the customer's ``users`` row,
so two changes of one address book at once take turns and the count and the default stay
right; a partial unique index backs "at most one default" in the schema itself.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from eatcloud.errors import Conflict
from eatcloud.postgres import uuid_or_none

MAX_ADDRESSES = 20

_COLUMNS = """id, label, line, ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon,
              is_default, created_at"""
_POINT = "ST_SetSRID(ST_MakePoint({lon}, {lat}), 4326)::geography"


class AddressBookFull(Conflict):
    slug = "address-book-full"

    def __init__(self) -> None:
        super().__init__(f"at most {MAX_ADDRESSES} addresses may be saved; delete one first")


@dataclass(frozen=True)
class Address:
    id: str
    label: str
    line: str
    lat: float
    lon: float
    is_default: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class DeliveryPoint:
    """What an order needs of a saved address: its text and where it is."""

    line: str
    lat: float
    lon: float


def _address(row: Any) -> Address:
    return Address(**{**dict(row), "id": str(row["id"])})


@asynccontextmanager
async def _book(pool: Any, customer_id: str) -> AsyncIterator[Any]:
    """A connection in a transaction holding the customer's address book (its users row)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", uuid.UUID(customer_id))
        yield conn


async def addresses_of(pool: Any, customer_id: str) -> list[Address]:
    """The customer's addresses, the default first, then newest first."""
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM addresses WHERE customer_id = $1
            ORDER BY is_default DESC, created_at DESC, id DESC""",
        uuid.UUID(customer_id),
    )
    return [_address(row) for row in rows]


async def delivery_point(pool: Any, customer_id: str, address_id: str) -> DeliveryPoint | None:
    """The text and point of one of the customer's own addresses; None for an address that is
    not theirs (or no address at all). Checkout uses it, and so can a delivery-radius check."""
    key = uuid_or_none(address_id)
    row = (
        None
        if key is None
        else await pool.fetchrow(
            """SELECT line, ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon
               FROM addresses WHERE id = $1 AND customer_id = $2""",
            key,
            uuid.UUID(customer_id),
        )
    )
    return None if row is None else DeliveryPoint(row["line"], row["lat"], row["lon"])


async def add(
    pool: Any, customer_id: str, label: str, line: str, lat: float, lon: float, default: bool
) -> Address:
    """A new address; the default when it is the first one or ``default`` is asked for."""
    async with _book(pool, customer_id) as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM addresses WHERE customer_id = $1", uuid.UUID(customer_id)
        )
        if count >= MAX_ADDRESSES:
            raise AddressBookFull()
        default = default or count == 0
        if default:
            await _drop_default(conn, customer_id)
        row = await conn.fetchrow(
            f"""INSERT INTO addresses (id, customer_id, label, line, location, is_default)
                VALUES ($1, $2, $3, $4, {_POINT.format(lat="$5", lon="$6")}, $7)
                RETURNING {_COLUMNS}""",
            uuid.uuid4(),
            uuid.UUID(customer_id),
            label,
            line,
            lat,
            lon,
            default,
        )
    return _address(row)


async def update(
    pool: Any,
    customer_id: str,
    address_id: str,
    *,
    label: str | None,
    line: str | None,
    lat: float | None,
    lon: float | None,
) -> Address | None:
    """The address with the given fields changed (None: unchanged); None for no such address
    of the customer's."""
    key = uuid_or_none(address_id)
    if key is None:
        return None
    lon_now, lat_now = "ST_X(location::geometry)", "ST_Y(location::geometry)"
    point = _POINT.format(lat=f"coalesce($6, {lat_now})", lon=f"coalesce($5, {lon_now})")
    row = await pool.fetchrow(
        f"""UPDATE addresses SET label = coalesce($3, label), line = coalesce($4, line),
                location = {point}
            WHERE id = $1 AND customer_id = $2 RETURNING {_COLUMNS}""",
        key,
        uuid.UUID(customer_id),
        label,
        line,
        lon,
        lat,
    )
    return None if row is None else _address(row)


async def remove(pool: Any, customer_id: str, address_id: str) -> bool:
    """Delete the address (the newest remaining one becomes the default if it was); False for
    no such address of the customer's."""
    key = uuid_or_none(address_id)
    if key is None:
        return False
    async with _book(pool, customer_id) as conn:
        was_default = await conn.fetchval(
            "DELETE FROM addresses WHERE id = $1 AND customer_id = $2 RETURNING is_default",
            key,
            uuid.UUID(customer_id),
        )
        if was_default:
            await conn.execute(
                """UPDATE addresses SET is_default = true
                   WHERE id = (SELECT id FROM addresses WHERE customer_id = $1
                               ORDER BY created_at DESC, id DESC LIMIT 1)""",
                uuid.UUID(customer_id),
            )
    return was_default is not None


async def make_default(pool: Any, customer_id: str, address_id: str) -> Address | None:
    """The address, now the customer's default; None for no such address of the customer's."""
    key = uuid_or_none(address_id)
    if key is None:
        return None
    async with _book(pool, customer_id) as conn:
        exists = await conn.fetchval(
            "SELECT true FROM addresses WHERE id = $1 AND customer_id = $2",
            key,
            uuid.UUID(customer_id),
        )
        if not exists:
            return None
        # Two statements: a unique index is checked row by row, so one UPDATE that moves the
        # flag could see two defaults half way.
        await _drop_default(conn, customer_id)
        row = await conn.fetchrow(
            f"UPDATE addresses SET is_default = true WHERE id = $1 RETURNING {_COLUMNS}", key
        )
    return _address(row)


async def remove_all(conn: Any, customer_id: str) -> None:
    """Every address of the customer (an account being deleted), on ``conn``."""
    await conn.execute("DELETE FROM addresses WHERE customer_id = $1", uuid.UUID(customer_id))


async def _drop_default(conn: Any, customer_id: str) -> None:
    await conn.execute(
        "UPDATE addresses SET is_default = false WHERE customer_id = $1 AND is_default",
        uuid.UUID(customer_id),
    )
