from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from server.deps import AdminUser, AppServices
from sessions import Role, UserExistsError

router = APIRouter(prefix="/api/users", tags=["users"])


class UserCreate(BaseModel):
    username: str = Field(pattern=r"^[a-z0-9_.-]{2,64}$")
    password: str = Field(min_length=8, max_length=256)
    role: Literal["worker", "mentor", "trainer", "admin"]
    display_name: str | None = Field(default=None, max_length=128)


class UserOut(BaseModel):
    username: str
    role: str
    display_name: str | None


@router.get("")
async def list_users(services: AppServices, _: AdminUser) -> list[UserOut]:
    users = await services.users.list()
    return [
        UserOut(username=u.username, role=u.role.value, display_name=u.display_name) for u in users
    ]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, services: AppServices, _: AdminUser) -> UserOut:
    password_hash = await services.hasher.hash_async(body.password)
    try:
        user = await services.users.create(
            body.username, password_hash, Role(body.role), display_name=body.display_name
        )
    except UserExistsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return UserOut(username=user.username, role=user.role.value, display_name=user.display_name)
