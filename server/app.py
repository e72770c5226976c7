"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from server import signaling
from server.routes import (
    admin,
    auth,
    equipment,
    health,
    markers,
    metrics,
    review,
    rooms,
    sessions,
    twins,
    users,
)
from server.services import Services
from server.settings import Settings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.start(settings)
        app.state.services = services
        try:
            yield
        finally:
            await services.aclose()

    app = FastAPI(
        title="Fieldsight",
        version="0.1.0",
        summary="AR remote assistance and training: signaling, media hub, vision, records.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(rooms.router)
    app.include_router(rooms.vision_router)
    app.include_router(metrics.router)
    app.include_router(markers.router)
    app.include_router(equipment.router)
    app.include_router(twins.router)
    app.include_router(sessions.router)
    app.include_router(admin.router)
    app.include_router(review.router)
    app.include_router(signaling.router)
    app.mount("/mentor", StaticFiles(directory=WEB_DIR, html=True), name="mentor")

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> RedirectResponse:
        query = request.url.query
        return RedirectResponse("/mentor/" + (f"?{query}" if query else ""))

    return app
