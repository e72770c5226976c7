"""User accounts: create, look up, list, change the stored password hash.

Hashing passwords is the server's job; this module only stores the hashes it is given.
"""

from __future__ import annotations

import builtins
import re

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from sessions.db import Database
from sessions.errors import NotFoundError, UserExistsError
from sessions.models import DISPLAY_NAME_MAX, Role, User

__all__ = ["USERNAME_PATTERN", "UserStore"]

USERNAME_PATTERN = re.compile(r"[a-z0-9_.-]{2,64}")
"""Usernames: 2-64 characters, lowercase ASCII letters, digits, ``_``, ``.`` and ``-``."""


def _check_username(username: str) -> None:
    if not USERNAME_PATTERN.fullmatch(username):
        raise ValueError(
            f"invalid username {username!r}: use 2-64 characters from a-z, 0-9, '_', '.' and '-'"
        )


class UserStore:
    """User accounts stored in ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        username: str,
        password_hash: str,
        role: Role | str,
        display_name: str | None = None,
    ) -> User:
        """Store a new account; ``display_name`` defaults to the username.

        Raises :class:`ValueError` for a malformed username, an empty hash or an unknown role,
        and :class:`UserExistsError` when the username is taken.
        """
        _check_username(username)
        if not password_hash:
            raise ValueError("password_hash is empty; hash the password before storing the user")
        display_name = display_name or username
        if len(display_name) > DISPLAY_NAME_MAX:
            raise ValueError(f"display_name is longer than {DISPLAY_NAME_MAX} characters")
        try:
            role = Role(role)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise ValueError(f"unknown role {role!r}; use one of: {known}") from None
        user = User(
            username=username,
            password_hash=password_hash,
            role=role,
            display_name=display_name,
        )
        try:
            async with self._db.session() as session, session.begin():
                session.add(user)
        except IntegrityError as exc:
            raise UserExistsError(username) from exc
        return user

    async def get(self, username: str) -> User | None:
        """The account named ``username``, or ``None``."""
        async with self._db.session() as session:
            result = await session.scalars(select(User).where(User.username == username))
            return result.one_or_none()

    async def list(self) -> builtins.list[User]:
        """Every account, ordered by username."""
        async with self._db.session() as session:
            result = await session.scalars(select(User).order_by(User.username))
            return builtins.list(result.all())

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        """Replace the stored hash of ``username``; :class:`NotFoundError` if unknown."""
        if not password_hash:
            raise ValueError("password_hash is empty; hash the password before storing it")
        async with self._db.session() as session, session.begin():
            result = await session.scalars(
                update(User)
                .where(User.username == username)
                .values(password_hash=password_hash)
                .returning(User.id)
            )
            if result.one_or_none() is None:
                raise NotFoundError("user", username)
