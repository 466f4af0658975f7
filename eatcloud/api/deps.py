"""FastAPI dependencies: the app's services and the calling principal with its role."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator

from eatcloud.api.limits import WaitingSlots
from eatcloud.api.security import Authenticator, PasswordHashing, Principal, Role
from eatcloud.errors import Forbidden, Unauthorized
from eatcloud.resources import Pool as _Pool
from eatcloud.resources import Services as _Services
from eatcloud.settings import Settings


def canonical_id(value: str) -> str:
    """A UUID in its one canonical spelling (lower case, hyphenated), whatever spelling came
    (upper case, braces, ``urn:uuid:``, no hyphens): PostgreSQL takes them all as one id, but
    Redis keys, Kafka keys and the saga's tables compare text, so every id is made canonical
    at the edge. Anything else is kept as it came and finds nothing (404, or 422 in a body)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


# A store, menu, order or user id in a path or a request body.
Id = Annotated[str, AfterValidator(canonical_id)]

_bearer = HTTPBearer(auto_error=False, description="An access token from /api/v1/auth/login")


async def services(request: Request) -> _Services:
    found: _Services = request.app.state.services
    return found


async def settings(found: Annotated[_Services, Depends(services)]) -> Settings:
    return found.settings


async def pool(found: Annotated[_Services, Depends(services)]) -> _Pool:
    return await found.pool()


async def authenticator(found: Annotated[_Services, Depends(services)]) -> Authenticator:
    return Authenticator(
        found.settings.auth, found.redis(), found.settings.signing_key(), found.clock
    )


async def principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    auth: Annotated[Authenticator, Depends(authenticator)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("an access token is required (Authorization: Bearer ...)")
    return await auth.authenticate(credentials.credentials)


def role(*allowed: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets only ``allowed`` roles through (403 for the others)."""

    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in allowed:
            raise Forbidden(f"this needs the role {' or '.join(allowed)}")
        return who

    return check


Caller = Annotated[Principal, Depends(principal)]
Customer = Annotated[Principal, Depends(role(Role.CUSTOMER))]
Manager = Annotated[Principal, Depends(role(Role.MANAGER))]
Admin = Annotated[Principal, Depends(role(Role.ADMIN))]
ManagerOrAdmin = Annotated[Principal, Depends(role(Role.MANAGER, Role.ADMIN))]
Pool = Annotated[_Pool, Depends(pool)]
Services = Annotated[_Services, Depends(services)]
Auth = Annotated[Authenticator, Depends(authenticator)]
AppSettings = Annotated[Settings, Depends(settings)]


async def hashing(request: Request) -> PasswordHashing:
    found: PasswordHashing = request.app.state.hashing
    return found


async def waiting_slots(request: Request) -> WaitingSlots:
    found: WaitingSlots = request.app.state.waiting
    return found


def client_address(request: Request, settings: Settings) -> str:
    """The caller's address: the peer's, or, when the peer is one of ``api.trusted_proxies``,
    the last address in X-Forwarded-For that is not a trusted proxy (what a client writes
    there itself is ignored unless every hop after it is ours)."""
    peer = request.client.host if request.client else "unknown"
    trusted = [ipaddress.ip_network(block, strict=False) for block in settings.api.trusted_proxies]
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop
    return peer


def _within(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


async def caller_address(request: Request, found: Annotated[Settings, Depends(settings)]) -> str:
    return client_address(request, found)


Hashing = Annotated[PasswordHashing, Depends(hashing)]
Waiting = Annotated[WaitingSlots, Depends(waiting_slots)]
ClientAddress = Annotated[str, Depends(caller_address)]
