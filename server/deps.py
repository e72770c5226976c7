"""FastAPI dependencies: the services, the database and the user behind a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.auth import Identity
from server.errors import AuthError
from server.services import Services

__all__ = ["AdminUser", "AppServices", "CurrentUser"]

_bearer = HTTPBearer(auto_error=False)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


AppServices = Annotated[Services, Depends(get_services)]


async def get_current_user(
    services: AppServices,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: log in at POST /api/auth/login",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        identity = services.tokens.verify(credentials.credentials)
    except AuthError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, exc.message, headers={"WWW-Authenticate": "Bearer"}
        ) from None
    user = await services.users.get(identity.username)
    if user is None or user.disabled:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "this account no longer exists")
    return identity


CurrentUser = Annotated[Identity, Depends(get_current_user)]


async def get_admin(user: CurrentUser) -> Identity:
    if user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may do this")
    return user


AdminUser = Annotated[Identity, Depends(get_admin)]
