"""Real-client test harness: render a 3D Tiles tileset in CesiumJS in headless Chromium.

The harness serves CesiumJS (from ``node_modules/cesium/Build/Cesium``), a minimal viewer page
(``tests/harness_page``) and the tileset under test from one local static server, opens the
page in Debian's chromium through Playwright with WebGL2 on SwiftShader, waits until CesiumJS
reports every tile loaded with the camera at rest, and returns the screenshot as a numpy array
together with everything the page did that a test may want to assert on: requests that tried
to leave 127.0.0.1 (all blocked), console errors, tile failures and tileset statistics.

Typical use from a test (see the fixtures in ``tests/conftest.py``)::

    result = render_tileset(tileset_dir)
    assert result.tiles_loaded and not result.external_requests
    assert result.content_fraction(CENTRE) > 0.2

Stand-alone use (one browser per call; slow, for scripts)::

    from tests.cesium_harness import render_tileset
    render_tileset(Path("out/tiles")).save("shot.png")
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import shutil
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Request, Route

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
CESIUM_BUILD_DIR = REPO_ROOT / "node_modules" / "cesium" / "Build" / "Cesium"
HARNESS_PAGE_DIR = Path(__file__).resolve().parent / "harness_page"
CHROMIUM_PATH = Path(os.environ.get("TWIN_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS_ENV = "TWIN_TEST_ARTIFACTS"

RGB = tuple[int, int, int]

# The flat colours the viewer page paints empty space with (keep in sync with harness.js).
# SwiftShader reproduces them exactly; the tolerance in content_mask absorbs anti-aliasing.
SKY_RGB: RGB = (16, 24, 48)
GLOBE_RGB: RGB = (40, 40, 40)

# Fractional image regions (x0, y0, x1, y1) for content_fraction.
CENTRE = (0.375, 0.375, 0.625, 0.625)
FULL = (0.0, 0.0, 1.0, 1.0)

# There is no GPU here; ANGLE on SwiftShader (Vulkan) gives WebGL2. Headless chromium 156
# picks SwiftShader even without the first four flags, but Chromium is retiring that automatic
# fallback, so they ask for it explicitly ("--enable-unsafe-swiftshader" opts in to software GL
# for WebGL). The remaining flags silence every background service that would otherwise phone
# home; --host-resolver-rules makes anything that slips past the request router (which aborts
# it first) fail DNS instead of leaving the machine.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--enable-unsafe-swiftshader",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--ignore-gpu-blocklist",
    "--enable-webgl",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)

VIEWPORT = (800, 600)

# Console messages that are consequences of running without a GPU, not of the page under
# test; they are kept out of RenderResult.console_errors (and logged at debug level).
BENIGN_CONSOLE_PATTERNS: tuple[str, ...] = (
    "GPU stall due to ReadPixels",
    "Automatic fallback to software WebGL has been deprecated",
)


# --------------------------------------------------------------------------------------------
# Static file server
# --------------------------------------------------------------------------------------------

MIME_TYPES = {
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".json": "application/json",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".css": "text/css",
    ".html": "text/html",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".ktx2": "image/ktx2",
    ".b3dm": "application/octet-stream",
    ".i3dm": "application/octet-stream",
    ".pnts": "application/octet-stream",
    ".cmpt": "application/octet-stream",
    ".subtree": "application/octet-stream",
}


class _StaticHandler(SimpleHTTPRequestHandler):
    """Serve files from the server's mount table; no listings, no caching, no log lines."""

    server: _MountingHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: CesiumJS fetches dozens of workers and assets
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def translate_path(self, path: str) -> str:
        """Map ``/<mount>/<rest>`` to a file under that mount's root (404 path if unmounted)."""
        url_path = urllib.parse.urlsplit(path).path
        root, rest = self.server.resolve(url_path)
        if root is None:
            return str(Path(os.devnull) / "unmounted")
        # The base class strips '..' and drive letters relative to self.directory.
        self.directory = str(root)
        return super().translate_path(rest)

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(404, "directory listing disabled")
        return None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        logger.debug("%s %s", self.address_string(), format % args)


class _MountingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StaticHandler)
        self.mounts: dict[str, Path] = {}
        self._lock = threading.Lock()

    def resolve(self, url_path: str) -> tuple[Path | None, str]:
        """Longest mount prefix of url_path and the remainder (starting with '/')."""
        with self._lock:
            mounts = sorted(self.mounts.items(), key=lambda item: -len(item[0]))
        for prefix, root in mounts:
            if url_path.startswith(prefix):
                return root, "/" + url_path[len(prefix) :]
        return None, url_path

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The browser drops connections when a page closes mid-download; that is not an error.
        logger.debug("connection from %s ended abruptly", client_address, exc_info=True)


class StaticServer:
    """Local HTTP server: /cesium/ (CesiumJS build), /harness/ (viewer page), /data/<n>/."""

    def __init__(
        self, cesium_dir: Path = CESIUM_BUILD_DIR, harness_dir: Path = HARNESS_PAGE_DIR
    ) -> None:
        if not (cesium_dir / "Cesium.js").is_file():
            raise FileNotFoundError(
                f"CesiumJS build not found at {cesium_dir}: run `npm ci` in {REPO_ROOT}"
            )
        self._httpd = _MountingHTTPServer()
        self._httpd.mounts["/cesium/"] = cesium_dir
        self._httpd.mounts["/harness/"] = harness_dir
        self._counter = itertools.count()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="cesium-harness-http", daemon=True
        )
        self._thread.start()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``; the only origin the browser may reach."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def mount(self, directory: Path) -> str:
        """Serve ``directory`` under a fresh ``/data/<n>/`` prefix and return that prefix."""
        directory = Path(directory).resolve()
        if not directory.is_dir():
            raise NotADirectoryError(f"cannot serve {directory}: not a directory")
        prefix = f"/data/{next(self._counter)}/"
        with self._httpd._lock:
            self._httpd.mounts[prefix] = directory
        return prefix

    def unmount(self, prefix: str) -> None:
        """Stop serving a prefix returned by mount()."""
        with self._httpd._lock:
            self._httpd.mounts.pop(prefix, None)

    def close(self) -> None:
        """Stop serving and release the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StaticServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def decode_png(png: bytes) -> np.ndarray:
    """PNG bytes to an (h, w, 3) uint8 array."""
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def region_slices(
    shape: tuple[int, ...], region: tuple[float, float, float, float]
) -> tuple[slice, slice]:
    """Row/column slices of a fractional (x0, y0, x1, y1) region of an image of ``shape``."""
    height, width = shape[:2]
    x0, y0, x1, y1 = region
    return (
        slice(round(y0 * height), max(round(y1 * height), round(y0 * height) + 1)),
        slice(round(x0 * width), max(round(x1 * width), round(x0 * width) + 1)),
    )


@dataclass
class PageVisit:
    """What a page did while loaded: requests, blocked requests, console and page errors."""

    url: str
    requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    console_messages: list[str] = field(default_factory=list)


@dataclass
class RenderResult:
    """A rendered tileset: the screenshot plus everything the page reported."""

    image: np.ndarray  # (h, w, 3) uint8
    png: bytes
    sky: RGB  # colour of empty space above the horizon
    globe: RGB  # colour of the (imagery-free, ellipsoid) globe
    external_requests: list[str]  # every request not to the local server; all were aborted
    console_errors: list[str]  # console.error + uncaught page errors (benign GPU noise removed)
    harness_errors: list[str]  # from the page: tileset load failure, tileFailed, render errors
    tiles_loaded: bool  # page reached "ready" and tileset.tilesLoaded was true
    timed_out: bool
    status: str  # "ready" | "failed" | "loading" (timed out)
    stats: dict[str, Any]  # tileset.statistics counters, camera, bounding sphere (best effort)
    timings: dict[str, float]  # seconds: "load" (goto → ready), "screenshot"
    url: str
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    screenshot_path: Path | None = None

    @property
    def background(self) -> tuple[RGB, RGB]:
        """The colours that mean "nothing rendered here": (sky, globe)."""
        return (self.sky, self.globe)

    @property
    def ok(self) -> bool:
        """Loaded, no errors of any kind, nothing external requested."""
        return (
            self.tiles_loaded
            and not self.external_requests
            and not self.console_errors
            and not self.harness_errors
        )

    def content_mask(self, tolerance: int = 12) -> np.ndarray:
        """Boolean (h, w) mask of pixels that are neither sky nor globe colour."""
        pixels = self.image.astype(np.int16)
        mask = np.ones(pixels.shape[:2], dtype=bool)
        for colour in self.background:
            distance = np.abs(pixels - np.array(colour, dtype=np.int16)).max(axis=2)
            mask &= distance > tolerance
        return mask

    def content_fraction(
        self, region: tuple[float, float, float, float] = FULL, tolerance: int = 12
    ) -> float:
        """Share of pixels in a fractional (x0, y0, x1, y1) region that show scene content."""
        return float(self.content_mask(tolerance)[region_slices(self.image.shape, region)].mean())

    def save(self, path: Path | str) -> Path:
        """Write the screenshot PNG to ``path`` and remember it as screenshot_path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.png)
        self.screenshot_path = path
        return path

    def summary(self) -> str:
        """One paragraph for assertion messages."""
        return (
            f"status={self.status} tiles_loaded={self.tiles_loaded} timed_out={self.timed_out} "
            f"external={self.external_requests} console_errors={self.console_errors} "
            f"harness_errors={self.harness_errors} failed={self.failed_requests} "
            f"stats={self.stats} screenshot={self.screenshot_path}"
        )


def _rgb(value: Any) -> RGB:
    red, green, blue = (int(channel) for channel in value)
    return (red, green, blue)


def copy_to_artifacts(path: Path, name: str) -> Path | None:
    """Copy a screenshot to $TWIN_TEST_ARTIFACTS/<name> if that variable is set."""
    target_dir = os.environ.get(ARTIFACTS_ENV)
    if not target_dir:
        return None
    target = Path(target_dir) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return target


# --------------------------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------------------------


class CesiumBrowser:
    """One headless chromium (and one static server) reused for many renders.

    Each render gets a fresh browser context, so pages never share caches or routes.
    Not thread-safe: Playwright's sync API must be used from the thread that started it.
    """

    def __init__(
        self,
        *,
        chromium: Path = CHROMIUM_PATH,
        viewport: tuple[int, int] = VIEWPORT,
        extra_args: tuple[str, ...] = (),
        playwright: Any = None,
    ) -> None:
        """``playwright``: a running sync Playwright to use (the caller stops it); None
        starts one. A thread can run one sync Playwright at a time."""
        from playwright.sync_api import sync_playwright

        if not chromium.is_file():
            raise FileNotFoundError(
                f"chromium not found at {chromium}: `apt-get install chromium` "
                "or set TWIN_CHROMIUM (never `playwright install` here)"
            )
        self.viewport = viewport
        started = time.perf_counter()
        self.server = StaticServer()
        self._own_playwright = playwright is None
        self._playwright = sync_playwright().start() if playwright is None else playwright
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=str(chromium),
                headless=True,
                args=[*CHROMIUM_ARGS, *extra_args],
            )
        except BaseException:
            if self._own_playwright:
                self._playwright.stop()
            self.server.close()
            raise
        self.startup_seconds = time.perf_counter() - started

    @property
    def version(self) -> str:
        """Chromium version string."""
        return str(self._browser.version)

    def close(self) -> None:
        """Close chromium, Playwright and the static server."""
        try:
            self._browser.close()
        finally:
            if self._own_playwright:
                self._playwright.stop()
            self.server.close()

    def __enter__(self) -> CesiumBrowser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _is_local(self, url: str) -> bool:
        if url.startswith(("data:", "blob:", "about:")):
            return True
        return url == self.server.origin or url.startswith(self.server.origin + "/")

    @contextmanager
    def page(self, url_path: str) -> Iterator[tuple[Page, PageVisit]]:
        """Open ``url_path`` (relative to the local server) with every request recorded.

        Requests to anything but the local server are aborted and listed in
        ``visit.external_requests``. Yields ``(playwright_page, visit)``; the page closes on exit.
        """
        url = self.server.origin + url_path
        visit = PageVisit(url=url)
        context = self._browser.new_context(
            viewport={"width": self.viewport[0], "height": self.viewport[1]},
            device_scale_factor=1,
            service_workers="block",
        )

        def route(route: Route) -> None:
            request_url = route.request.url
            if self._is_local(request_url):
                route.continue_()
            else:
                visit.external_requests.append(request_url)
                route.abort("blockedbyclient")

        def on_console(message: ConsoleMessage) -> None:
            location = message.location or {}
            text = f"{message.text} [{location.get('url', '')}:{location.get('lineNumber', '')}]"
            visit.console_messages.append(f"{message.type}: {text}")
            if message.type != "error":
                return
            if any(pattern in message.text for pattern in BENIGN_CONSOLE_PATTERNS):
                logger.debug("benign console error: %s", text)
                return
            visit.console_errors.append(text)

        context.route("**/*", route)
        page = context.new_page()

        def on_request(request: Request) -> None:
            visit.requests.append(request.url)

        def on_request_failed(request: Request) -> None:
            visit.failed_requests.append(f"{request.url}: {request.failure}")

        def on_page_error(error: Exception) -> None:
            visit.console_errors.append(f"page error: {error}")

        page.on("request", on_request)
        page.on("requestfailed", on_request_failed)
        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        try:
            page.goto(url, wait_until="load")
            yield page, visit
        finally:
            context.close()

    def render_tileset(
        self,
        tileset_dir: Path,
        tileset_name: str = "tileset.json",
        *,
        heading: float = 30.0,
        pitch: float = -35.0,
        range: float | None = None,  # noqa: A002 - mirrors Cesium's HeadingPitchRange
        view: tuple[float, ...] | None = None,
        maximum_screen_space_error: float = 16.0,
        time_iso: str | None = None,
        stable_frames: int = 5,
        stable_seconds: float = 0.5,
        timeout: float = 60.0,
    ) -> RenderResult:
        """Load ``tileset_dir/tileset_name`` in the viewer, wait for all tiles, screenshot.

        heading/pitch are degrees (pitch negative looks down); range is metres from the
        bounding-sphere centre, None to fit the whole bounding sphere in view; view =
        (lon, lat, ellipsoidal height, heading, pitch[, fov]) places the camera there instead
        (a tour stop's camera). "Loaded" means
        tileset.tilesLoaded held, with the camera still, for stable_frames rendered frames and
        stable_seconds; time_iso fixes the sun (default: a June noon in Rostock).
        Never raises for page-side failures or timeouts: inspect the result instead.
        """
        prefix = self.server.mount(tileset_dir)
        query = {
            "tileset": f"{prefix}{tileset_name}",
            "sse": maximum_screen_space_error,
            "heading": heading,
            "pitch": pitch,
            "range": 0 if range is None else range,
            "stableFrames": stable_frames,
            "stableMs": round(stable_seconds * 1000),
        }
        if time_iso is not None:
            query["time"] = time_iso
        if view is not None:
            query["view"] = ",".join(f"{v:.9g}" for v in view)
        url_path = "/harness/index.html?" + urllib.parse.urlencode(query)
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        started = time.perf_counter()
        try:
            with self.page(url_path) as (page, visit):
                timed_out = False
                try:
                    page.wait_for_function(
                        "() => window.harnessState && window.harnessState.status !== 'loading'",
                        timeout=timeout * 1000,
                        polling=100,
                    )
                except PlaywrightTimeoutError:
                    timed_out = True
                loaded_at = time.perf_counter()
                state = page.evaluate(
                    "() => window.harnessState ? JSON.parse(JSON.stringify(window.harnessState))"
                    " : {status: 'loading', errors: ['harness page did not start']}"
                )
                png = page.screenshot(type="png")
                shot_at = time.perf_counter()
        finally:
            self.server.unmount(prefix)
        colors = state.get("colors") or {}
        status = str(state.get("status", "loading"))
        return RenderResult(
            image=decode_png(png),
            png=png,
            sky=_rgb(colors.get("sky", SKY_RGB)),
            globe=_rgb(colors.get("globe", GLOBE_RGB)),
            external_requests=list(visit.external_requests),
            console_errors=list(visit.console_errors),
            harness_errors=[str(error) for error in state.get("errors", [])],
            tiles_loaded=status == "ready" and bool(state.get("tilesLoaded")),
            timed_out=timed_out,
            status=status,
            stats=dict(state.get("stats") or {}),
            timings={"load": loaded_at - started, "screenshot": shot_at - loaded_at},
            url=visit.url,
            requests=list(visit.requests),
            failed_requests=list(visit.failed_requests),
        )


def render_tileset(
    tileset_dir: Path,
    tileset_name: str = "tileset.json",
    **options: Any,
) -> RenderResult:
    """One-shot render with a browser of its own (slow; tests use the session fixture)."""
    with CesiumBrowser() as browser:
        return browser.render_tileset(tileset_dir, tileset_name, **options)
