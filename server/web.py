"""The citizen web tour (issue 6): start page, tour viewer pages, viewer assets and CesiumJS.

Routes (not part of the API, so kept out of the OpenAPI document)::

    GET /                       start page: every published tour with description and preview
    GET /tour/{scene}           the tour viewer at stop 1
    GET /tour/{scene}/{n}       the tour viewer at stop n (a deep link; stops count from 1)
    GET /preview/{scene}.svg    the scene's preview map (area, river, overlays, numbered stops)
    GET /static/{path}          the viewer's own assets (server/static)
    GET /cesium/{path}          CesiumJS's Build/Cesium folder from node_modules

The pages are rendered on the server from the published scene (the tour's text is in the HTML,
so it reads without JavaScript or WebGL); ``static/js/tour.js`` then loads the scene through
the API (docs/scenes.md, "The service's URLs") and drives CesiumJS. Every page carries a
Content-Security-Policy that allows only this origin: the browser itself refuses any request
elsewhere, whatever a tileset or overlay might name.

Static files are answered like published files (server/delivery.py): strong ETags, 304s,
ranges and brotli/gzip forms, compressed once per process in a worker thread and held in a
bounded cache — CesiumJS's 4.7 MB module goes out as about 1.2 MB.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import logging
import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import brotli
import numpy as np
from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pyproj import Transformer
from starlette.responses import HTMLResponse, Response

from server.catalog import API_PREFIX, SceneCatalog, SceneVersion
from server.delivery import Entry, EntryCache, RequestHeaders, send_entry, send_json_error
from server.deps import CatalogDep
from twin.validate import NODE_MODULES_ENV

__all__ = [
    "LANGUAGES",
    "AssetFolder",
    "find_cesium",
    "preview_svg",
    "router",
]

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"
CESIUM_BUILD = Path("cesium") / "Build" / "Cesium"
LANGUAGES = ("de", "en")
"""Languages of the pages; the first is the default (the city's own)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'; "
    "worker-src 'self' blob:; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "font-src 'self'; connect-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
"""Only this origin, for every kind of request: the browser itself refuses anything else,
whatever a tileset or overlay names. CesiumJS decodes textures from blob:/data: URLs and
compiles WebAssembly (draco, basis); 'unsafe-eval' because both of its bundles (ESM and IIFE)
embed knockout, which evaluates ``"this"`` when the module loads. Inline styles are what
CesiumJS sets on its elements (and the progress bar's width)."""
STATIC_PAGE_POLICY = (
    "default-src 'self'; script-src 'none'; img-src 'self' data:; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
"""The start page and the error pages run no script at all."""

PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

CACHE_ASSETS = b"no-cache"
"""The viewer's own files change with the service: always revalidate (a 304 is cheap)."""
CACHE_CESIUM = b"public, max-age=86400"
"""CesiumJS is pinned by package-lock.json; a day of caching, then revalidation by ETag."""

ASSET_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".mjs": b"text/javascript; charset=utf-8",
    ".cjs": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".json": b"application/json",
    ".svg": b"image/svg+xml",
    ".xml": b"application/xml",
    ".wasm": b"application/wasm",
    ".png": b"image/png",
    ".jpg": b"image/jpeg",
    ".jpeg": b"image/jpeg",
    ".gif": b"image/gif",
    ".ico": b"image/x-icon",
    ".webp": b"image/webp",
    ".ktx2": b"image/ktx2",
    ".woff2": b"font/woff2",
    ".txt": b"text/plain; charset=utf-8",
}
TEXT_TYPES = {
    b"text/html; charset=utf-8", b"text/javascript; charset=utf-8", b"text/css; charset=utf-8",
    b"application/json", b"image/svg+xml", b"application/xml", b"application/wasm",
    b"text/plain; charset=utf-8",
}
_GZIP_LEVEL = 6
_BROTLI_QUALITY = 5
"""Brotli 5 compresses CesiumJS in 1.5 s (quality 9: 4.5 s) for 4 % more bytes; each
process compresses a file once, on its first request."""
_MIN_COMPRESS = 256


# --------------------------------------------------------------------------------------------
# Static files
# --------------------------------------------------------------------------------------------


def find_cesium() -> Path | None:
    """CesiumJS's Build/Cesium folder: under $TWIN_NODE_MODULES, else in the nearest
    node_modules above the package or the working directory (as twin/validate.py looks)."""
    env = os.environ.get(NODE_MODULES_ENV)
    starts = [Path(env)] if env else []
    candidates = [folder / CESIUM_BUILD for folder in starts]
    for start in (WEB_DIR, Path.cwd().resolve()):
        candidates += [folder / "node_modules" / CESIUM_BUILD for folder in (start, *start.parents)]
    for candidate in candidates:
        if (candidate / "index.js").is_file():
            return candidate
    return None


def _compressed(body: bytes, media_type: bytes) -> Entry:
    """An entry with its brotli and gzip forms for text; runs in a worker thread."""
    entry = Entry(body, len(body), hashlib.sha256(body).hexdigest(), media_type, compress=False)
    if media_type in TEXT_TYPES and len(body) >= _MIN_COMPRESS:
        br = brotli.compress(body, quality=_BROTLI_QUALITY)
        gz = gzip.compress(body, _GZIP_LEVEL, mtime=0)
        entry.br = br if len(br) < len(body) else None
        entry.gz = gz if len(gz) < len(body) else None
        entry.compressible = True
    return entry


class AssetFolder:
    """Files of one folder answered with ETags, 304s, ranges and compression, held in a cache.

    A path is served only when it names a regular file inside the folder (after resolving
    symlinks); hidden names, ``..`` and backslashes are never files here.
    """

    def __init__(self, root: Path | None, cache_control: bytes, what: str, hint: str) -> None:
        self.root = root.resolve() if root is not None else None
        self.cache_control = cache_control
        self.what = what
        self.hint = hint
        self.cache = EntryCache(96 << 20)
        self._loading: dict[Path, asyncio.Future[Entry]] = {}

    def locate(self, path: str) -> Path | None:
        """The file ``path`` names inside the folder, or None."""
        if self.root is None or not path or "\\" in path or "\0" in path:
            return None
        parts = path.split("/")
        if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            return None
        candidate = (self.root / path).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    async def entry(self, file: Path) -> Entry:
        """The cached entry of a file, read and compressed once (in a worker thread)."""
        stat = file.stat()
        key = (file, stat.st_mtime_ns, stat.st_size)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        pending = self._loading.get(file)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._loading[file] = future
        try:
            media_type = ASSET_TYPES.get(file.suffix.lower(), b"application/octet-stream")
            entry = await anyio.to_thread.run_sync(
                lambda: _compressed(file.read_bytes(), media_type)
            )
            self.cache.put(key, entry)
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._loading[file]

    async def serve(self, scope: dict[str, Any], send: Any, path: str) -> None:
        """Answer one GET/HEAD for ``path``."""
        method = scope["method"]
        if self.root is None:
            await send_json_error(send, method, 404, f"{self.what} is not installed: {self.hint}")
            return
        file = self.locate(path)
        if file is None:
            await send_json_error(send, method, 404, f"no such file in {self.what}: {path}")
            return
        entry = await self.entry(file)
        extra = [(b"x-content-type-options", b"nosniff")]
        await send_entry(
            send, method, RequestHeaders(scope["headers"]), entry, self.cache_control, extra
        )


class AssetResponse(Response):
    """Hands the ASGI send of a route to ``AssetFolder.serve``."""

    def __init__(self, folder: AssetFolder, path: str) -> None:
        self.folder = folder
        self.path = path
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.folder.serve(scope, send, self.path)


# --------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment


@cache
def ui_strings() -> dict[str, dict[str, str]]:
    """The viewer's interface texts by language (server/static/i18n.json)."""
    strings: dict[str, dict[str, str]] = json.loads(
        (STATIC_DIR / "i18n.json").read_text(encoding="utf-8")
    )
    return strings


def _text(value: Any, lang: str) -> str:
    """A ``{"de": …, "en": …}`` text in ``lang`` (German, then anything, when missing)."""
    if isinstance(value, dict):
        for key in (lang, LANGUAGES[0], *value):
            text = value.get(key)
            if isinstance(text, str) and text:
                return text
        return ""
    return value if isinstance(value, str) else ""


def _language(lang: str | None) -> str:
    return lang if lang in LANGUAGES else LANGUAGES[0]


def _page(
    template: str, status: int = 200, policy: str = STATIC_PAGE_POLICY, **context: Any
) -> HTMLResponse:
    html = _environment().get_template(template).render(**context)
    headers = {**PAGE_HEADERS, "Content-Security-Policy": policy}
    return HTMLResponse(html, status_code=status, headers=headers)


def _common(lang: str, path: str) -> dict[str, Any]:
    """What every page template uses: the language, its texts, links to the other language."""
    strings = ui_strings()
    return {
        "lang": lang,
        "t": strings[lang],
        "strings": strings,
        "other_lang": next(code for code in LANGUAGES if code != lang),
        "path": path,
        "api": API_PREFIX,
    }


def _stops(version: SceneVersion) -> list[dict[str, Any]]:
    stops = version.tour.get("stops", [])
    return [stop for stop in stops if isinstance(stop, dict)]


def _not_found(lang: str, path: str, message: str) -> HTMLResponse:
    return _page("not_found.html", 404, message=message, **_common(lang, path))


# --------------------------------------------------------------------------------------------
# Preview map
# --------------------------------------------------------------------------------------------

PREVIEW_SIZE = (480, 300)
"""Width and height of the preview map's view box (16:10)."""
WATER_LEVEL_M = 0.6
"""Terrain cells at or below this normal height are drawn as water (the Warnow is at ~0 m)."""
PREVIEW_CELLS = 96
"""Columns of the coarse water grid of the preview."""
STATUS_COLOURS = {"planned": "#c2185b", "under construction": "#e69500", "done": "#2e7d32"}
"""Overlay colours by project status, as the viewer draws them (static/js/overlays.js)."""


@cache
def _to_lonlat() -> Transformer:
    """EPSG:25833 easting/northing to WGS 84 lon/lat (horizontal only: no heights here)."""
    return Transformer.from_crs("EPSG:25833", "EPSG:4326", always_xy=True)


@dataclass(frozen=True)
class _Frame:
    """Lon/lat to preview pixels: a local equirectangular projection fitted to the view box."""

    west: float
    north: float
    scale: float  # pixels per degree of latitude
    cos_lat: float
    offset: tuple[float, float]

    @classmethod
    def fit(cls, lons: list[float], lats: list[float]) -> _Frame:
        west, east, south, north = min(lons), max(lons), min(lats), max(lats)
        cos_lat = math.cos(math.radians((south + north) / 2))
        width = max((east - west) * cos_lat, 1e-9)
        height = max(north - south, 1e-9)
        margin = 12
        scale = min((PREVIEW_SIZE[0] - 2 * margin) / width, (PREVIEW_SIZE[1] - 2 * margin) / height)
        offset = ((PREVIEW_SIZE[0] - width * scale) / 2, (PREVIEW_SIZE[1] - height * scale) / 2)
        return cls(west, north, scale, cos_lat, offset)

    def __call__(self, lon: float, lat: float) -> tuple[float, float]:
        return (
            round(self.offset[0] + (lon - self.west) * self.cos_lat * self.scale, 1),
            round(self.offset[1] + (self.north - lat) * self.scale, 1),
        )


def _rings(geometry: dict[str, Any]) -> list[tuple[str, list[list[float]]]]:
    """(kind, coordinates) pieces of a GeoJSON geometry: 'line', 'ring' or 'point'."""
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    if kind == "Point":
        return [("point", [coordinates])]
    if kind == "MultiPoint":
        return [("point", [point]) for point in coordinates]
    if kind == "LineString":
        return [("line", coordinates)]
    if kind == "MultiLineString":
        return [("line", line) for line in coordinates]
    if kind == "Polygon":
        return [("ring", ring) for ring in coordinates]
    if kind == "MultiPolygon":
        return [("ring", ring) for polygon in coordinates for ring in polygon]
    if kind == "GeometryCollection":
        return [piece for part in geometry.get("geometries", []) for piece in _rings(part)]
    return []


def _water_runs(version: SceneVersion, frame: _Frame) -> list[tuple[float, float, float, float]]:
    """Rectangles (x, y, w, h in preview pixels) of the terrain grid's water cells, coarsely."""
    terrain = next(
        (layer for layer in version.manifest.document.get("layers", [])
         if layer.get("kind") == "terrain"),
        None,
    )
    if terrain is None:
        return []
    path = str(terrain["tileset"]).rsplit("/", 1)[0] + "/heights.npz"
    if path not in version.files:
        return []
    with np.load(io.BytesIO(version.source.read(path))) as grid:
        heights = grid["heights"]
        x0, y0, cell = float(grid["x0"]), float(grid["y0"]), float(grid["cell"])
    rows, columns = heights.shape
    step = max(1, math.ceil(columns / PREVIEW_CELLS))
    coarse = heights[: rows - rows % step, : columns - columns % step]
    coarse = coarse.reshape(rows // step, step, columns // step, step)
    water = np.nanmedian(coarse, axis=(1, 3)) <= WATER_LEVEL_M
    to_lonlat = _to_lonlat()
    size = cell * step
    rectangles = []
    for row in range(water.shape[0]):
        line = np.concatenate(([False], water[row], [False]))
        edges = np.flatnonzero(line[1:] != line[:-1])
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            west, south = to_lonlat.transform(x0 + start * size, y0 + row * size)
            east, north = to_lonlat.transform(x0 + end * size, y0 + (row + 1) * size)
            left, top = frame(west, north)
            right, bottom = frame(east, south)
            width, height = round(right - left + 0.6, 1), round(bottom - top + 0.6, 1)
            rectangles.append((left, top, width, height))
    return rectangles


def preview_svg(version: SceneVersion, lang: str) -> str:
    """A schematic map of the scene: its area, the river (from the published terrain grid),
    the overlay features coloured by status and the tour's stops numbered where they look."""
    area = version.manifest.document.get("area") or {}
    outline = [ring for _, ring in _rings(area)]
    pieces = [
        (feature, kind, coordinates)
        for feature in version.overlay_features
        for kind, coordinates in _rings(feature.get("geometry") or {})
    ]
    targets = [
        (stop.get("number"), target)
        for stop in _stops(version)
        if (target := _look_at_lonlat(stop.get("camera") or {})) is not None
    ]
    # The map spans the area and everything drawn on it (a stop may look beyond the area).
    points = [p[:2] for ring in outline for p in ring]
    points += [c[:2] for _, _, coordinates in pieces for c in coordinates]
    points += [list(target) for _, target in targets]
    if not points:
        points = [[0.0, 0.0], [1.0, 1.0]]
    frame = _Frame.fit([p[0] for p in points], [p[1] for p in points])
    features = []
    for feature, kind, coordinates in pieces:
        properties = feature.get("properties") or {}
        name = properties.get("name_en" if lang == "en" else "name") or properties.get("name")
        features.append({
            "kind": kind,
            "colour": STATUS_COLOURS.get(str(properties.get("status")), "#33415c"),
            "name": name or feature["id"],
            "points": [frame(c[0], c[1]) for c in coordinates],
        })
    stops = [{"number": number, "xy": frame(*target)} for number, target in targets]
    water = _water_runs(version, frame)
    return _environment().get_template("preview.svg").render(
        size=PREVIEW_SIZE,
        outline=[[frame(p[0], p[1]) for p in ring] for ring in outline],
        water=water,
        features=features,
        stops=stops,
        title=_text(version.manifest.document.get("title"), lang),
        t=ui_strings()[lang],
    )


def _look_at_lonlat(camera: dict[str, Any]) -> tuple[float, float] | None:
    """Where a stop's camera looks (its look_at, EPSG:25833) or stands, in lon/lat."""
    look_at = camera.get("look_at")
    if isinstance(look_at, list) and len(look_at) >= 2:
        lon, lat = _to_lonlat().transform(float(look_at[0]), float(look_at[1]))
        return lon, lat
    if isinstance(camera.get("longitude"), int | float) and isinstance(
        camera.get("latitude"), int | float
    ):
        return float(camera["longitude"]), float(camera["latitude"])
    return None


class _Previews:
    """Preview maps by (scene, version, language), made once in a worker thread."""

    def __init__(self) -> None:
        self.cache = EntryCache(8 << 20)

    async def entry(self, version: SceneVersion, lang: str) -> Entry:
        key = (version.scene_id, version.version, lang)
        cached = self.cache.get(key)
        if cached is None:
            svg = await anyio.to_thread.run_sync(preview_svg, version, lang)
            cached = _compressed(svg.encode(), b"image/svg+xml")
            self.cache.put(key, cached)
        return cached


# --------------------------------------------------------------------------------------------
# Router
# --------------------------------------------------------------------------------------------

Lang = Annotated[str | None, Query(description="Page language: de (default) or en.")]
SceneId = Annotated[str, PathParam(description="Scene id, e.g. `warnowbruecke`.")]


def router() -> APIRouter:
    """The web viewer's routes: /, /tour/…, /preview/…, /static/…, /cesium/…."""
    web = APIRouter(include_in_schema=False)
    cesium_dir = find_cesium()
    if cesium_dir is None:
        log.warning(
            "CesiumJS not found in node_modules (or $%s): the tour pages cannot show 3D; "
            "run ./tools/setup", NODE_MODULES_ENV,
        )
    static = AssetFolder(STATIC_DIR, CACHE_ASSETS, "the viewer's assets", "reinstall the service")
    cesium = AssetFolder(
        cesium_dir, CACHE_CESIUM, "CesiumJS",
        "run ./tools/setup (npm ci installs CesiumJS into node_modules)",
    )
    previews = _Previews()

    @web.get("/", response_class=HTMLResponse)
    async def start_page(catalog: CatalogDep, lang: Lang = None) -> HTMLResponse:
        """The start page: every published tour."""
        language = _language(lang)
        tours = []
        attributions: list[str] = []
        for version in await catalog.all_current():
            document = version.manifest.document
            preview = document.get("preview")
            tours.append({
                "id": version.scene_id,
                "title": _text(document.get("title"), language),
                "tour_title": _text(version.tour.get("title"), language),
                "description": _text(document.get("description"), language),
                "stops": len(_stops(version)),
                "preview": version.url(preview) if isinstance(preview, str)
                and preview in version.files else None,
                "version": version.version,
            })
            for text in document.get("attributions", []):
                if isinstance(text, str) and text not in attributions:
                    attributions.append(text)
        return _page(
            "start.html", tours=tours, attributions=attributions, **_common(language, "/")
        )

    async def tour_page(
        catalog: SceneCatalog, scene: str, number: int, lang: str | None
    ) -> HTMLResponse:
        language = _language(lang)
        path = f"/tour/{scene}" + (f"/{number}" if number != 1 else "")
        version = await catalog.current(scene)
        if version is None:
            return _not_found(language, path, ui_strings()[language]["no_such_tour"])
        stops = _stops(version)
        if not 1 <= number <= len(stops):
            message = ui_strings()[language]["no_such_stop"].format(
                number=number, count=len(stops)
            )
            return _not_found(language, path, message)
        document = version.manifest.document
        stop = stops[number - 1]
        return _page(
            "tour.html",
            policy=CONTENT_SECURITY_POLICY,
            scene={
                "id": version.scene_id,
                "title": _text(document.get("title"), language),
                "tour_title": _text(version.tour.get("title"), language),
                "attributions": [a for a in document.get("attributions", []) if isinstance(a, str)],
            },
            stops=[
                {"number": s.get("number", i + 1), "title": _text(s.get("title"), language)}
                for i, s in enumerate(stops)
            ],
            stop={
                "number": number,
                "title": _text(stop.get("title"), language),
                "narration": _text(stop.get("narration"), language),
            },
            count=len(stops),
            **_common(language, path),
        )

    @web.get("/tour/{scene}", response_class=HTMLResponse)
    async def tour_start(scene: SceneId, catalog: CatalogDep, lang: Lang = None) -> HTMLResponse:
        """The tour viewer at its first stop."""
        return await tour_page(catalog, scene, 1, lang)

    @web.get("/tour/{scene}/{number}", response_class=HTMLResponse)
    async def tour_stop(
        scene: SceneId,
        number: Annotated[str, PathParam(description="Stop number, from 1.")],
        catalog: CatalogDep,
        lang: Lang = None,
    ) -> HTMLResponse:
        """The tour viewer at stop ``number`` (a deep link)."""
        if not number.isdecimal() or len(number) > 6:
            language = _language(lang)
            message = ui_strings()[language]["no_such_stop"].format(number=number, count="?")
            return _not_found(language, f"/tour/{scene}/{number}", message)
        return await tour_page(catalog, scene, int(number), lang)

    @web.get("/preview/{scene}.svg")
    async def preview(scene: SceneId, catalog: CatalogDep, lang: Lang = None) -> Response:
        """The scene's preview map (SVG)."""
        version = await catalog.current(scene)
        return _PreviewResponse(previews, version, _language(lang))

    @web.api_route("/static/{path:path}", methods=["GET", "HEAD"])
    async def static_file(path: str) -> Response:
        """The viewer's assets."""
        return AssetResponse(static, path)

    @web.api_route("/cesium/{path:path}", methods=["GET", "HEAD"])
    async def cesium_file(path: str) -> Response:
        """CesiumJS (node_modules/cesium/Build/Cesium)."""
        return AssetResponse(cesium, path)

    return web


class _PreviewResponse(Response):
    def __init__(self, previews: _Previews, version: SceneVersion | None, lang: str) -> None:
        self.previews, self.version, self.lang = previews, version, lang
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        method = scope["method"]
        if self.version is None:
            await send_json_error(send, method, 404, "no such scene")
            return
        entry = await self.previews.entry(self.version, self.lang)
        await send_entry(send, method, RequestHeaders(scope["headers"]), entry, b"no-cache")
