"""Real Chromium against a live server, with a real headset client streaming into it.

Run these tests only on loopback, e.g. in a network namespace that has nothing but ``lo``::

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/e2e'

Chromium comes from the system (``apt-get install chromium``; ``FIELDSIGHT_CHROMIUM`` names
another binary); ``playwright install`` is never needed. Without a browser the tests skip loudly,
or fail when ``FIELDSIGHT_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from headset_client.client import HeadsetClient, HeadsetOptions
from headset_client.sources import open_source
from tests.live import PASSWORD, LiveServer

CHROMIUM = Path(os.environ.get("FIELDSIGHT_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_ENV = "FIELDSIGHT_REQUIRE_SERVICES"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
VIEWPORT = {"width": 1280, "height": 760}


def _unavailable(reason: str) -> None:
    message = f"END-TO-END TESTS NOT RUN: {reason}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1 requires them)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def chromium() -> Path:
    """The Chromium binary, or a loud skip (a failure under FIELDSIGHT_REQUIRE_SERVICES=1)."""
    if not CHROMIUM.exists():
        _unavailable(
            f"no Chromium at {CHROMIUM} (apt-get install chromium, or set FIELDSIGHT_CHROMIUM)"
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright Python package is not installed (pip install -e '.[dev]')")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
    finally:
        await playwright.stop()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh page; an uncaught script error in it fails the test."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    errors: list[str] = []
    console: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"uncaught errors in the page: {errors}; console: {console[-20:]}"


@pytest.fixture
async def headset(live_server: LiveServer) -> AsyncIterator[HeadsetClient]:
    """The reference headset streaming its synthetic source (frame code + ArUco id 7) to pump-7."""
    client = HeadsetClient(
        HeadsetOptions(server=live_server.url, username="worker", password=PASSWORD, room="pump-7"),
        open_source("synthetic"),
    )
    try:
        await client.start()
        yield client
    finally:
        await client.aclose()
