"""Benchmark: the citizen web tour in headless Chromium — time to the first rendered frame and
to the first stop with all its tiles, and the bytes each tour transfers.

Starts ``twin serve`` on a free port of 127.0.0.1 over a published scenes folder, warms it
(the service compresses CesiumJS once per process), then opens each tour in a fresh browser
context (empty cache) of Debian's chromium with WebGL on SwiftShader, as the browser tests do:

- first frame: navigation start → the first frame CesiumJS rendered;
- ready: navigation start → the first stop's view still with every tile of its layers loaded;
- bytes: what went over the wire (headers + encoded bodies) for the first stop, by kind, and
  for the whole tour (every stop visited in turn, camera jumps, each waited for until ready).

Baseline, measured in the same run: the bare CesiumJS harness of the tests
(tests/harness_page: CesiumJS and one tileset, nothing else) rendering the first stop's epoch
tileset from the same camera; the ratio viewer/harness is what the tour page adds (its
layers loaded one by one, overlays, API documents).

Numbers on SwiftShader are dominated by shader compilation and software rasterisation; on a
device with a GPU the same page is ready many times sooner. The bytes do not depend on that.

Usage: .venv/bin/python tools/bench/viewer.py [--scenes build/scenes] [--tour ID ...]
           [--viewport 1280x800] [--no-baseline] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.cesium_harness import CHROMIUM_ARGS, CHROMIUM_PATH, CesiumBrowser  # noqa: E402
from tests.server_fixtures import free_port  # noqa: E402

READY = """(stop) => {
    const s = window.viewerState;
    return s && (s.status === 'failed' || (s.status === 'ready' && s.settled && !s.flying
        && s.stop === stop));
}"""
TIMEOUT_MS = 600_000


@dataclass
class TourResult:
    tour: str
    stops: int
    first_frame_s: float
    ready_s: float
    first_stop_requests: int
    first_stop_bytes: int
    first_stop_by_kind: dict[str, int]
    tour_requests: int
    tour_bytes: int
    tour_tile_bytes: int
    all_stops_s: float
    baseline_ready_s: float | None = None
    errors: list[str] = field(default_factory=list)


def _kind(url: str) -> str:
    path = url.split("/", 3)[3] if url.count("/") >= 3 else ""
    if "/layers/" in path:
        return "tiles"
    if path.startswith("cesium/"):
        return "cesiumjs"
    if path.startswith("api/"):
        return "api"
    return "page"


class Service:
    """``twin serve --workers 1`` over a scenes folder, on a free port."""

    def __init__(self, scenes: Path) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="twin-bench-viewer-"))
        self.port = free_port()
        env = dict(os.environ, TWIN_SCENES_DIR=str(scenes),
                   TWIN_DATABASE_URL=f"sqlite:///{self.tmp / 'store.sqlite3'}")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log = (self.tmp / "serve.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "-q", "serve", "--port", str(self.port),
             "--workers", "1"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while self.get("/readyz")[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.tmp / "serve.log").read_text()
                raise SystemExit(f"twin serve did not start: {log}")
            time.sleep(0.2)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        except OSError:
            return 0, b""
        finally:
            connection.close()

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def measure_tour(browser: Any, origin: str, tour_id: str, viewport: tuple[int, int]) -> TourResult:
    """Open one tour in a fresh context; first stop, then every stop in turn."""
    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]}, device_scale_factor=1,
        service_workers="block",
    )
    finished: list[tuple[str, int]] = []
    external: list[str] = []

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith((origin + "/", "data:", "blob:")):
            route.continue_()
        else:
            external.append(url)
            route.abort("blockedbyclient")

    def on_finished(request: Any) -> None:
        sizes = request.sizes()
        finished.append((request.url, sizes["responseBodySize"] + sizes["responseHeadersSize"]))

    context.route("**/*", route)
    page = context.new_page()
    page.on("requestfinished", on_finished)
    try:
        page.goto(f"{origin}/tour/{tour_id}", wait_until="load")
        page.wait_for_function(READY, arg=1, timeout=TIMEOUT_MS, polling=100)
        state = page.evaluate("() => JSON.parse(JSON.stringify(window.viewerState))")
        first = list(finished)
        by_kind: Counter[str] = Counter()
        for url, size in first:
            by_kind[_kind(url)] += size
        started = time.perf_counter()
        for number in range(2, state["count"] + 1):
            page.evaluate("(n) => window.tour.showStop(n, {how: 'jump', history: 'replace'})",
                          number)
            page.wait_for_function(READY, arg=number, timeout=TIMEOUT_MS, polling=100)
        all_stops = time.perf_counter() - started
        errors = page.evaluate("() => window.viewerState.errors") + external
    finally:
        context.close()
    return TourResult(
        tour=tour_id,
        stops=state["count"],
        first_frame_s=state["timings"]["firstFrame"] / 1000,
        ready_s=state["timings"]["ready"] / 1000,
        first_stop_requests=len(first),
        first_stop_bytes=sum(size for _, size in first),
        first_stop_by_kind=dict(by_kind),
        tour_requests=len(finished),
        tour_bytes=sum(size for _, size in finished),
        tour_tile_bytes=sum(size for url, size in finished if _kind(url) == "tiles"),
        all_stops_s=all_stops,
        errors=errors,
    )


def baseline(scenes: Path, tour_id: str, viewport: tuple[int, int]) -> float:
    """Seconds the bare harness page takes to the first stop's view of its epoch tileset."""
    current = (scenes / tour_id / "current").resolve()
    manifest = json.loads((current / "manifest.json").read_text(encoding="utf-8"))
    stop = json.loads((current / "tour.json").read_text(encoding="utf-8"))["stops"][0]
    epoch = stop.get("epoch") or manifest["default_epoch"]
    tileset = next(e["tileset"] for e in manifest["epochs"] if e["id"] == epoch)
    c = stop["camera"]
    view = (c["longitude"], c["latitude"], c["height"], c["heading"], c["pitch"], c["fov"])
    with CesiumBrowser(viewport=viewport) as browser:
        result = browser.render_tileset(current, tileset, view=view, timeout=TIMEOUT_MS / 1000)
    if not result.tiles_loaded:
        raise SystemExit(f"{tour_id}: the harness did not load the tiles: {result.harness_errors}")
    return result.timings["load"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=Path, default=ROOT / "build" / "scenes",
                        help="published scenes folder (twin build scene all --out …)")
    parser.add_argument("--tour", action="append", help="tour (scene id); default: all")
    parser.add_argument("--viewport", default="1280x800", help="WIDTHxHEIGHT in CSS pixels")
    parser.add_argument("--no-baseline", action="store_true", help="skip the harness baseline")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    width, height = (int(v) for v in args.viewport.lower().split("x"))
    scenes = args.scenes.resolve()
    published = sorted(p.name for p in scenes.iterdir() if (p / "current").is_dir()) \
        if scenes.is_dir() else []
    tours = args.tour or published
    if not tours:
        raise SystemExit(f"no published scenes in {scenes}: run `twin build scene all --out "
                         f"{args.scenes}` first")
    from playwright.sync_api import sync_playwright

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    service = Service(scenes)
    results: list[TourResult] = []
    try:
        # Warm the service: it compresses each CesiumJS file once, on its first request.
        service.get("/cesium/index.js", {"Accept-Encoding": "br"})
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM_PATH), headless=True, args=list(CHROMIUM_ARGS)
            )
            try:
                warm = browser.new_context()
                warm.new_page().goto(f"{service.origin}/tour/{tours[0]}", wait_until="load")
                warm.close()
                for tour_id in tours:
                    say(f"{tour_id}: viewer …")
                    results.append(measure_tour(browser, service.origin, tour_id,
                                                (width, height)))
            finally:
                browser.close()
    finally:
        service.close()
    if not args.no_baseline:
        for result in results:
            say(f"{result.tour}: harness baseline …")
            result.baseline_ready_s = baseline(scenes, result.tour, (width, height))
    if args.json:
        print(json.dumps([asdict(result) for result in results], indent=1))
        return
    mb = 1e6
    print(f"viewport {width}x{height}, chromium {CHROMIUM_PATH}, service {scenes}")
    print(f"{'tour':16} {'stops':>5} {'frame s':>8} {'ready s':>8} {'harness s':>9} "
          f"{'ratio':>6} {'stop 1 req':>10} {'stop 1 MB':>9} {'tour req':>8} {'tour MB':>8} "
          f"{'tiles MB':>8} {'all stops s':>11}")
    for r in results:
        base = f"{r.baseline_ready_s:9.1f}" if r.baseline_ready_s else f"{'-':>9}"
        ratio = f"{r.ready_s / r.baseline_ready_s:6.2f}" if r.baseline_ready_s else f"{'-':>6}"
        print(f"{r.tour:16} {r.stops:5d} {r.first_frame_s:8.1f} {r.ready_s:8.1f} {base} {ratio} "
              f"{r.first_stop_requests:10d} {r.first_stop_bytes / mb:9.2f} {r.tour_requests:8d} "
              f"{r.tour_bytes / mb:8.2f} {r.tour_tile_bytes / mb:8.2f} {r.all_stops_s:11.1f}")
    print("first stop by kind (MB): " + "; ".join(
        f"{r.tour}: " + ", ".join(f"{kind} {size / mb:.2f}"
                                  for kind, size in sorted(r.first_stop_by_kind.items()))
        for r in results
    ))
    for r in results:
        if r.errors:
            print(f"{r.tour}: errors: {r.errors}")


if __name__ == "__main__":
    main()
