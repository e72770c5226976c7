from __future__ import annotations

import pytest

from sessions import Database, MarkerRegistry, NotFoundError


async def test_put_list_update_remove(database: Database) -> None:
    registry = MarkerRegistry(database)
    await registry.put("aruco_4x4_50", 7, "Pump P-7 inlet valve", 0.10)
    await registry.put("aruco_4x4_50", 3, "Breaker panel B", 0.05)
    await registry.put("apriltag_36h11", 7, "Compressor C-2", 0.16)
    assert [(m.family, m.marker_id) for m in await registry.list()] == [
        ("apriltag_36h11", 7), ("aruco_4x4_50", 3), ("aruco_4x4_50", 7),
    ]  # fmt: skip
    updated = await registry.put("aruco_4x4_50", 7, "Pump P-7 outlet valve", 0.12)
    assert (updated.name, updated.size_m) == ("Pump P-7 outlet valve", 0.12)
    assert len(await registry.list("aruco_4x4_50")) == 2
    await registry.remove("aruco_4x4_50", 3)
    with pytest.raises(NotFoundError):
        await registry.remove("aruco_4x4_50", 3)
    assert [m.marker_id for m in await registry.list("aruco_4x4_50")] == [7]


@pytest.mark.parametrize(
    ("marker_id", "name", "size"), [(-1, "x", 0.1), (1, "", 0.1), (1, "x", 0.0), (1, "x", 50.0)]
)
async def test_invalid_entries_refused(
    database: Database, marker_id: int, name: str, size: float
) -> None:
    registry = MarkerRegistry(database)
    with pytest.raises(ValueError):
        await registry.put("aruco_4x4_50", marker_id, name, size)
    assert await registry.list() == []
