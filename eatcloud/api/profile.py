"""The caller's own account: see and edit the profile, change the password, delete the account.

A password change first revokes every other session of the account in Redis (the caller's
own session moves to the account's new generation in the same Lua step:
``Authenticator.keep_only``), then stores the new hash in PostgreSQL, compare-and-set on the
old one, then revokes once more. Revoking first makes a failure between the first two steps
harmless: the other sessions are gone, the password is unchanged, and the same request can
simply be sent again. Revoking after catches a login that verified the old password and
opened its session in between; a login that opens its session later sees the new hash and
gives the session back (``auth.login``).

Deleting an account erases its personal data in PostgreSQL first (``users.erase``: the row
stays, so orders keep their customer id), then revokes its sessions for good
(``Authenticator.close_account``). If the second step fails (503), the caller's session is
still alive and the same DELETE, sent again, finishes it without asking for the password the
account no longer has.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from eatcloud.api.auth import Email
from eatcloud.api.deps import AppSettings, Auth, Caller, Hashing, Pool, Services
from eatcloud.api.security import Principal, Role
from eatcloud.errors import Conflict, Forbidden, NotFound, Unprocessable
from eatcloud.locks import rate_limit
from eatcloud.postgres import users
from eatcloud.settings import Settings

router = APIRouter(prefix="/api/v1/me", tags=["profile"])


class WrongPassword(Forbidden):
    slug = "wrong-password"

    def __init__(self) -> None:
        super().__init__("the password is not this account's")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfileIn(_In):
    name: str | None = Field(default=None, min_length=1, max_length=80)
    email: Email | None = None


class PasswordChange(_In):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class Deletion(_In):
    password: str = Field(min_length=1, max_length=256, description="the account's password")


class Profile(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    created_at: dt.datetime | None


def _profile(user: users.User) -> Profile:
    return Profile(
        id=user.id, email=user.email, name=user.name, role=Role(user.role),
        created_at=user.created_at,
    )  # fmt: skip


async def _account(db: Pool, who: Principal) -> users.User:
    user = await users.user_by_id(db, who.user_id)
    if user is None:
        raise NotFound("the account no longer exists")
    return user


async def _check_password(
    who: Principal, user: users.User, password: str, settings: Settings, services: Services,
    hashing: Hashing,
) -> None:  # fmt: skip
    """``WrongPassword`` unless ``password`` is the account's; tries are rate-limited as
    logins are (a stolen access token must not become a password oracle)."""
    limits, redis = settings.rate_limit, services.redis()
    await rate_limit.take(
        redis, f"password-check:{who.user_id}", limits.login_burst, limits.login_per_minute
    )
    await rate_limit.take(redis, "passwords", limits.password_burst, limits.password_per_minute)
    if not (await hashing.verify(user.password_hash, password)).ok:
        raise WrongPassword()


@router.get("", response_model=Profile, summary="The caller's profile")
async def get_profile(who: Caller, db: Pool) -> Profile:
    return _profile(await _account(db, who))


@router.patch(
    "",
    response_model=Profile,
    summary="Change the caller's name or e-mail",
    responses={409: {"description": "another account has this e-mail (email-taken)"}},
)
async def update_profile(body: ProfileIn, who: Caller, db: Pool) -> Profile:
    try:
        user = await users.update_profile(db, who.user_id, name=body.name, email=body.email)
    except users.EmailTaken as exc:
        raise Conflict("another account has this e-mail") from exc
    if user is None:
        raise NotFound("the account no longer exists")
    return _profile(user)


@router.post(
    "/password",
    status_code=204,
    summary="Change the password: every other session of the account ends at once",
    responses={
        403: {"description": "current_password is wrong (wrong-password)"},
        409: {"description": "the password was changed by another request meanwhile"},
        422: {"description": "the new password is too short"},
        429: {"description": "too many tries; see Retry-After"},
    },
)
async def change_password(
    body: PasswordChange, who: Caller, db: Pool, auth: Auth, settings: AppSettings,
    services: Services, hashing: Hashing,
) -> None:  # fmt: skip
    if len(body.new_password) < settings.auth.password_min_length:
        raise Unprocessable(
            f"the password needs at least {settings.auth.password_min_length} characters"
        )
    user = await _account(db, who)
    await _check_password(who, user, body.current_password, settings, services, hashing)
    new_hash = await hashing.hash(body.new_password)
    await auth.keep_only(who)
    if not await users.change_password(db, user.id, user.password_hash, new_hash):
        raise Conflict("the password was changed meanwhile; try again with the new one")
    # Again, for a login that checked the old password and opened its session between the
    # first revocation and the new hash (one opened later finds the new hash and gives its
    # session back: ``auth.login``).
    await auth.keep_only(who)


@router.delete(
    "",
    status_code=204,
    summary="Delete the caller's account: personal data erased, orders kept, no login again",
    responses={
        403: {"description": "the password is wrong (wrong-password)"},
        422: {"description": "an admin (admins are removed by operators)"},
    },
)
async def delete_account(
    body: Deletion, who: Caller, db: Pool, auth: Auth, settings: AppSettings,
    services: Services, hashing: Hashing,
) -> None:  # fmt: skip
    if who.role == Role.ADMIN:
        raise Unprocessable("admin accounts are not deleted here; ask an operator")
    user = await _account(db, who)
    if user.deleted_at is None:  # else: erased already, its sessions still to be revoked
        await _check_password(who, user, body.password, settings, services, hashing)
        await users.erase(db, user.id)
    await auth.close_account(user.id)
