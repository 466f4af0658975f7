"""Who is calling: argon2 passwords, short-lived access JWTs and refresh-token sessions in Redis.

A login opens a *session*: a Redis hash ``auth:session:{sid}`` holding the user, the role,
the hash of the session's current refresh token and the account's *generation* when it was
opened. Access tokens are HS256 JWTs (iss, aud, exp, jti) naming their session in ``sid``,
and every request checks that the session still exists. So:
- logout deletes the session, and its access tokens stop working at once, not at expiry;
- a refresh rotates the refresh token (the old one is dead);
- presenting a refresh token that was already rotated away revokes the whole session: a
  stolen token and its legitimate twin both stop working (reuse detection).

An account's *standing* is a second hash, ``auth:user:{user_id}``: its generation (0 when
absent) and, while an admin has it suspended, ``suspended``. Suspending moves the generation
on, which revokes every session the account had (a session counts only while its generation
is the account's), and while suspended no session opens, refreshes or authenticates (403
``account-suspended``). Reactivating lifts ``suspended`` only: the revoked sessions stay
revoked, and the user logs in again. A password change moves the generation on too, and moves the
caller's own session along in the same Lua step, so every other session ends and the caller's
goes on. Deleting the account moves it on and sets ``deleted``, which no reactivation lifts:
no session of the account opens again. Each request reads the session and the standing in one
round trip. PostgreSQL (``users.suspended_at``) is the record the admins see and login checks;
the standing has no expiry, so that Redis must not evict keys without one.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.exceptions import RedisError

from eatcloud.errors import Busy, Forbidden, InfrastructureError, Unauthorized
from eatcloud.locks import script
from eatcloud.resources import Clock, Redis, SystemClock
from eatcloud.settings import AuthSettings, get_settings

_ALGORITHM = "HS256"
# A session remembers this many of its earlier refresh secrets: presenting one of them is reuse
# (a stolen token raced its owner) and revokes the session; any other wrong secret is refused.
RETIRED_SECRETS = 32
_REVOKED = (
    "the session was revoked (the account was suspended, deleted or its password changed); "
    "log in again"
)
T = TypeVar("T")


class Role(StrEnum):
    CUSTOMER = "CUSTOMER"
    MANAGER = "MANAGER"
    ADMIN = "ADMIN"


class AccountSuspended(Forbidden):
    """An admin has suspended the account: it may not log in, refresh or call the API."""

    slug = "account-suspended"

    def __init__(self) -> None:
        super().__init__("this account is suspended")


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: Role
    session: str


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    @property
    def session(self) -> str:
        return self.refresh_token.partition(".")[0]


class PasswordHashing:
    """argon2id hashing off the event loop, bounded: ``slots`` hashes at once and ``queue``
    more waiting. Past that, ``Busy`` (503 with Retry-After): an API pod must not queue
    unbounded memory-hard work for anonymous callers, nor starve its readiness probe."""

    def __init__(self, settings: AuthSettings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self.capacity = settings.hashing_slots + settings.hashing_queue
        self.admitted = 0  # running or waiting
        self._slots = asyncio.Semaphore(settings.hashing_slots)
        self._dummy: str | None = None

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self.admitted >= self.capacity:
            raise Busy("too many passwords being checked; retry shortly", retry_after=1)
        self.admitted += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(work, *args)
        finally:
            self.admitted -= 1

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> Verified:
        """Whether ``password`` matches, and a new hash when the stored one was made with
        other parameters. An unknown user costs the same time as a wrong password."""
        target = password_hash or await self._dummy_hash()
        try:
            await self._run(self.hasher.verify, target, password)
        except (VerificationError, InvalidHashError):
            return Verified(False)
        if password_hash is None:
            return Verified(False)
        if self.hasher.check_needs_rehash(password_hash):
            return Verified(True, await self.hash(password))
        return Verified(True)

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        return self._dummy


@dataclass(frozen=True)
class Verified:
    ok: bool
    rehashed: str | None = None  # the password hashed with today's parameters, to store


@lru_cache(maxsize=1)
def default_hashing() -> PasswordHashing:
    """For operator commands (create an admin, the demo): this process's settings."""
    return PasswordHashing(get_settings().auth)


async def hash_password(password: str) -> str:
    return await default_hashing().hash(password)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class Authenticator:
    """Issues and checks tokens, signed with ``key`` (``Settings.signing_key``); sessions live
    in Redis."""

    def __init__(
        self, settings: AuthSettings, redis: Redis, key: str, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.key = key
        self.clock = clock or SystemClock()

    def _key(self, session: str) -> str:
        return f"auth:session:{session}"

    def _standing(self, user_id: str) -> str:
        return f"auth:user:{user_id}"

    async def open_session(self, user_id: str, role: Role) -> TokenPair:
        """A new session, or ``AccountSuspended``."""
        session, secret = uuid.uuid4().hex, secrets.token_urlsafe(32)
        try:
            opened = await script(self.redis, "open_session")(
                keys=[self._key(session), self._standing(user_id)],
                args=[user_id, role.value, _digest(secret), self.settings.refresh_ttl_seconds],
            )
        except RedisError as exc:
            raise InfrastructureError(f"session store: {exc}") from exc
        if opened == -1:
            raise Unauthorized("the account has been deleted")
        if opened != 1:
            raise AccountSuspended()
        return self._pair(user_id, role, session, secret)

    async def refresh(self, refresh_token: str) -> TokenPair:
        session, _, secret = refresh_token.partition(".")
        if not session or not secret:
            raise Unauthorized("malformed refresh token")
        new_secret = secrets.token_urlsafe(32)
        result = await self._rotate(session, secret, new_secret)
        if result[0] == -1:
            raise Unauthorized("refresh token reused: the session is revoked, log in again")
        if result[0] == -2:
            raise Unauthorized("invalid refresh token")
        if result[0] == -3:
            raise AccountSuspended()
        if result[0] == -4:
            raise Unauthorized(_REVOKED)
        if result[0] != 1:
            raise Unauthorized("unknown or expired session, log in again")
        user, role = result[1].decode(), Role(result[2].decode())
        return self._pair(user, role, session, new_secret)

    async def _rotate(self, session: str, secret: str, new_secret: str) -> list[Any]:
        """The answer of ``rotate_refresh.lua`` ({0} for a session that does not exist)."""
        key = self._key(session)
        try:
            # A session's user never changes: read first, it names the standing the script
            # checks (a script touches only the keys it is given).
            owner = _text((await self.redis.hmget(key, ["user"]))[0])
            if owner is None:
                return [0]
            result: list[Any] = await script(self.redis, "rotate_refresh")(
                keys=[key, self._standing(owner)],
                args=[
                    _digest(secret), _digest(new_secret), self.settings.refresh_ttl_seconds,
                    RETIRED_SECRETS,
                ],
            )  # fmt: skip
        except RedisError as exc:
            raise InfrastructureError(f"session store: {exc}") from exc
        return result

    async def authenticate(self, access_token: str) -> Principal:
        try:
            claims = jwt.decode(
                access_token,
                self.key,
                algorithms=[_ALGORITHM],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                options={"require": ["exp", "iat", "sub", "sid", "jti", "role"]},
            )
            principal = Principal(claims["sub"], Role(claims["role"]), claims["sid"])
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise Unauthorized(f"invalid access token: {exc}") from exc
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hmget(self._key(principal.session), ["user", "role", "generation"])
                pipe.hmget(self._standing(principal.user_id), ["generation", "suspended"])
                (user, role, generation), (current, suspended) = await pipe.execute()
        except RedisError as exc:
            raise InfrastructureError(f"session store: {exc}") from exc
        if user is None:
            raise Unauthorized("the session has ended (logged out or revoked)")
        # The token must say what its session says: a token minted with a leaked key around
        # one's own session cannot claim another user or a higher role.
        if _text(user) != principal.user_id or _text(role) != principal.role.value:
            raise Unauthorized("the access token does not match its session")
        if suspended is not None:
            raise AccountSuspended()
        if (_text(generation) or "0") != (_text(current) or "0"):
            raise Unauthorized(_REVOKED)
        return principal

    async def close_session(self, principal: Principal) -> None:
        try:
            await self.redis.delete(self._key(principal.session))
        except RedisError as exc:
            raise InfrastructureError(f"session store: {exc}") from exc

    async def suspend(self, user_id: str) -> None:
        """Revoke every session of the account, and open none until ``reactivate``."""
        await self._bar(user_id, "suspended")

    async def _bar(self, user_id: str, flag: str) -> None:
        """Revoke every session of the account (its generation moves on) and set ``flag`` on
        its standing, which ``open_session.lua`` refuses to open a session under."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(self._standing(user_id), "generation", 1)
                pipe.hset(self._standing(user_id), mapping={flag: "1"})
                await pipe.execute()
        except RedisError as exc:
            raise InfrastructureError(f"session store: {exc}") from exc

    async def keep_only(self, principal: Principal) -> None:
        """Revoke every session of the caller's account except the caller's own, at once (a
        password change). ``Unauthorized`` if the caller's session was revoked meanwhile."""
        try:
            kept = await script(self.redis, "keep_only_session")(
                keys=[self._standing(principal.user_id), self._key(principal.session)],
                args=[principal.user_id],
            )
        except RedisError as exc:
            raise InfrastructureError(f"session store: {exc}") from exc
        if kept != 1:
            raise Unauthorized(_REVOKED)

    async def close_account(self, user_id: str) -> None:
        """Revoke every session of a deleted account, and open none ever again."""
        await self._bar(user_id, "deleted")

    async def reactivate(self, user_id: str) -> None:
        """Let the account log in again (its sessions from before stay revoked)."""
        try:
            await self.redis.hdel(self._standing(user_id), "suspended")
        except RedisError as exc:
            raise InfrastructureError(f"session store: {exc}") from exc

    def _pair(self, user_id: str, role: Role, session: str, secret: str) -> TokenPair:
        now = int(self.clock.now())
        ttl = self.settings.access_ttl_seconds
        claims = {
            "sub": user_id, "role": role.value, "sid": session, "jti": uuid.uuid4().hex,
            "iat": now, "exp": now + ttl, "iss": self.settings.issuer,
            "aud": self.settings.audience,
        }  # fmt: skip
        token = jwt.encode(claims, self.key, _ALGORITHM)
        return TokenPair(token, f"{session}.{secret}", ttl)
