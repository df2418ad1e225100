"""The planners' write API: overlay features and scenario variants of a published scene.

``router()`` gives the routes (create_app includes it):

- ``POST /api/v1/scenes/{scene}/overlays``, ``PUT|DELETE …/overlays/{id}`` — planner features
  (the GET side, merged with the published overlays, is in the read API);
- ``GET|POST /api/v1/scenes/{scene}/variants``, ``GET|PUT|DELETE …/variants/{id}``.

Every write needs ``Authorization: Bearer <token>`` (server/auth.py). The token is checked
before the request body is read, and the body is counted as it streams in: more than
``max_body_bytes`` is refused with 413 whatever Content-Length says (or whether it is sent at
all, as with a chunked upload). One table, ``ERROR_STATUS``, turns the store's errors into HTTP
statuses; responses carry ``{"detail": …}`` and never a stack trace.

Records carry a revision: responses send it as the ETag, and a PUT or DELETE with
``If-Match`` is refused with 412 when someone else changed the record in between.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, Protocol

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

from server.auth import WriteTokens, bearer_token
from server.db import (
    OverlayInUse,
    OverlayRecord,
    ProjectStore,
    RecordExists,
    RecordNotFound,
    RevisionMismatch,
    StoreConfigError,
    StoreUnavailable,
    UnknownOverlays,
    VariantRecord,
    feature_bbox,
)
from server.write_models import ID_PATTERN, OverlayFeature, Variant, VariantBody, VariantList
from twin.errors import TwinError

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GEOJSON = "application/geo+json"
REALM = 'Bearer realm="rostock-virtuell"'
RECORD_ID = re.compile(ID_PATTERN)
WRITER_SCOPE_KEY = "twin.writer"
REGION_MARGIN_DEG = 0.05
"""How far (degrees; ~3 km east-west, ~5 km north-south at Rostock) a planner's feature may
reach beyond the scene's area."""


class SceneNotFound(TwinError, LookupError):
    """No published scene with this id."""


class PublishedFeature(TwinError):
    """A published overlay feature is read-only for the write API."""


ERROR_STATUS: dict[type[Exception], int] = {
    SceneNotFound: 404,
    RecordNotFound: 404,
    RecordExists: 409,
    PublishedFeature: 409,
    OverlayInUse: 409,
    RevisionMismatch: 412,
    StoreUnavailable: 503,
    StoreConfigError: 503,
}
"""Domain errors → HTTP status; the most specific class in an error's MRO wins."""


def _status_of(exc: Exception) -> int | None:
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return None


# -- what the router needs from the read side ------------------------------------------------


class PublishedScene(Protocol):
    """The current published version of a scene (server.catalog.SceneVersion)."""

    @property
    def epoch_ids(self) -> tuple[str, ...]: ...
    @property
    def layer_ids(self) -> tuple[str, ...]: ...
    @property
    def overlay_ids(self) -> set[str]: ...
    @property
    def manifest(self) -> Any: ...


class Catalog(Protocol):
    """The published scenes (server.catalog.SceneCatalog)."""

    async def current(self, scene_id: str) -> PublishedScene | None: ...


# -- authentication, body limit and the error table, per route -------------------------------


async def _write_tokens(app: Any) -> WriteTokens:
    tokens = getattr(app.state, "write_tokens", None)
    if tokens is None:
        settings = app.state.settings
        tokens = await anyio.to_thread.run_sync(
            WriteTokens.parse, settings.write_tokens, settings.write_tokens_file
        )
        app.state.write_tokens = tokens
    return tokens


def _unauthorized(detail: str, error: str | None) -> JSONResponse:
    challenge = REALM + (f', error="{error}"' if error else "")
    return JSONResponse({"detail": detail}, status_code=401,
                        headers={"WWW-Authenticate": challenge})


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": _too_large_detail(limit)}, status_code=413)


class _LimitedReceive:
    """Counts the body as it streams in and stops it past the limit (also when chunked)."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._received = 0

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                raise HTTPException(413, detail=_too_large_detail(self._limit))
        return message


def _too_large_detail(limit: int) -> str:
    return (f"the request body is larger than {limit} bytes, the service's limit "
            "(max_body_bytes); split the upload or simplify the geometry")


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number (RFC 8259)", name, 0)


class _StrictJSONRequest(Request):
    """Parses bodies as RFC 8259 JSON: Python's NaN and Infinity extensions are refused."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            value = json.loads(await self.body(), parse_constant=_refuse_constant)
            try:  # "\ud800" is valid JSON syntax but no text: it could be neither stored nor sent
                json.dumps(value, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise json.JSONDecodeError(
                    "a \\u escape names a lone UTF-16 surrogate, which is not text", "", 0
                ) from None
            self._json = value
        return self._json


class WriteRoute(APIRoute):
    """A route whose writes are authenticated before the body is read, whose body is limited
    on the stream, and whose domain errors become statuses through ``ERROR_STATUS``."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await super().handle(scope, receive, send)
            return
        app = scope["app"]
        request = Request(scope)
        tokens = await _write_tokens(app)
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            response = _unauthorized(
                "this write needs an 'Authorization: Bearer <token>' header (ask the service's "
                "operator for a token made with `twin token`)",
                None,
            )
            await response(scope, receive, send)
            return
        if not tokens.accepts(token):
            response = _unauthorized("the bearer token is not accepted", "invalid_token")
            await response(scope, receive, send)
            return
        scope[WRITER_SCOPE_KEY] = tokens.fingerprint(token)
        limit = int(app.state.settings.max_body_bytes)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        await super().handle(scope, _LimitedReceive(receive, limit), send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(_StrictJSONRequest(request.scope, request.receive))
            except TwinError as exc:
                status = _status_of(exc)
                if status is None:
                    raise
                headers = {"Retry-After": "5"} if status == 503 else None
                if status >= 500:
                    log.error("write API: %s", exc)
                    detail = "the project store is unavailable; try again shortly"
                else:
                    detail = str(exc)
                return JSONResponse({"detail": detail}, status_code=status, headers=headers)

        return handle


# -- dependencies ----------------------------------------------------------------------------

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PlannerToken",
    description="A planner's token (`twin token`); the service keeps only its SHA-256.",
)


def current_writer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    """The fingerprint of the accepted token (checked by WriteRoute before the body)."""
    del credentials  # declared for the OpenAPI security scheme; checked in WriteRoute
    return str(request.scope.get(WRITER_SCOPE_KEY, ""))


def get_store(request: Request) -> ProjectStore:
    """The project store opened by create_app."""
    store = getattr(request.app.state, "store", None)
    if store is None:
        raise StoreUnavailable("the project store is not open")
    return store


async def get_scene(
    request: Request,
    scene: Annotated[str, Path(description="scene id, e.g. warnowbruecke")],
) -> PublishedScene:
    """The scene's current published version; 404 when there is none."""
    catalog: Catalog = request.app.state.catalog
    version = await catalog.current(scene)
    if version is None:
        raise SceneNotFound(f"no published scene {scene!r}")
    return version


Writer = Annotated[str, Depends(current_writer)]
StoreDep = Annotated[ProjectStore, Depends(get_store)]
SceneDep = Annotated[PublishedScene, Depends(get_scene)]
IfMatch = Annotated[
    str | None,
    Header(description="the ETag a client read; the write is refused (412) if it changed"),
]
IfNoneMatch = Annotated[str | None, Header()]
SceneIdPath = Annotated[str, Path(alias="scene")]
FeatureIdPath = Annotated[str, Path(description="overlay feature id")]
VariantIdPath = Annotated[str, Path(description="scenario variant id")]


def _etag(revision: int) -> str:
    return f'"{revision}"'


def _if_revision(if_match: str | None) -> int | None:
    """The revision an If-Match header asks for (None: no condition)."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value.isdigit():
        raise RevisionMismatch(f"If-Match {if_match!r} is not an ETag this service gave out")
    return int(value)


def _invalid(location: tuple[str | int, ...], message: str, value: Any) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", *location), "msg": message, "input": value}]
    )


def _scene_bounds(manifest: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """West, south, east, north (degrees) of the scene's area, else of its region."""
    area = manifest.get("area")
    try:
        if isinstance(area, dict):
            positions = [p for ring in area["coordinates"] for p in ring]
            lons = [float(p[0]) for p in positions]
            lats = [float(p[1]) for p in positions]
            return min(lons), min(lats), max(lons), max(lats)
        region = manifest.get("region")
        if isinstance(region, list) and len(region) >= 4:
            west, south, east, north = (float(value) for value in region[:4])
            return west, south, east, north
    except (KeyError, TypeError, ValueError, IndexError):
        pass
    return None


def _check_region(scene: PublishedScene, scene_id: str, feature: dict[str, Any]) -> None:
    """A planner's feature must lie in the scene's area or near it (catches swapped lon/lat
    and coordinates in another CRS)."""
    bounds = _scene_bounds(getattr(scene.manifest, "document", {}))
    if bounds is None:
        return
    west, south, east, north = bounds
    west, south = west - REGION_MARGIN_DEG, south - REGION_MARGIN_DEG
    east, north = east + REGION_MARGIN_DEG, north + REGION_MARGIN_DEG
    f_west, f_south, f_east, f_north = feature_bbox(feature)
    if f_west < west or f_east > east or f_south < south or f_north > north:
        raise _invalid(
            ("geometry", "coordinates"),
            f"the feature ({f_west:.5f}..{f_east:.5f} E, {f_south:.5f}..{f_north:.5f} N) "
            f"reaches outside scene {scene_id}'s area and surroundings ({west:.5f}..{east:.5f} E, "
            f"{south:.5f}..{north:.5f} N); positions are [longitude, latitude] in degrees",
            feature["geometry"]["coordinates"],
        )


def _check_same_id(body_id: str | None, url_id: str) -> None:
    """A PUT body's id, if it has one, must be the URL's."""
    if body_id is not None and body_id != url_id:
        raise _invalid(("id",), f"the body's id {body_id!r} differs from the URL's "
                       f"{url_id!r}", body_id)


def _feature_response(record: OverlayRecord, status: int, location: str | None) -> JSONResponse:
    headers = {"ETag": _etag(record.revision)}
    if location:
        headers["Location"] = location
    return JSONResponse(record.feature, status_code=status, media_type=GEOJSON, headers=headers)


def _variant_response(record: VariantRecord, status: int, location: str | None) -> JSONResponse:
    headers = {"ETag": _etag(record.revision)}
    if location:
        headers["Location"] = location
    body = Variant(**record.to_json()).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def _check_variant(scene: PublishedScene, body: VariantBody) -> None:
    if body.base_epoch not in scene.epoch_ids:
        raise _invalid(
            ("base_epoch",),
            f"{body.base_epoch!r} is not an epoch of the scene ({', '.join(scene.epoch_ids)})",
            body.base_epoch,
        )
    for index, layer in enumerate(body.layers):
        if layer not in scene.layer_ids:
            raise _invalid(
                ("layers", index),
                f"{layer!r} is not a layer of the scene ({', '.join(scene.layer_ids)})",
                layer,
            )


@contextmanager
def _unknown_overlays_of(body: VariantBody) -> Iterator[None]:
    """The store's UnknownOverlays as a 422 that points at the body's first unknown id."""
    try:
        yield
    except UnknownOverlays as exc:
        index = body.overlays.index(exc.feature_ids[0])
        raise _invalid(("overlays", index), str(exc), exc.feature_ids[0]) from None


_ERRORS = {
    401: {"description": "no bearer token, or one that is not accepted"},
    404: {"description": "no such scene or record"},
    413: {"description": "request body larger than the service's max_body_bytes"},
    422: {"description": "the body is not a valid feature or variant"},
    503: {"description": "the project store is unavailable"},
}


# -- the routes ------------------------------------------------------------------------------


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Read the token hashes at start-up, so a bad configuration stops the service there."""
    settings = getattr(app.state, "settings", None)
    if settings is not None:
        tokens = await anyio.to_thread.run_sync(
            WriteTokens.parse, settings.write_tokens, settings.write_tokens_file
        )
        app.state.write_tokens = tokens
        if not tokens:
            log.warning(
                "no write tokens configured (TWIN_WRITE_TOKENS, TWIN_WRITE_TOKENS_FILE): the "
                "write API refuses every write"
            )
    yield


def router() -> APIRouter:
    """The write API's routes (overlays: writes; variants: reads and writes)."""
    api = APIRouter(prefix=f"{API_PREFIX}/scenes/{{scene}}", route_class=WriteRoute,
                    lifespan=_lifespan)

    @api.post(
        "/overlays",
        status_code=201,
        tags=["overlays"],
        summary="Create a planner's overlay feature",
        response_class=JSONResponse,
        responses={**_ERRORS, 201: {"content": {GEOJSON: {}}},
                   409: {"description": "the id exists (published or a planner's)"}},
    )
    async def create_overlay(
        scene_id: SceneIdPath,
        feature: OverlayFeature,
        scene: SceneDep,
        store: StoreDep,
        writer: Writer,
    ) -> JSONResponse:
        """Store a new GeoJSON Feature (RFC 7946, lon/lat) with the overlay properties; the id is
        generated when the feature has none. 409 if the id is taken, also by a published one."""
        feature_id = feature.id or uuid.uuid4().hex
        if feature_id in scene.overlay_ids:
            raise RecordExists(
                f"scene {scene_id}: overlay feature {feature_id!r} is published with the scene; "
                "choose another id"
            )
        document = feature.to_feature(feature_id)
        _check_region(scene, scene_id, document)
        record = await store.create_overlay(scene_id, document)
        log.info("overlay %s/%s created (token %s)", scene_id, feature_id, writer)
        return _feature_response(
            record, 201, f"{API_PREFIX}/scenes/{scene_id}/overlays/{feature_id}"
        )

    @api.put(
        "/overlays/{feature_id}",
        tags=["overlays"],
        summary="Replace a planner's overlay feature",
        response_class=JSONResponse,
        responses={**_ERRORS, 200: {"content": {GEOJSON: {}}},
                   409: {"description": "the feature is published with the scene (read-only)"},
                   412: {"description": "If-Match does not match the current revision"}},
    )
    async def replace_overlay(
        scene_id: SceneIdPath,
        feature_id: FeatureIdPath,
        feature: OverlayFeature,
        scene: SceneDep,
        store: StoreDep,
        writer: Writer,
        if_match: IfMatch = None,
    ) -> JSONResponse:
        """Replace a planner's feature as a whole (the body's id, if any, must be the URL's)."""
        _check_same_id(feature.id, feature_id)
        await _refuse_published(store, scene, scene_id, feature_id)
        document = feature.to_feature(feature_id)
        _check_region(scene, scene_id, document)
        record = await store.replace_overlay(scene_id, document, _if_revision(if_match))
        log.info("overlay %s/%s replaced (token %s)", scene_id, feature_id, writer)
        return _feature_response(record, 200, None)

    @api.delete(
        "/overlays/{feature_id}",
        status_code=204,
        tags=["overlays"],
        summary="Delete a planner's overlay feature",
        responses={**_ERRORS,
                   409: {"description": "published (read-only) or shown in a variant"},
                   412: {"description": "If-Match does not match the current revision"}},
    )
    async def delete_overlay(
        scene_id: SceneIdPath,
        feature_id: FeatureIdPath,
        scene: SceneDep,
        store: StoreDep,
        writer: Writer,
        if_match: IfMatch = None,
    ) -> Response:
        """Delete a planner's feature; refused while a scenario variant shows it."""
        await _refuse_published(store, scene, scene_id, feature_id)
        await store.delete_overlay(scene_id, feature_id, _if_revision(if_match))
        log.info("overlay %s/%s deleted (token %s)", scene_id, feature_id, writer)
        return Response(status_code=204)

    @api.get("/variants", tags=["variants"], summary="List the scene's scenario variants",
             responses={404: _ERRORS[404]})
    async def list_variants(
        scene_id: SceneIdPath, scene: SceneDep, store: StoreDep
    ) -> VariantList:
        """Every scenario variant of the scene, by id."""
        del scene  # resolved for the 404 of an unknown scene
        records = await store.variants(scene_id)
        return VariantList(
            scene=scene_id, variants=[Variant(**record.to_json()) for record in records]
        )

    @api.get("/variants/{variant_id}", tags=["variants"], summary="One scenario variant",
             response_model=Variant, responses={404: _ERRORS[404], 304: {}})
    async def get_variant(
        scene_id: SceneIdPath,
        variant_id: VariantIdPath,
        scene: SceneDep,
        store: StoreDep,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        """A scenario variant; its ETag is its revision (If-None-Match → 304)."""
        del scene
        record = await store.variant(scene_id, _variant_id(scene_id, variant_id))
        if record is None:
            raise RecordNotFound(f"scene {scene_id}: no scenario variant {variant_id!r}")
        etag = _etag(record.revision)
        if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
            return Response(status_code=304, headers={"ETag": etag})
        return _variant_response(record, 200, None)

    @api.post("/variants", status_code=201, tags=["variants"], response_model=Variant,
              summary="Create a scenario variant",
              responses={**_ERRORS, 409: {"description": "the id exists"}})
    async def create_variant(
        scene_id: SceneIdPath,
        body: VariantBody,
        scene: SceneDep,
        store: StoreDep,
        writer: Writer,
    ) -> JSONResponse:
        """A planner's named alternative of the scene: a base epoch, the layers and overlay
        features shown. The id is generated when the body has none."""
        _check_variant(scene, body)
        variant_id = body.id or uuid.uuid4().hex
        with _unknown_overlays_of(body):
            record = await store.create_variant(
                scene_id, variant_id, body.document(), frozenset(scene.overlay_ids)
            )
        log.info("variant %s/%s created (token %s)", scene_id, variant_id, writer)
        return _variant_response(
            record, 201, f"{API_PREFIX}/scenes/{scene_id}/variants/{variant_id}"
        )

    @api.put("/variants/{variant_id}", tags=["variants"], response_model=Variant,
             summary="Replace a scenario variant",
             responses={**_ERRORS, 412: {"description": "If-Match does not match"}})
    async def replace_variant(
        scene_id: SceneIdPath,
        variant_id: VariantIdPath,
        body: VariantBody,
        scene: SceneDep,
        store: StoreDep,
        writer: Writer,
        if_match: IfMatch = None,
    ) -> JSONResponse:
        """Replace a variant as a whole (the body's id, if any, must be the URL's)."""
        _check_same_id(body.id, variant_id)
        _check_variant(scene, body)
        with _unknown_overlays_of(body):
            record = await store.replace_variant(
                scene_id,
                _variant_id(scene_id, variant_id),
                body.document(),
                frozenset(scene.overlay_ids),
                _if_revision(if_match),
            )
        log.info("variant %s/%s replaced (token %s)", scene_id, variant_id, writer)
        return _variant_response(record, 200, None)

    @api.delete("/variants/{variant_id}", status_code=204, tags=["variants"],
                summary="Delete a scenario variant",
                responses={**_ERRORS, 412: {"description": "If-Match does not match"}})
    async def delete_variant(
        scene_id: SceneIdPath,
        variant_id: VariantIdPath,
        scene: SceneDep,
        store: StoreDep,
        writer: Writer,
        if_match: IfMatch = None,
    ) -> Response:
        """Delete a scenario variant."""
        del scene
        await store.delete_variant(
            scene_id, _variant_id(scene_id, variant_id), _if_revision(if_match)
        )
        log.info("variant %s/%s deleted (token %s)", scene_id, variant_id, writer)
        return Response(status_code=204)

    return api


def _planner_id(scene_id: str, record_id: str, what: str) -> str:
    """A record id from the URL; ids no planner record can have are not looked up."""
    if not RECORD_ID.match(record_id):
        raise RecordNotFound(f"scene {scene_id}: no {what} {record_id!r}")
    return record_id


def _variant_id(scene_id: str, variant_id: str) -> str:
    """A scenario variant id from the URL (404 for one no variant can have)."""
    return _planner_id(scene_id, variant_id, "scenario variant")


async def _refuse_published(
    store: ProjectStore, scene: PublishedScene, scene_id: str, feature_id: str
) -> None:
    """Published features are changed by republishing the scene, not through the API."""
    if feature_id not in scene.overlay_ids:
        _planner_id(scene_id, feature_id, "planner overlay feature")
        return
    if not RECORD_ID.match(feature_id) or await store.overlay_record(
        scene_id, feature_id
    ) is None:
        raise PublishedFeature(
            f"scene {scene_id}: overlay feature {feature_id!r} is published with the scene and "
            "read-only here; change it in the scene's overlay file and republish"
        )


__all__ = ["ERROR_STATUS", "WriteRoute", "router"]
