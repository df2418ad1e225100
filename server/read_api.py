"""The read API (no authentication): scenes, their files, tours and overlays.

Documents are answered as ``Entry`` objects (server/delivery.py), so every answer carries a
strong ETag, a Cache-Control value, and a brotli or gzip form for clients that accept one.
The file routes are answered by the fast path in server/files.py before FastAPI sees them;
they are declared here so the OpenAPI document describes them, and their handlers run the
same code.
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Path, Query
from fastapi.routing import APIRoute
from shapely.geometry import shape
from starlette.responses import Response

from server.catalog import API_PREFIX, SceneCatalog, SceneVersion
from server.delivery import (
    CACHE_REVALIDATE,
    CACHE_SHORT,
    Entry,
    EntryCache,
    RequestHeaders,
    json_bytes,
    send_entry,
)
from server.deps import CatalogDep, StoreDep
from server.errors import BadParameter, NotFound

__all__ = ["EntryResponse", "router"]

GEOJSON = b"application/geo+json"
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such scene (or stop, feature, file)."},
}
_CONDITIONAL: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the ETag in If-None-Match is current."},
}
_FILE_RESPONSES = _ERRORS | _CONDITIONAL | {
    206: {"description": "Partial content (Range)."},
    416: {"description": "Range not satisfiable."},
}

SceneId = Annotated[str, Path(description="Scene id, e.g. `warnowbruecke`.")]


class EntryResponse(Response):
    """Send an ``Entry`` with conditional requests, ranges and content negotiation."""

    media_type = "application/json"

    def __init__(self, entry: Entry, cache_control: bytes, status_code: int = 200) -> None:
        self.entry = entry
        self.cache_control = cache_control
        self.status_code = status_code
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send_entry(
            send, scope["method"], RequestHeaders(scope["headers"]), self.entry, self.cache_control
        )


class _Documents:
    """Recently built dynamic documents by content, so each is compressed once."""

    def __init__(self) -> None:
        self.cache = EntryCache(16 << 20)

    def entry(self, document: Any, content_type: bytes = b"application/json") -> Entry:
        """The entry of a document, built (hashed, compressed) only when it is new."""
        body = json_bytes(document)
        digest = hashlib.sha256(body).hexdigest()
        key = (content_type, digest)
        cached = self.cache.get(key)
        if cached is None:
            cached = Entry(body, len(body), digest, content_type)
            self.cache.put(key, cached)
        return cached


_documents = _Documents()


def router() -> APIRouter:
    """The read routes under /api/v1."""
    api = APIRouter(prefix=f"{API_PREFIX}/scenes", tags=["scenes"])

    @api.get("", response_class=EntryResponse, responses=_CONDITIONAL)
    async def list_scenes(catalog: CatalogDep) -> EntryResponse:
        """Every published scene: id, title, description, version, number of stops, links."""
        scenes = await catalog.all_current()
        document = {"scenes": [scene.summary() for scene in scenes]}
        return EntryResponse(_documents.entry(document), CACHE_SHORT)

    @api.get("/{scene}", response_class=EntryResponse, responses=_ERRORS | _CONDITIONAL)
    async def scene_detail(scene: SceneId, catalog: CatalogDep) -> EntryResponse:
        """The scene's manifest with absolute URLs: layers[].tileset_url, epochs[].tileset_url,
        tour_url, overlays_url; region, attributions. Tileset URLs name the version
        (immutable), so a viewer keeps loading one consistent version."""
        version = await _current(catalog, scene)
        return EntryResponse(version.documents["detail"], CACHE_SHORT)

    @api.get(
        "/{scene}/v/{version}/{path:path}", response_class=Response,
        responses=_FILE_RESPONSES,
    )
    async def version_file(
        scene: SceneId,
        version: Annotated[str, Path(description="Version: 16 hex digits.")],
        path: Annotated[str, Path(description="File path inside the version.")],
    ) -> Response:
        """Any file of a published version (tileset.json, GLB tiles, manifest.json, ...);
        immutable. Answered by the fast path in front of FastAPI."""
        return _FileResponse(scene, version, path)

    @api.get(
        "/{scene}/current/{path:path}", response_class=Response,
        responses=_FILE_RESPONSES,
    )
    async def current_file(
        scene: SceneId,
        path: Annotated[str, Path(description="File path inside the version.")],
    ) -> Response:
        """The same file in the scene's current version (short cache: it can be
        republished). Answered by the fast path in front of FastAPI."""
        return _FileResponse(scene, None, path)

    @api.get("/{scene}/tour", response_class=EntryResponse, responses=_ERRORS | _CONDITIONAL)
    async def tour(scene: SceneId, catalog: CatalogDep) -> EntryResponse:
        """The scene's tour (tour.json): title and numbered stops with cameras."""
        version = await _current(catalog, scene)
        return EntryResponse(version.documents["tour"], CACHE_SHORT)

    @api.get(
        "/{scene}/tour/stops/{number}", response_class=EntryResponse,
        responses=_ERRORS | _CONDITIONAL,
    )
    async def tour_stop(
        scene: SceneId,
        number: Annotated[int, Path(ge=1, le=10_000, description="Stop number, from 1.")],
        catalog: CatalogDep,
    ) -> EntryResponse:
        """One stop of the tour."""
        version = await _current(catalog, scene)
        entry = version.documents.get(f"stop/{number}")
        if entry is None:
            stops = len(version.tour.get("stops", []))
            raise NotFound(f"scene {scene!r}: no stop {number}; the tour has {stops} stops")
        return EntryResponse(entry, CACHE_SHORT)

    @api.get(
        "/{scene}/overlays", response_class=EntryResponse,
        responses=_ERRORS | _CONDITIONAL | {422: {"description": "Bad bbox."}},
    )
    async def overlays(
        scene: SceneId,
        catalog: CatalogDep,
        store: StoreDep,
        bbox: Annotated[
            str | None,
            Query(
                description="Only features that intersect this box: west,south,east,north in "
                "degrees (WGS 84 lon/lat).",
                examples=["12.12,54.08,12.16,54.11"],
            ),
        ] = None,
    ) -> EntryResponse:
        """The scene's overlay features as a GeoJSON FeatureCollection: the published ones
        and the planners' ones."""
        version = await _current(catalog, scene)
        box = _parse_bbox(bbox) if bbox is not None else None
        stored = await store.overlay_features(scene) if store is not None else []
        stored_ids = {str(feature.get("id")) for feature in stored}
        features = [
            feature
            for feature, geometry in zip(
                version.overlay_features, version.overlay_shapes, strict=True
            )
            if feature["id"] not in stored_ids and (box is None or geometry.intersects(box))
        ]
        for feature in stored:
            if box is None or _intersects(feature, box):
                features.append(feature)
        document = {"type": "FeatureCollection", "features": features}
        return EntryResponse(_documents.entry(document, GEOJSON), CACHE_REVALIDATE)

    @api.get(
        "/{scene}/overlays/{feature_id}", response_class=EntryResponse,
        responses=_ERRORS | _CONDITIONAL,
    )
    async def overlay(
        scene: SceneId,
        feature_id: Annotated[str, Path(description="The feature's id.")],
        catalog: CatalogDep,
        store: StoreDep,
    ) -> EntryResponse:
        """One overlay feature (a planner's, else a published one)."""
        version = await _current(catalog, scene)
        feature = await store.overlay_feature(scene, feature_id) if store is not None else None
        if feature is None:
            feature = next(
                (item for item in version.overlay_features if item["id"] == feature_id), None
            )
        if feature is None:
            raise NotFound(f"scene {scene!r}: no overlay feature {feature_id!r}")
        return EntryResponse(_documents.entry(feature, GEOJSON), CACHE_REVALIDATE)

    # HEAD for every document (the file routes answer HEAD in the fast path); kept out of the
    # OpenAPI document, where it would only repeat the GET operations.
    for route in list(api.routes):
        if isinstance(route, APIRoute) and route.methods == {"GET"}:
            api.add_api_route(
                route.path.removeprefix(api.prefix), route.endpoint, methods=["HEAD"],
                response_class=route.response_class, include_in_schema=False,
            )
    return api


async def _current(catalog: SceneCatalog, scene_id: str) -> SceneVersion:
    version = await catalog.current(scene_id)
    if version is None:
        raise NotFound(f"no scene {scene_id!r}; GET {API_PREFIX}/scenes lists them")
    return version


def _parse_bbox(text: str) -> Any:
    parts = text.split(",")
    if len(parts) != 4:
        raise BadParameter(f"bbox {text!r}: expected four numbers west,south,east,north")
    try:
        west, south, east, north = (float(part) for part in parts)
    except ValueError:
        raise BadParameter(f"bbox {text!r}: expected four numbers west,south,east,north") from None
    if not all(math.isfinite(value) for value in (west, south, east, north)):
        raise BadParameter(f"bbox {text!r}: numbers must be finite")
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise BadParameter(
            f"bbox {text!r}: needs -180 <= west <= east <= 180 and -90 <= south <= north <= 90"
        )
    return shapely.box(west, south, east, north)


def _intersects(feature: dict[str, Any], box: Any) -> bool:
    try:
        return bool(shape(feature["geometry"]).intersects(box))
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


class _FileResponse(Response):
    """The declared file routes run the fast path's code (server/files.py)."""

    def __init__(self, scene: str, version: str | None, path: str) -> None:
        self.scene, self.version, self.path = scene, version, path
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from server.files import PublishedFiles

        files = PublishedFiles(_not_found, scope["app"].state.catalog)
        await files.serve(scope, send, self.scene, self.version, self.path)


async def _not_found(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    raise NotFound("no such file")
