"""The file routes' fast path: ``/api/v1/scenes/{scene}/v/{version}/{path}`` and ``…/current/…``.

Tile requests are nearly all the traffic, and routing them through FastAPI (path matching,
dependency resolution, a ``Response`` object, middleware) costs several times what sending
the bytes does. This pure-ASGI layer sits in front of FastAPI: it recognises the two file URLs
by prefix, answers them from the catalog's cache with preformatted headers, counts them in the
metrics under their route templates, and hands every other request to FastAPI. The same two
routes are declared in FastAPI too (``server/read_api.py``), for the OpenAPI document; their
handlers call ``serve`` below, so both ways give the same answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server import metrics
from server.catalog import API_PREFIX, NotPublished, SceneCatalog
from server.delivery import (
    CACHE_IMMUTABLE,
    CACHE_SHORT,
    BrokenStream,
    RequestHeaders,
    send_entry,
    send_json_error,
)
from twin.errors import TwinError

__all__ = ["ROUTE_CURRENT", "ROUTE_VERSION", "PublishedFiles"]

log = logging.getLogger(__name__)

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

ROUTE_VERSION = f"{API_PREFIX}/scenes/{{scene}}/v/{{version}}/{{path}}"
ROUTE_CURRENT = f"{API_PREFIX}/scenes/{{scene}}/current/{{path}}"
_PREFIX = f"{API_PREFIX}/scenes/"
_PREFIX_LENGTH = len(_PREFIX)
_ENCODED_SEPARATORS = (b"%2f", b"%2F", b"%5c", b"%5C")
"""A slash or backslash sent percent-encoded is never a file path (no such name is published)."""


class PublishedFiles:
    """Pure-ASGI handler of the two file routes, in front of ``app`` (FastAPI)."""

    def __init__(self, app: ASGIApp, catalog: SceneCatalog) -> None:
        self.app = app
        self.catalog = catalog

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            if path.startswith(_PREFIX):
                scene_id, _, tail = path[_PREFIX_LENGTH:].partition("/")
                if tail.startswith("v/"):
                    version, _, file_path = tail[2:].partition("/")
                    await self.serve(scope, send, scene_id, version, file_path)
                    return
                if tail.startswith("current/"):
                    await self.serve(scope, send, scene_id, None, tail[8:])
                    return
        await self.app(scope, receive, send)

    async def serve(
        self, scope: dict[str, Any], send: Any, scene_id: str, version: str | None, path: str
    ) -> None:
        """Answer one file request (``version`` None: the current version)."""
        started = time.perf_counter()
        method: str = scope["method"]
        route = ROUTE_CURRENT if version is None else ROUTE_VERSION
        status, sent = 404, 0
        try:
            raw_path: bytes = scope.get("raw_path") or b""
            if b"%" in raw_path and any(code in raw_path for code in _ENCODED_SEPARATORS):
                sent = await send_json_error(send, method, 404, "no such file")
                return
            catalog = self.catalog
            scene = catalog.version_now(scene_id, version)
            if scene is None:
                if version is None:
                    scene = await catalog.current(scene_id)
                else:
                    scene = await catalog.version(scene_id, version)
            if scene is None:
                detail = (
                    f"no scene {scene_id!r}" if not catalog.has_scene(scene_id)
                    else f"scene {scene_id!r} has no version {version!r}"
                )
                sent = await send_json_error(send, method, 404, detail)
                return
            entry = catalog.entry_now(scene, path)
            if entry is None:
                try:
                    entry = await catalog.file_entry(scene, path)
                except (NotPublished, FileNotFoundError):
                    entry = None
            if entry is None:
                sent = await send_json_error(
                    send, method, 404, f"no file {path!r} in scene {scene_id!r} {scene.version}"
                )
                return
            stream = catalog.stream(scene, path) if entry.body is None else None
            status, sent = await send_entry(
                send,
                method,
                RequestHeaders(scope["headers"]),
                entry,
                CACHE_SHORT if version is None else CACHE_IMMUTABLE,
                None,
                stream,
            )
        except BrokenStream:
            # The status line has gone out; the server closes the connection short of the
            # announced length, which is how a client learns of the failure.
            log.exception("%s %s: reading failed while streaming", method, scope["path"])
            status = 500
        except (OSError, TwinError):
            log.exception("%s %s: cannot read the published file", method, scope["path"])
            status = 500
            sent = await send_json_error(send, method, 500, "internal error reading the file")
        finally:
            metrics.record(route, method, status, time.perf_counter() - started, sent)
