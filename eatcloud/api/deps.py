"""FastAPI dependencies: the app's connections and the calling principal with its role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from eatcloud.api.security import Authenticator, Principal, Role
from eatcloud.errors import Forbidden, Unauthorized
from eatcloud.resources import Resources as _Resources
from eatcloud.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An access token from /api/v1/auth/login")


async def resources(request: Request) -> _Resources:
    found: _Resources = request.app.state.resources
    return found


async def settings(request: Request) -> Settings:
    found: Settings = request.app.state.settings
    return found


async def pool(res: Annotated[_Resources, Depends(resources)]) -> Any:
    return await res.pool()


async def authenticator(res: Annotated[_Resources, Depends(resources)]) -> Authenticator:
    return Authenticator(res.settings.auth, res.redis())


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
Pool = Annotated[Any, Depends(pool)]
Resources = Annotated[_Resources, Depends(resources)]
Auth = Annotated[Authenticator, Depends(authenticator)]
AppSettings = Annotated[Settings, Depends(settings)]
