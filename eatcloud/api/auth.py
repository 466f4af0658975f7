"""Sign up, log in, refresh, log out, and who am I."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from eatcloud.api.deps import AppSettings, Auth, Caller, ClientAddress, Hashing, Pool, Services
from eatcloud.api.security import AccountSuspended, Principal, Role
from eatcloud.errors import NotFound, Unauthorized, Unprocessable
from eatcloud.locks import rate_limit
from eatcloud.postgres.users import (
    EmailTaken,
    create_user,
    password_hash_of,
    replace_password_hash,
    user_by_email,
    user_by_id,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

Email = Annotated[str, Field(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$", max_length=254)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignupRequest(_Schema):
    email: Email
    password: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=80)
    # Admins are not self-service: they are created with `eatcloud users create-admin`.
    role: Literal["CUSTOMER", "MANAGER"] = "CUSTOMER"


class LoginRequest(_Schema):
    email: Email
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(_Schema):
    refresh_token: str = Field(min_length=1, max_length=512)


class TokenResponse(_Schema):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class UserPublic(_Schema):
    id: str
    email: str
    name: str
    role: Role


class SignupAnswer(_Schema):
    """The same whether the e-mail was new or already registered (no account list to mine):
    log in, then ``GET /auth/me`` for the account's id."""

    email: str
    name: str
    role: Role


@router.post("/signup", status_code=201, response_model=SignupAnswer, summary="Create an account")
async def signup(
    body: SignupRequest,
    db: Pool,
    settings: AppSettings,
    services: Services,
    hashing: Hashing,
    address: ClientAddress,
) -> SignupAnswer:
    if len(body.password) < settings.auth.password_min_length:
        raise Unprocessable(
            f"the password needs at least {settings.auth.password_min_length} characters"
        )
    limits, redis = settings.rate_limit, services.redis()
    await rate_limit.take(redis, f"signup:{address}", limits.signup_burst, limits.signup_per_minute)
    await rate_limit.take(redis, "passwords", limits.password_burst, limits.password_per_minute)
    # The password is hashed either way: a taken e-mail costs the same time as a new one.
    password_hash = await hashing.hash(body.password)
    try:
        await create_user(db, body.email, password_hash, body.role, body.name)
    except EmailTaken:
        # Nothing changes for the account that has it, and the caller learns nothing: the same
        # answer as a new account's. (Its owner logs in as before; the caller's password
        # simply does not work.)
        log.info("signup for an e-mail that is registered already; nothing changed")
    return SignupAnswer(email=body.email.lower(), name=body.name, role=Role(body.role))


@router.post(
    "/login",
    response_model=TokenResponse,
    summary="Exchange credentials for tokens",
    responses={
        403: {"description": "the account is suspended (account-suspended)"},
        429: {"description": "too many attempts (this e-mail, this address); see Retry-After"},
        503: {"description": "too many passwords being checked right now; see Retry-After"},
    },
)
async def login(
    body: LoginRequest,
    db: Pool,
    auth: Auth,
    settings: AppSettings,
    services: Services,
    hashing: Hashing,
    address: ClientAddress,
) -> TokenResponse:
    limits, redis = settings.rate_limit, services.redis()
    await rate_limit.take(
        redis, f"login:{body.email.lower()}", limits.login_burst, limits.login_per_minute
    )
    await rate_limit.take(
        redis, f"login-from:{address}", limits.address_login_burst, limits.address_login_per_minute
    )
    await rate_limit.take(redis, "passwords", limits.password_burst, limits.password_per_minute)
    user = await user_by_email(db, body.email)
    verified = await hashing.verify(user.password_hash if user else None, body.password)
    if not verified.ok:
        raise Unauthorized("wrong e-mail or password")
    assert user is not None and user.password_hash is not None
    if user.suspended_at is not None:  # told only to whoever knows the password
        raise AccountSuspended()
    if verified.rehashed is not None:  # made with older parameters: store today's
        await replace_password_hash(db, user.id, user.password_hash, verified.rehashed)
    pair = await auth.open_session(user.id, Role(user.role))
    # A password change that committed while this login checked the old password revoked the
    # sessions it could see, not this one (it revokes before and after storing the new hash,
    # so a session opened now sees the new hash here): a session whose password is gone is
    # given back.
    if await password_hash_of(db, user.id) not in (user.password_hash, verified.rehashed):
        await auth.close_session(Principal(user.id, Role(user.role), pair.session))
        raise Unauthorized("wrong e-mail or password")
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post(
    "/refresh",
    response_model=TokenResponse,
    summary="Rotate the refresh token",
    responses={403: {"description": "the account is suspended (account-suspended)"}},
)
async def refresh(body: Annotated[RefreshRequest, Body()], auth: Auth) -> TokenResponse:
    pair = await auth.refresh(body.refresh_token)
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/logout", status_code=204, summary="End this session (its tokens stop working)")
async def logout(who: Caller, auth: Auth) -> None:
    await auth.close_session(who)


@router.get("/me", response_model=UserPublic, summary="The account behind the access token")
async def me(who: Caller, db: Pool) -> UserPublic:
    user = await user_by_id(db, who.user_id)
    if user is None:
        raise NotFound("the account no longer exists")
    return UserPublic(id=user.id, email=user.email, name=user.name, role=Role(user.role))
