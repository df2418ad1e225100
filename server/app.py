"""The service: ``create_app(settings)`` builds the FastAPI app with every router.

Request flow::

    uvicorn → [CORS, when origins are configured] → PublishedFiles (file routes, fast path)
            → FastAPI: metrics middleware → read API, write API, operations, (web viewer)

The lifespan opens the scene catalog and the planners' project store and closes them again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from server import db, metrics, ops_api, read_api, web, write_api
from server.catalog import API_PREFIX, SceneCatalog
from server.errors import install_error_handlers
from server.files import PublishedFiles
from server.settings import Settings
from twin import __version__

__all__ = ["TwinApp", "create_app", "create_app_from_env"]

log = logging.getLogger(__name__)

class TwinApp(FastAPI):
    """FastAPI with the file routes' fast path (and CORS) in front of its routing."""

    entry: Any = None
    """The ASGI callable requests enter through while the app runs (set by the lifespan)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        entry = self.entry
        if entry is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
        else:
            await entry(scope, receive, send)

    async def routed(self, scope: Any, receive: Any, send: Any) -> None:
        """FastAPI's own handling (everything but the fast path)."""
        await super().__call__(scope, receive, send)


class RouteMetrics:
    """Pure-ASGI middleware counting FastAPI's requests under their route templates."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = {"status": 500, "sent": 0}

        async def counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                state["sent"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.record(
                template, scope["method"], state["status"], time.perf_counter() - started,
                state["sent"],
            )


def create_app(settings: Settings | None = None) -> TwinApp:
    """The service for ``settings`` (default: from the TWIN_* environment)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert isinstance(app, TwinApp)
        catalog = SceneCatalog(settings)
        await catalog.refresh()  # logs every scene it cannot serve
        app.state.settings = settings
        app.state.catalog = catalog
        app.state.store = await db.ProjectStore.open(settings.database_url)
        entry: Any = PublishedFiles(app.routed, catalog)
        if settings.cors_origins:
            entry = CORSMiddleware(
                entry,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "If-None-Match", "Range"],
                expose_headers=["ETag", "Content-Length", "Content-Range", "Accept-Ranges"],
            )
        app.entry = entry
        flusher = asyncio.create_task(_flush_metrics())
        watcher = asyncio.create_task(catalog.watch())
        try:
            yield
        finally:
            watcher.cancel()
            flusher.cancel()
            metrics.worker_stopped()
            app.entry = None
            await app.state.store.close()
            catalog.close()

    app = TwinApp(
        title="Rostock virtuell",
        version=__version__,
        summary="Scenes, 3D Tiles, tours and project overlays of the Rostock digital twin.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        # FastAPI's documentation pages load their scripts from a CDN: no third-party
        # requests here, so only the OpenAPI document itself is served.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(RouteMetrics)
    app.include_router(read_api.router())
    app.include_router(write_api.router())
    app.include_router(ops_api.router())
    app.include_router(web.router())  # the citizen web tour: /, /tour/…, /static, /cesium
    return app


async def _flush_metrics() -> None:
    """Hand this worker's request tallies to the metrics even when no request comes."""
    while True:
        await asyncio.sleep(metrics.FLUSH_SECONDS)
        metrics.TALLY.flush()


def create_app_from_env() -> TwinApp:
    """Factory for ``uvicorn --factory`` (settings from the TWIN_* environment)."""
    return create_app(Settings())
