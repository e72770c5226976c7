from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from server.deps import AppServices, CurrentUser

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: float
    username: str
    role: str
    display_name: str


class Me(BaseModel):
    username: str
    role: str


@router.post("/login")
async def login(body: LoginRequest, services: AppServices) -> TokenResponse:
    """Exchange a username and password for a signed access token."""
    user = await services.users.get(body.username)
    # Verify against a hash even for unknown users, so timing does not reveal who exists.
    stored = user.password_hash if user is not None else services.hasher.dummy_hash
    ok = await services.hasher.verify_async(body.password, stored)
    if user is None or not ok or user.disabled:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    token, expires = services.tokens.issue(user.username, user.role.value)
    return TokenResponse(
        access_token=token,
        expires_at=expires,
        username=user.username,
        role=user.role.value,
        display_name=user.display_name or user.username,
    )


@router.get("/me")
async def me(user: CurrentUser) -> Me:
    return Me(username=user.username, role=user.role)
