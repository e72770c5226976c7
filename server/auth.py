"""Passwords (Argon2 via pwdlib) and signed access tokens (HS256 JWT via PyJWT)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio
import jwt
from pwdlib import PasswordHash

from server.errors import AuthError

__all__ = ["Identity", "PasswordHasher", "TokenService"]

ROLES = ("worker", "mentor", "trainer", "admin")


class PasswordHasher:
    """Argon2id hashing. It costs tens of milliseconds: the async helpers run it in a thread."""

    def __init__(self) -> None:
        self._hash = PasswordHash.recommended()
        #: Verified against when a login names no known user, so timing does not tell who exists.
        self.dummy_hash = self._hash.hash("fieldsight-no-such-user")

    def hash(self, password: str) -> str:
        if len(password) < 8:
            raise ValueError("password must be at least 8 characters long")
        return self._hash.hash(password)

    def verify(self, password: str, password_hash: str) -> bool:
        try:
            return bool(self._hash.verify(password, password_hash))
        except Exception:  # a malformed stored hash is a failed login, never a crash
            return False

    async def hash_async(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self.hash, password)

    async def verify_async(self, password: str, password_hash: str) -> bool:
        return await anyio.to_thread.run_sync(self.verify, password, password_hash)


@dataclass(frozen=True)
class Identity:
    """Who a valid token speaks for."""

    username: str
    role: str
    expires_at: float


class TokenService:
    def __init__(self, secret_key: str, ttl_s: int) -> None:
        self._key = secret_key
        self._ttl_s = ttl_s

    def issue(self, username: str, role: str, *, now: float | None = None) -> tuple[str, float]:
        issued = time.time() if now is None else now
        expires = issued + self._ttl_s
        claims = {"sub": username, "role": role, "iat": int(issued), "exp": int(expires)}
        return jwt.encode(claims, self._key, algorithm="HS256"), expires

    def verify(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=["HS256"], options={"require": ["sub", "exp", "role"]}
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token_expired", "the access token has expired: log in again") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError("token_invalid", f"the access token is not valid: {exc}") from None
        role = claims.get("role")
        if role not in ROLES or not isinstance(claims.get("sub"), str):
            raise AuthError("token_invalid", "the access token carries no valid user or role")
        return Identity(username=claims["sub"], role=role, expires_at=float(claims["exp"]))
