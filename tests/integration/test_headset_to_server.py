"""A real headset client (aiortc) streams into the server over loopback."""

from __future__ import annotations

from headset_client.client import HeadsetClient, HeadsetOptions
from headset_client.sources import open_source
from tests.integration.conftest import PASSWORD, LiveServer
from tests.util import eventually


async def test_marker_overlay_tagged_with_sent_pts(live_server: LiveServer) -> None:
    client = HeadsetClient(
        HeadsetOptions(server=live_server.url, username="worker", password=PASSWORD, room="pump-7"),
        open_source("synthetic"),
    )
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
