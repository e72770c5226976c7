"""UserStore on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from sqlalchemy import text

from sessions import Database, NotFoundError, Role, UserExistsError, UserStore
from sessions.models import utcnow


async def test_create_then_get_returns_the_stored_user(database: Database) -> None:
    users = UserStore(database)
    before = utcnow()
    created = await users.create("ana.lopez", "$argon2id$fake", Role.MENTOR, "Ana López")

    got = await users.get("ana.lopez")

    assert got is not None
    assert got.id == created.id
    assert got.username == "ana.lopez"
    assert got.password_hash == "$argon2id$fake"
    assert got.role is Role.MENTOR
    assert got.display_name == "Ana López"
    assert got.disabled is False
    assert got.created_at.tzinfo is not None
    assert got.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= got.created_at <= utcnow()


async def test_display_name_defaults_to_username_and_role_accepts_its_string(
    database: Database,
) -> None:
    user = await UserStore(database).create("worker-7", "h", "worker")
    assert user.display_name == "worker-7"
    assert user.role is Role.WORKER


async def test_role_is_stored_as_its_lowercase_string(database: Database) -> None:
    await UserStore(database).create("trainer_1", "h", Role.TRAINER)
    async with database.session() as session:
        stored = await session.scalar(text("SELECT role FROM users WHERE username = 'trainer_1'"))
    assert stored == "trainer"


async def test_get_unknown_user_returns_none(database: Database) -> None:
    assert await UserStore(database).get("nobody") is None


async def test_duplicate_username_raises_and_keeps_the_first(database: Database) -> None:
    users = UserStore(database)
    await users.create("bob", "first-hash", Role.WORKER)

    with pytest.raises(UserExistsError, match="'bob' already exists"):
        await users.create("bob", "second-hash", Role.ADMIN)

    kept = await users.get("bob")
    assert kept is not None
    assert (kept.password_hash, kept.role) == ("first-hash", Role.WORKER)
    assert [u.username for u in await users.list()] == ["bob"]


@pytest.mark.parametrize(
    "username",
    ["", "a", "Bob", "with space", "x" * 65, "ab\n", "émile", "a/b", "ab@example.org"],
)
async def test_invalid_username_raises_value_error(database: Database, username: str) -> None:
    users = UserStore(database)
    with pytest.raises(ValueError, match="invalid username"):
        await users.create(username, "h", Role.WORKER)
    assert await users.list() == []


async def test_longest_valid_username_is_accepted(database: Database) -> None:
    name = "a" * 64
    await UserStore(database).create(name, "h", Role.WORKER)
    assert await UserStore(database).get(name) is not None


async def test_bad_role_hash_or_display_name_raise_value_error(database: Database) -> None:
    users = UserStore(database)
    with pytest.raises(ValueError, match="unknown role"):
        await users.create("carol", "h", "superuser")
    with pytest.raises(ValueError, match="password_hash is empty"):
        await users.create("carol", "", Role.WORKER)
    with pytest.raises(ValueError, match="display_name"):
        await users.create("carol", "h", Role.WORKER, "C" * 129)
    assert await users.list() == []


async def test_list_is_ordered_by_username(database: Database) -> None:
    users = UserStore(database)
    for name in ["mia", "al", "zoe"]:
        await users.create(name, "h", Role.WORKER)
    assert [u.username for u in await users.list()] == ["al", "mia", "zoe"]


async def test_set_password_hash_replaces_only_that_users_hash(database: Database) -> None:
    users = UserStore(database)
    await users.create("dora", "old", Role.WORKER)
    await users.create("eve", "eves", Role.WORKER)

    await users.set_password_hash("dora", "new")

    dora, eve = await users.get("dora"), await users.get("eve")
    assert dora is not None and dora.password_hash == "new"
    assert eve is not None and eve.password_hash == "eves"


async def test_set_password_hash_of_unknown_user_raises_not_found(database: Database) -> None:
    with pytest.raises(NotFoundError, match="no user 'ghost'"):
        await UserStore(database).set_password_hash("ghost", "h")


async def test_created_at_is_utc_aware(database: Database) -> None:
    user = await UserStore(database).create("tz", "h", Role.ADMIN)
    stored = await UserStore(database).get("tz")
    assert stored is not None
    assert stored.created_at == user.created_at
    assert stored.created_at.tzinfo == UTC
