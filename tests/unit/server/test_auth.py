from __future__ import annotations

import time

import pytest

from server.auth import PasswordHasher, TokenService
from server.errors import AuthError

KEY = "k" * 40


def test_password_hash_verifies_and_is_salted() -> None:
    hasher = PasswordHasher()
    a, b = hasher.hash("correct horse"), hasher.hash("correct horse")
    assert a != b and a.startswith("$argon2")
    assert hasher.verify("correct horse", a)
    assert not hasher.verify("wrong horse!", a)
    assert not hasher.verify("correct horse", "not-a-hash")


def test_short_password_refused() -> None:
    with pytest.raises(ValueError):
        PasswordHasher().hash("short")


def test_token_roundtrip() -> None:
    tokens = TokenService(KEY, 60)
    token, expires = tokens.issue("ana", "mentor")
    identity = tokens.verify(token)
    assert (identity.username, identity.role) == ("ana", "mentor")
    assert identity.expires_at == pytest.approx(expires, abs=1)


def test_expired_token() -> None:
    tokens = TokenService(KEY, 60)
    token, _ = tokens.issue("ana", "mentor", now=time.time() - 3600)
    with pytest.raises(AuthError) as info:
        tokens.verify(token)
    assert info.value.code == "token_expired"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c"])
def test_garbage_token(token: str) -> None:
    with pytest.raises(AuthError) as info:
        TokenService(KEY, 60).verify(token)
    assert info.value.code == "token_invalid"


def test_token_from_another_key_is_refused() -> None:
    token, _ = TokenService("x" * 40, 60).issue("ana", "admin")
    with pytest.raises(AuthError):
        TokenService(KEY, 60).verify(token)
