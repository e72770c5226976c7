"""A real headset client (aiortc) streams into the server over loopback."""

from __future__ import annotations

from tests.live import LiveServer, headset_for
from tests.util import eventually


async def test_marker_overlay_tagged_with_sent_pts(live_server: LiveServer) -> None:
    client = headset_for(live_server)
    try:
        await client.start()
        await eventually(lambda: client.report.overlays_received >= 5, 15, "5 overlays")
        assert client.report.overlays_unmatched == 0
        overlay = client.last_overlay
        assert overlay is not None
        assert overlay["width"] == 640 and overlay["height"] == 480
        assert [m["id"] for m in overlay["markers"]] == [7]
        assert overlay["camera"] == "telemetry"
    finally:
        await client.aclose()


async def test_registered_marker_gives_label_and_size(live_server: LiveServer) -> None:
    services = live_server.services
    await services.markers.put("aruco_4x4_50", 7, "Pump P-7 inlet valve", 0.20)
    await services.refresh_markers()
    client = headset_for(live_server)
    try:
        await client.start()
        await eventually(lambda: client.report.markers_seen >= 3, 15, "markers")
        marker = client.last_overlay["markers"][0]  # type: ignore[index]
        assert marker["label"] == "Pump P-7 inlet valve"
        # The synthetic marker is 120 px wide at a 60 degree field of view: a 0.20 m marker
        # stands 0.20 * 554 / 120 = 0.92 m away (0.46 m if it were the default 0.10 m).
        assert 0.85 < marker["tvec"][2] < 1.0
    finally:
        await client.aclose()


async def test_room_settings_switch_a_live_room(live_server: LiveServer) -> None:
    """A mentor turns the marker stage off and on; the live video's overlays follow at once."""
    from server.rtc.hub import RoomVision

    client = headset_for(live_server)
    try:
        await client.start()
        await eventually(lambda: client.report.markers_seen >= 2, 15, "markers")
        room = live_server.services.hub.rooms["pump-7"]
        live_server.services.hub.set_room_settings("pump-7", RoomVision(stages=()))
        await room.restart_vision()
        count = client.report.overlays_received
        await eventually(lambda: client.report.overlays_received > count + 3, 10, "overlays")
        assert client.last_overlay is not None and client.last_overlay["markers"] == []
        live_server.services.hub.set_room_settings("pump-7", None)
        await room.restart_vision()
        seen = client.report.markers_seen
        await eventually(lambda: client.report.markers_seen > seen, 10, "markers again")
    finally:
        await client.aclose()
