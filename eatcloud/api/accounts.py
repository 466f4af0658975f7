"""Admins and accounts: find them (by e-mail or name, role, status), suspend, reactivate.

A suspension is written twice: to PostgreSQL (``users.suspended_at`` and the reason: what
admins list, what login checks) and then to the account's standing in Redis, which revokes
every session at once and refuses the next request of any token the account holds
(``Authenticator.suspend``). Both writes are idempotent, so a 503 between them is mended by
calling again. Admins are not suspended here (their accounts are made by operators, with
``eatcloud users create-admin``): an admin can neither lock themself out nor lock out another.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from eatcloud.api.deps import Admin, AppSettings, Auth, Id, Pool
from eatcloud.api.limits import Page, Size, offset_of
from eatcloud.api.security import Role
from eatcloud.errors import NotFound, Unprocessable
from eatcloud.postgres import users

router = APIRouter(prefix="/api/v1/admin/users", tags=["admin"])

Status = Literal["ACTIVE", "SUSPENDED"]


class AccountOut(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    status: Status
    created_at: dt.datetime
    suspended_at: dt.datetime | None
    suspension_reason: str | None = Field(description="the admin's note; admins only")


class AccountPage(BaseModel):
    items: list[AccountOut]
    total: int
    page: int
    size: int


class SuspensionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500, description="kept for admins")


def _out(account: users.Account) -> AccountOut:
    return AccountOut(
        id=account.id,
        email=account.email,
        name=account.name,
        role=Role(account.role),
        status="SUSPENDED" if account.suspended_at else "ACTIVE",
        created_at=account.created_at,
        suspended_at=account.suspended_at,
        suspension_reason=account.suspension_reason,
    )


@router.get("", response_model=AccountPage, summary="Accounts, newest first, found and filtered")
async def list_accounts(
    db: Pool,
    who: Admin,
    settings: AppSettings,
    q: Annotated[
        str | None, Query(min_length=1, max_length=100, description="in the e-mail or name")
    ] = None,
    role: Role | None = None,
    status: Status | None = None,
    page: Page = 1,
    size: Size = 20,
) -> AccountPage:
    offset = offset_of(page, size, settings.api.max_page_depth)
    found, total = await users.accounts(
        db,
        text=q,
        role=None if role is None else role.value,
        suspended=None if status is None else status == "SUSPENDED",
        limit=size,
        offset=offset,
    )
    return AccountPage(items=[_out(a) for a in found], total=total, page=page, size=size)


@router.post(
    "/{user_id}/suspend",
    response_model=AccountOut,
    summary="Suspend an account: its sessions end at once, and it cannot log in",
    responses={404: {"description": "no such user"}, 422: {"description": "an admin"}},
)
async def suspend(
    user_id: Id,
    db: Pool,
    who: Admin,
    auth: Auth,
    body: Annotated[SuspensionIn | None, Body()] = None,
) -> AccountOut:
    account = await users.account_by_id(db, user_id)
    if account is None:
        raise NotFound("no such user")
    if account.role == Role.ADMIN:
        raise Unprocessable(
            "admins cannot suspend themselves"
            if account.id == who.user_id
            else "admins cannot be suspended, only customers and managers"
        )
    suspended = await users.suspend(db, account.id, (body.reason if body else None) or None)
    if suspended is None:
        raise NotFound("no such user")
    await auth.suspend(suspended.id)
    return _out(suspended)


@router.post(
    "/{user_id}/reactivate",
    response_model=AccountOut,
    summary="Reactivate a suspended account: it may log in again",
    responses={404: {"description": "no such user"}},
)
async def reactivate(user_id: Id, db: Pool, who: Admin, auth: Auth) -> AccountOut:
    account = await users.reactivate(db, user_id)
    if account is None:
        raise NotFound("no such user")
    await auth.reactivate(account.id)
    return _out(account)
