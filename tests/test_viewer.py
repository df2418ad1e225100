"""The citizen web tour (issue 6): start page, tour viewer, assets, in a real browser.

The HTTP tests run the app in-process on the small test scene of tests/server_fixtures.py. The
browser tests (marked ``browser``) start a real ``twin serve`` on a free port of 127.0.0.1
over the three published sample scenes (the ``published_scenes`` fixture) and drive Debian's
chromium through Playwright with WebGL on SwiftShader (launch flags from
tests/cesium_harness.py). Every page is opened with a router that lets only 127.0.0.1 through
and records everything else; each test asserts that list is empty.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import math
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from server.app import create_app
from server.settings import Settings
from tests.cesium_harness import BENIGN_CONSOLE_PATTERNS, CHROMIUM_ARGS, CHROMIUM_PATH
from tests.server_fixtures import SCENE_ID, publish_scene, serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

    from tests.scene_fixtures import PublishedScenes

REPO = Path(__file__).resolve().parent.parent
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
CESIUM = REPO / "node_modules" / "cesium" / "Build" / "Cesium"
STATIC = REPO / "server" / "static"
SCENES = ("gehlsdorf", "rostocker-oval", "warnowbruecke")
VIEWPORT = (1024, 640)  # the wide layout: the panel beside the 3D view
LOAD_TIMEOUT_MS = 240_000  # a first tour load compiles CesiumJS's shaders on SwiftShader
SKY_TOLERANCE = 12


# --------------------------------------------------------------------------------------------
# HTTP: pages and assets, in-process
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The service tests' small warnowbruecke scene (two stops, buildings only)."""
    folder = tmp_path_factory.mktemp("web-scenes")
    publish_scene(folder, cache_dir=tmp_path_factory.mktemp("web-layer"))
    return folder


@pytest.fixture
def client(small_scenes: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        scenes_dir=small_scenes,
        database_url=f"sqlite:///{tmp_path / 'store.sqlite3'}",
        current_check_seconds=0.0,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _tour(scenes_dir: Path) -> dict[str, Any]:
    return json.loads((scenes_dir / SCENE_ID / "current" / "tour.json").read_text())


def test_start_page_lists_the_published_tours(client: TestClient, small_scenes: Path) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'none'" in policy
    html = response.text
    assert '<html lang="de">' in html
    assert "Warnowbrücke" in html and "2 Stationen" in html
    assert 'href="/tour/warnowbruecke?lang=de"' in html
    assert f'src="/preview/{SCENE_ID}.svg?lang=de&amp;v=' in html
    assert "Synthetische Beispieldaten (Rostock virtuell)" in html  # the manifest's attribution
    english = client.get("/", params={"lang": "en"}).text
    assert '<html lang="en">' in english and "Warnow Bridge" in english and "2 stops" in english


def test_tour_page_carries_the_stop_text_for_readers_without_webgl(
    client: TestClient, small_scenes: Path
) -> None:
    stop = _tour(small_scenes)["stops"][1]
    response = client.get(f"/tour/{SCENE_ID}/2")
    assert response.status_code == 200
    html = response.text
    assert f'<h2 id="stop-title">{stop["title"]["de"]}</h2>' in html
    assert stop["narration"]["de"] in html
    assert 'data-stop="2" data-count="2"' in html
    assert "Station 2 von 2" in html
    assert 'aria-current="step">Fährberg</a>' in html
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self' data: blob:" in policy
    english = client.get(f"/tour/{SCENE_ID}/2", params={"lang": "en"}).text
    assert stop["narration"]["en"] in english and "Stop 2 of 2" in english
    assert client.get(f"/tour/{SCENE_ID}").text.count('aria-current="step"') == 1


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/tour/nowhere", "Diese Tour gibt es nicht"),
        (f"/tour/{SCENE_ID}/3", "keine Station 3 (sie hat 2 Stationen)"),
        (f"/tour/{SCENE_ID}/0", "keine Station 0"),
        (f"/tour/{SCENE_ID}/drei", "keine Station drei"),
    ],
)
def test_unknown_tours_and_stops_are_404_pages(
    client: TestClient, path: str, message: str
) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text and 'href="/?lang=de"' in response.text


def test_assets_have_etags_304s_and_compression(client: TestClient) -> None:
    source = (STATIC / "js" / "tour.js").read_bytes()
    response = client.get("/static/js/tour.js", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200 and response.content == source
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["etag"] == f'"{hashlib.sha256(source).hexdigest()}"'
    assert response.headers["cache-control"] == "no-cache"
    again = client.get("/static/js/tour.js", headers={
        "Accept-Encoding": "identity", "If-None-Match": response.headers["etag"],
    })
    assert again.status_code == 304 and again.content == b""
    # CesiumJS's module, brotli-compressed once per process: about a quarter of its size.
    raw = client.get("/cesium/index.js", headers={"Accept-Encoding": "br"})
    assert raw.headers["content-encoding"] == "br"
    sent = int(raw.headers["content-length"])
    original = (CESIUM / "index.js").read_bytes()
    assert sent < len(original) * 0.3
    assert raw.content == original  # (httpx decodes brotli)
    assert raw.headers["cache-control"] == "public, max-age=86400"
    head = client.head("/cesium/Workers/createVerticesFromHeightmap.js")
    assert head.status_code == 200 and head.content == b""


def test_asset_paths_cannot_leave_their_folders(client: TestClient) -> None:
    for path in (
        "/static/../web.py",
        "/static/%2e%2e/web.py",
        "/static/..%2fweb.py",
        "/static/.hidden",
        "/static/js",
        "/static/",
        "/cesium/../../package.json",
        "/cesium/%2e%2e/%2e%2e/package.json",
        "/cesium/Cesium.js%00.png",
        "/static/js\\tour.js",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"def router" not in response.content and b'"name"' not in response.content


def test_preview_map_draws_the_area_overlays_and_stops(client: TestClient) -> None:
    response = client.get(f"/preview/{SCENE_ID}.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    svg = ElementTree.fromstring(response.content)
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.get("viewBox") == "0 0 480 300"
    titles = [element.text for element in svg.iter(f"{ns}title")]
    assert titles[0] == ("Übersichtskarte von Warnowbrücke: Gebiet, Warnow, Projekte und die "
                         "nummerierten Stationen der Tour")
    # The three overlay features of the test scene: a line (white casing + colour), a point,
    # a polygon; each named; the two stops numbered.
    assert sorted(titles[1:]) == ["Kaimauer Stadthafen", "Primelberg", "Warnowbrücke"]
    assert len(svg.findall(f".//{ns}polyline")) == 2
    assert len(svg.findall(f".//{ns}circle")) == 1 + 2
    assert [text.text for text in svg.iter(f"{ns}text")] == ["1", "2"]
    # Every coordinate inside the view box.
    for element in svg.iter(f"{ns}circle"):
        assert 0 <= float(element.get("cx", -1)) <= 480 and 0 <= float(element.get("cy", -1)) <= 300
    assert client.get("/preview/nowhere.svg").status_code == 404


def test_web_routes_stay_out_of_the_api_document(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert not [path for path in paths if not path.startswith(("/api/", "/healthz", "/readyz",
                                                               "/metrics"))]


# --------------------------------------------------------------------------------------------
# Browser: the real service, Debian chromium, SwiftShader
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(
    published_scenes: PublishedScenes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``twin serve`` over the published sample scenes on a free port; yields its origin."""
    tmp = tmp_path_factory.mktemp("viewer-service")
    env = dict(
        os.environ,
        TWIN_SCENES_DIR=str(published_scenes.out),
        TWIN_DATABASE_URL=f"sqlite:///{tmp / 'store.sqlite3'}",
    )
    with serving(env, tmp / "serve.log", workers=1) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def chromium(playwright_driver: Any) -> Iterator[Browser]:
    """Debian's chromium (never a downloaded browser), WebGL2 on SwiftShader, started by the
    test process's one Playwright (tests/conftest.py)."""
    if not CHROMIUM_PATH.is_file():
        raise FileNotFoundError(f"chromium not found at {CHROMIUM_PATH}: apt-get install chromium")
    browser = playwright_driver.chromium.launch(
        executable_path=str(CHROMIUM_PATH), headless=True, args=list(CHROMIUM_ARGS)
    )
    try:
        yield browser
    finally:
        browser.close()


@dataclass
class Visit:
    """One open page and what it did: every request, the blocked ones, console errors."""

    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.page.evaluate(
            "() => JSON.parse(JSON.stringify(window.viewerState))"
        )
        return state

    def wait_started(self) -> None:
        """Until the tour's data is loaded and the viewer built (tiles may still load)."""
        self.page.wait_for_function("() => window.tour !== undefined", timeout=LOAD_TIMEOUT_MS)

    def wait_settled(self, stop: int | None = None) -> dict[str, Any]:
        """Until the view is still with every tile of the shown layers loaded (at ``stop``)."""
        self.page.wait_for_function(
            """(stop) => {
                const s = window.viewerState;
                return s && (s.status === 'failed' || (s.status === 'ready' && s.settled
                    && !s.flying && (stop === null || s.stop === stop)));
            }""",
            arg=stop,
            timeout=LOAD_TIMEOUT_MS,
            polling=100,
        )
        state = self.state()
        assert state["status"] == "ready", state["errors"]
        assert state["tilesLoaded"] and not state["errors"], state["errors"]
        return state

    def view(self) -> np.ndarray:
        """The 3D view as an (h, w, 3) uint8 array."""
        png = self.page.locator("#cesium").screenshot(type="png")
        with Image.open(io.BytesIO(png)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.int16)

    def focus_by_tab(self, element_id: str, backwards: bool = False, limit: int = 60) -> None:
        """Press Tab (Shift+Tab) until ``element_id`` has the focus."""
        key = "Shift+Tab" if backwards else "Tab"
        for _ in range(limit):
            if self.page.evaluate("() => document.activeElement && document.activeElement.id") \
                    == element_id:
                return
            self.page.keyboard.press(key)
        raise AssertionError(f"#{element_id} not reached with {key}")

    def assert_clean(self) -> None:
        """Nothing left 127.0.0.1, nothing went wrong in the page."""
        assert self.requests, "no requests recorded"
        assert not self.external, self.external
        assert not self.console_errors, self.console_errors


@contextmanager
def open_page(
    chromium: Browser,
    origin: str,
    path: str,
    viewport: tuple[int, int] = VIEWPORT,
    reduced_motion: str = "no-preference",
    routes: tuple[tuple[str, Callable[[Route], None]], ...] = (),
    init_script: str | None = None,
) -> Iterator[Visit]:
    """A fresh browser context on ``origin + path``; requests elsewhere are aborted."""
    context = chromium.new_context(
        viewport={"width": viewport[0], "height": viewport[1]},
        device_scale_factor=1,
        reduced_motion=reduced_motion,  # type: ignore[arg-type]
        service_workers="block",
    )
    if init_script is not None:
        context.add_init_script(init_script)
    page = context.new_page()
    visit = Visit(page, origin)

    def route(route: Route) -> None:
        url = route.request.url
        if url == origin or url.startswith(origin + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            visit.external.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    for pattern, handler in routes:  # registered later: tried first
        context.route(pattern, handler)
    page.on("request", lambda request: visit.requests.append(request.url))
    page.on("pageerror", lambda error: visit.console_errors.append(f"page error: {error}"))

    def on_console(message: Any) -> None:
        if message.type == "error" and not any(
            pattern in message.text for pattern in BENIGN_CONSOLE_PATTERNS
        ):
            visit.console_errors.append(message.text)

    page.on("console", on_console)
    try:
        page.goto(origin + path, wait_until="load")
        yield visit
    finally:
        context.close()


def run_axe(visit: Visit) -> list[dict[str, Any]]:
    """axe-core's violations of the page (injected through the DevTools protocol, so the
    page's Content-Security-Policy stays as served)."""
    visit.page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    violations: list[dict[str, Any]] = visit.page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))"""
    )
    return violations


def serious(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def content_fraction(image: np.ndarray, sky: list[int]) -> float:
    """Share of pixels that are not the sky colour."""
    differs = np.abs(image - np.array(sky, dtype=np.int16)).max(axis=2) > SKY_TOLERANCE
    return float(differs.mean())


def camera_of(visit: Visit) -> dict[str, float]:
    camera: dict[str, float] = visit.page.evaluate(
        """() => {
            const {viewer, Cesium} = window.tour;
            const camera = viewer.scene.camera;
            const carto = camera.positionCartographic;
            return {longitude: Cesium.Math.toDegrees(carto.longitude),
                    latitude: Cesium.Math.toDegrees(carto.latitude), height: carto.height,
                    heading: Cesium.Math.toDegrees(camera.heading),
                    pitch: Cesium.Math.toDegrees(camera.pitch)};
        }"""
    )
    return camera


def assert_camera_at(visit: Visit, stop: dict[str, Any]) -> None:
    camera, expected = camera_of(visit), stop["camera"]
    assert camera["longitude"] == pytest.approx(expected["longitude"], abs=1e-7)
    assert camera["latitude"] == pytest.approx(expected["latitude"], abs=1e-7)
    assert camera["height"] == pytest.approx(expected["height"], abs=0.05)
    heading_error = (camera["heading"] - expected["heading"] + 180) % 360 - 180
    assert abs(heading_error) < 0.01
    assert camera["pitch"] == pytest.approx(expected["pitch"], abs=0.01)


def text_of(visit: Visit, selector: str) -> str:
    return visit.page.locator(selector).inner_text().strip()


@pytest.mark.browser
def test_start_page_in_both_languages(
    chromium: Browser, service: str, published_scenes: PublishedScenes
) -> None:
    manifests = {scene: published_scenes.manifest(scene) for scene in SCENES}
    with open_page(chromium, service, "/") as visit:
        page = visit.page
        titles = page.locator(".tour-card h3").all_inner_texts()
        assert sorted(titles) == sorted(m["title"]["de"] for m in manifests.values())
        for scene, manifest in manifests.items():
            card = page.locator(".tour-card", has=page.locator(f"#tour-{scene}"))
            assert manifest["description"]["de"] in card.inner_text()
            stops = len(published_scenes.tour(scene)["stops"])
            assert f"{stops} Stationen" in card.inner_text()
            assert card.locator("a.button").get_attribute("href") == f"/tour/{scene}?lang=de"
            # The preview map: loaded, with a text alternative.
            image = card.locator("img")
            assert image.evaluate("img => img.complete && img.naturalWidth") == 480
            assert manifest["title"]["de"] in image.get_attribute("alt")
        for attribution in manifests["warnowbruecke"]["attributions"]:
            assert attribution in page.locator("footer").inner_text()
        violations = run_axe(visit)
        assert not serious(violations), violations
        # The language switch by keyboard.
        page.keyboard.press("Tab")  # the skip link comes first
        assert page.evaluate("() => document.activeElement.className") == "skip-link"
        language = page.locator(".language-switch")
        language.focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.evaluate("() => document.documentElement.lang") == "en"
        assert page.locator("h1").inner_text() == "Virtual tours of Rostock"
        assert sorted(page.locator(".tour-card h3").all_inner_texts()) == sorted(
            m["title"]["en"] for m in manifests.values()
        )
        assert not serious(run_axe(visit))
        visit.assert_clean()


@pytest.mark.browser
def test_preview_maps_draw_the_river_and_every_stop(
    chromium: Browser, service: str, published_scenes: PublishedScenes
) -> None:
    for scene in SCENES:
        connection = http.client.HTTPConnection(service.removeprefix("http://"), timeout=30)
        connection.request("GET", f"/preview/{scene}.svg?lang=en")
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status == 200 and response.getheader("content-type") == "image/svg+xml"
        svg = ElementTree.fromstring(body)
        ns = {"svg": "http://www.w3.org/2000/svg"}
        assert svg.find("svg:title", ns).text.startswith(  # type: ignore[union-attr]
            f"Overview map of {published_scenes.manifest(scene)['title']['en']}"
        )
        water = svg.findall("svg:g[@fill='#8fb8d8']/svg:rect", ns)
        assert len(water) > 10  # the Warnow crosses every scene
        numbers = [text.text for text in svg.iter("{http://www.w3.org/2000/svg}text")]
        stops = published_scenes.tour(scene)["stops"]
        assert numbers == [str(stop["number"]) for stop in stops]


@pytest.mark.browser
@pytest.mark.parametrize("scene", SCENES)
def test_each_tour_renders_its_first_stop(
    chromium: Browser, service: str, published_scenes: PublishedScenes, scene: str
) -> None:
    tour = published_scenes.tour(scene)
    first = tour["stops"][0]
    with open_page(chromium, service, f"/tour/{scene}") as visit:
        state = visit.wait_settled(stop=1)
        assert state["epoch"] == (first.get("epoch") or published_scenes.manifest(scene)
                                  ["default_epoch"])
        image = visit.view()
        save_artifact(f"{scene}-1.png", image)
        # Scene pixels, not a blank or error page: most of the view is terrain and buildings,
        # with many distinct colours.
        assert content_fraction(image, state["colors"]["sky"]) > 0.5
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 500
        assert visit.page.locator("#view-status").get_attribute("data-state") == "ready"
        assert text_of(visit, "#stop-title") == first["title"]["de"]
        assert text_of(visit, "#stop-narration") == first["narration"]["de"]
        assert_camera_at(visit, first)
        # The tiles come from the versioned (immutable) URLs of the current version.
        version = published_scenes.manifest(scene)["version"]
        tiles = [url for url in visit.requests if url.endswith(".glb")]
        assert tiles and all(f"/api/v1/scenes/{scene}/v/{version}/layers/" in u for u in tiles)
        shown = {layer for layer, on in state["layers"].items() if on}
        assert {url.split("/layers/")[1].split("/")[0] for url in tiles} <= shown
        violations = run_axe(visit)
        assert not serious(violations), violations
        visit.assert_clean()


@pytest.mark.browser
def test_deep_link_keyboard_walk_and_language(
    chromium: Browser, service: str, published_scenes: PublishedScenes
) -> None:
    stops = published_scenes.tour("warnowbruecke")["stops"]
    count = len(stops)
    with open_page(chromium, service, "/tour/warnowbruecke/3") as visit:
        page = visit.page
        # The deep link: stop 3 in the text, the progress, the list and the camera.
        visit.wait_settled(stop=3)
        assert text_of(visit, "#stop-title") == stops[2]["title"]["de"]
        assert text_of(visit, "#progress-text") == f"Station 3 von {count}"
        assert page.locator("#stop-list a[aria-current=step]").get_attribute("data-stop") == "3"
        assert_camera_at(visit, stops[2])
        assert page.locator("#stop-live").get_attribute("aria-live") == "polite"

        # Keyboard only: Tab to "Weiter", Enter through to the last stop.
        visit.focus_by_tab("next-stop")
        for number in range(4, count + 1):
            page.keyboard.press("Enter")
            page.wait_for_function(
                "(title) => document.getElementById('stop-title').textContent === title",
                arg=stops[number - 1]["title"]["de"],
            )
            assert text_of(visit, "#progress-text") == f"Station {number} von {count}"
            assert page.evaluate("() => location.pathname") == f"/tour/warnowbruecke/{number}"
        page.keyboard.press("Enter")  # the last stop: "Weiter" does nothing, keeps its focus
        assert text_of(visit, "#stop-title") == stops[-1]["title"]["de"]
        assert page.locator("#next-stop").get_attribute("aria-disabled") == "true"
        assert page.evaluate("() => document.activeElement.id") == "next-stop"
        # Arrow keys step back to the first stop.
        for number in range(count - 1, 0, -1):
            page.keyboard.press("ArrowLeft")
            assert text_of(visit, "#stop-title") == stops[number - 1]["title"]["de"]
        assert page.evaluate("() => location.pathname") == "/tour/warnowbruecke/1"
        state = visit.wait_settled(stop=1)
        assert_camera_at(visit, stops[0])
        assert state["epoch"] == (stops[0].get("epoch") or "heute")

        # Language: to the switch with Shift+Tab, Enter; the narration changes in place.
        visit.focus_by_tab("language-switch", backwards=True)
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.documentElement.lang") == "en"
        assert text_of(visit, "#stop-narration") == stops[0]["narration"]["en"]
        assert text_of(visit, "#stop-title") == stops[0]["title"]["en"]
        assert text_of(visit, "#progress-text") == f"Stop 1 of {count}"
        assert text_of(visit, "#language-switch") == "Deutsch"
        assert page.evaluate("() => location.pathname + location.search") == \
            "/tour/warnowbruecke/1?lang=en"
        assert page.locator("label[for=epoch-geplant]").inner_text() == "Planned"
        page.keyboard.press("Enter")
        assert text_of(visit, "#stop-narration") == stops[0]["narration"]["de"]
        assert page.evaluate("() => document.documentElement.lang") == "de"
        visit.assert_clean()


def save_artifact(name: str, image: np.ndarray) -> None:
    """Keep a screenshot in $TWIN_TEST_ARTIFACTS (when set) for people to look at."""
    folder = os.environ.get("TWIN_TEST_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(Path(folder) / f"viewer-{name}")


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b).max(axis=2) > 24


@pytest.mark.browser
def test_epoch_switch_draws_the_bridge_only_in_geplant(
    chromium: Browser, service: str, published_scenes: PublishedScenes
) -> None:
    manifest = published_scenes.manifest("warnowbruecke")
    tour = published_scenes.tour("warnowbruecke")
    number = next(s["number"] for s in tour["stops"] if s.get("epoch") == "geplant")
    with open_page(chromium, service, f"/tour/warnowbruecke/{number}") as visit:
        page = visit.page
        state = visit.wait_settled(stop=number)
        assert state["epoch"] == "geplant" and state["layers"]["warnowbruecke"]
        # Overlays off, so that only the epoch's layers differ between the two views.
        for box in page.locator("#overlay-options input[type=checkbox]").all():
            box.uncheck()
        visit.wait_settled(stop=number)
        planned = visit.view()
        x0, y0, x1, y1 = page.evaluate("() => tour.screenRect('warnowbruecke')")
        page.locator("#epoch-heute").check()
        state = visit.wait_settled(stop=number)
        assert state["epoch"] == "heute" and not state["layers"]["warnowbruecke"]
        assert page.locator("#layer-warnowbruecke").is_disabled()
        today = visit.view()
        changed = _changed(planned, today)
        height, width = changed.shape
        inside = np.zeros_like(changed)
        inside[max(0, math.floor(y0)):min(height, math.ceil(y1) + 1),
               max(0, math.floor(x0)):min(width, math.ceil(x1) + 1)] = True
        assert inside.any()
        # The bridge's pixels change; nothing outside its region does.
        bridge_pixels, elsewhere = int((changed & inside).sum()), int((changed & ~inside).sum())
        assert bridge_pixels > 400, (bridge_pixels, elsewhere)
        assert elsewhere <= 0.001 * changed.size, (bridge_pixels, elsewhere)
        save_artifact("epoch-geplant.png", planned)
        save_artifact("epoch-heute.png", today)
        page.locator("#epoch-geplant").check()
        visit.wait_settled(stop=number)
        assert _changed(planned, visit.view()).mean() < 0.001  # the same picture again
        assert any("/layers/warnowbruecke/" in url for url in visit.requests)
        assert manifest["layers"]  # (the manifest is the one the service serves)
        visit.assert_clean()


FIND_BUILDING = """() => {
    const {viewer, Cesium, layers} = window.tour;
    const buildings = layers.find((layer) => layer.meta.id === 'buildings').tileset;
    const canvas = viewer.scene.canvas;
    for (let y = canvas.clientHeight * 0.4; y < canvas.clientHeight - 10; y += 17) {
        for (let x = 20; x < canvas.clientWidth - 20; x += 17) {
            const picked = viewer.scene.pick(new Cesium.Cartesian2(x, y));
            if (picked instanceof Cesium.Cesium3DTileFeature && picked.tileset === buildings
                    && picked.getProperty('function')) {
                return {x, y, gml_id: picked.getProperty('gml_id'),
                        function: picked.getProperty('function'),
                        measuredHeight: picked.getProperty('measuredHeight')};
            }
        }
    }
    return null;
}"""


@pytest.mark.browser
def test_picking_a_building_and_an_overlay_shows_their_attributes(
    chromium: Browser, service: str, published_scenes: PublishedScenes
) -> None:
    overlays = json.loads(
        (published_scenes.current("warnowbruecke") / "overlays.geojson").read_text()
    )
    bridge = next(f for f in overlays["features"] if f["id"] == "warnowbruecke")
    with open_page(chromium, service, "/tour/warnowbruecke/2") as visit:
        page = visit.page
        visit.wait_settled(stop=2)
        found = page.evaluate(FIND_BUILDING)
        assert found is not None, "no building in view"
        box = page.locator("#cesium canvas").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + found["x"], box["y"] + found["y"])
        panel = page.locator("#info-panel")
        panel.wait_for(state="visible")
        rows = dict(zip(panel.locator("#info-list dt").all_inner_texts(),
                        panel.locator("#info-list dd").all_inner_texts(), strict=True))
        assert rows["Kennung (gml:id)"] == found["gml_id"]
        assert rows["Funktion"].endswith(f"({found['function']})")
        height = f"{found['measuredHeight']:.1f}".replace(".", ",").replace(",0", "")
        assert rows["Gemessene Höhe"] == f"{height} m"
        assert rows["Klasse"] == "Gebäude"
        assert "Gebäude" in text_of(visit, "#info-kind")
        state = visit.state()
        assert not state["roaming"]  # a click is not a camera move
        # The selected building is highlighted in the view.
        assert page.evaluate(
            "([x, y]) => window.tour.viewer.scene.pick(new window.tour.Cesium.Cartesian2(x, y))"
            ".color.toCssHexString()", [found["x"], found["y"]],
        ) == "#ffd23f"

        # An overlay feature's details by keyboard: Tab to its button, Enter.
        button = page.locator("button[data-overlay-info=warnowbruecke]")
        button.focus()
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "info-panel"
        assert text_of(visit, "#info-title") == bridge["properties"]["name"]
        rows = dict(zip(panel.locator("#info-list dt").all_inner_texts(),
                        panel.locator("#info-list dd").all_inner_texts(), strict=True))
        assert rows["Stand"] == "geplant" and rows["Art"] == "Brücke"
        cost = f"{bridge['properties']['cost_eur']:,.0f}".replace(",", ".")
        assert rows["Kosten"] == f"{cost} €"
        assert rows["Beschreibung"] == bridge["properties"]["description_de"]
        page.keyboard.press("Escape")
        assert panel.is_hidden()
        assert page.evaluate("() => document.activeElement.dataset.overlayInfo") == \
            "warnowbruecke"
        visit.assert_clean()


def _short_dwell(route: Route) -> None:
    """The tour with one-second stops, so that autoplay runs through in a test."""
    response = route.fetch()
    tour = response.json()
    for stop in tour["stops"]:
        stop["dwell"] = 1
    route.fulfill(response=response, json=tour)


@pytest.mark.browser
def test_autoplay_pause_roaming_and_reduced_motion(
    chromium: Browser, service: str, published_scenes: PublishedScenes
) -> None:
    stops = published_scenes.tour("gehlsdorf")["stops"]
    with open_page(
        chromium, service, "/tour/gehlsdorf", reduced_motion="reduce",
        routes=(("**/api/v1/scenes/gehlsdorf/tour", _short_dwell),),
    ) as visit:
        page = visit.page
        visit.wait_started()
        assert visit.state()["reducedMotion"]
        # prefers-reduced-motion: the camera jumps, it never flies.
        page.locator("#next-stop").click()
        assert not visit.state()["flying"]
        assert_camera_at(visit, stops[1])
        # Autoplay (dwell seconds from the tour) by keyboard.
        page.locator("#play").focus()
        page.keyboard.press("Enter")
        assert page.locator("#play").get_attribute("data-playing") == "true"
        page.wait_for_function("() => window.viewerState.stop >= 4", timeout=30_000)
        page.keyboard.press("Enter")  # pause
        assert page.locator("#play").get_attribute("data-playing") == "false"
        paused_at = visit.state()["stop"]
        page.wait_for_timeout(2500)
        assert visit.state()["stop"] == paused_at
        assert text_of(visit, "#stop-title") == stops[paused_at - 1]["title"]["de"]
        assert page.evaluate("() => location.pathname") == f"/tour/gehlsdorf/{paused_at}"

        # Free roaming with the mouse, then "back to the tour".
        box = page.locator("#cesium canvas").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 40,
                        steps=8)
        page.mouse.up()
        page.wait_for_function("() => window.viewerState.roaming")
        back = page.locator("#back-to-tour")
        assert back.is_visible()
        back.focus()
        page.keyboard.press("Enter")
        assert not visit.state()["roaming"] and back.is_hidden()
        assert_camera_at(visit, stops[paused_at - 1])
        page.wait_for_timeout(1000)  # the drag's inertia does not carry the camera away again
        assert_camera_at(visit, stops[paused_at - 1])
        assert not visit.state()["roaming"]

        # Roaming with the keyboard in the 3D view; Escape returns to the tour.
        page.locator("#cesium canvas").focus()
        assert page.locator("#crosshair").is_visible()
        before = camera_of(visit)
        page.keyboard.press("ArrowUp")
        page.keyboard.press("Shift+ArrowLeft")
        after = camera_of(visit)
        assert visit.state()["roaming"]
        assert (after["longitude"], after["latitude"]) != (before["longitude"],
                                                            before["latitude"])
        assert after["heading"] == pytest.approx((before["heading"] - 5) % 360, abs=0.01)
        page.keyboard.press("Escape")
        assert not visit.state()["roaming"]
        assert_camera_at(visit, stops[paused_at - 1])

        # The wheel zooms, and that is roaming too.
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -240)
        page.wait_for_function("() => window.viewerState.roaming")
        page.locator("#back-to-tour").click()
        assert not visit.state()["roaming"]
        assert_camera_at(visit, stops[paused_at - 1])

        # Autoplay runs to the last stop and stops there.
        page.locator("#play").click()
        page.wait_for_function(
            "(count) => window.viewerState.stop === count && !window.viewerState.playing",
            arg=len(stops), timeout=60_000,
        )
        assert page.locator("#play").get_attribute("data-playing") == "false"
        visit.assert_clean()


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/", "/tour/rostocker-oval/2"])
def test_phone_width_has_every_control_and_no_horizontal_scroll(
    chromium: Browser, service: str, path: str
) -> None:
    width = 375
    with open_page(chromium, service, path, viewport=(width, 740)) as visit:
        page = visit.page
        if path.startswith("/tour"):
            visit.wait_started()
            controls = ["#previous-stop", "#play", "#next-stop", "#language-switch",
                        "#stop-list", "#epoch-heute", "#epoch-geplant", "#pick-centre",
                        "#layer-options", "#overlay-options", ".attributions"]
            page.locator("#stops-section > summary").click()
            view = page.locator("#cesium").bounding_box()
            assert view is not None and view["width"] == width and view["height"] > 250
        else:
            controls = [".language-switch", ".tour-card a.button", ".tour-card img"]
        for selector in controls:
            for element in page.locator(selector).all():
                element.scroll_into_view_if_needed()
                assert element.is_visible(), selector
                box = element.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (
                    selector, box)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        assert page.evaluate("() => document.body.scrollWidth") <= width
        visit.assert_clean()


NO_WEBGL = """
const getContext = HTMLCanvasElement.prototype.getContext;
HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
    return /webgl/i.test(kind) ? null : getContext.call(this, kind, ...rest);
};
"""


@pytest.mark.browser
def test_without_webgl_the_tour_still_reads(
    chromium: Browser, service: str, published_scenes: PublishedScenes
) -> None:
    stops = published_scenes.tour("warnowbruecke")["stops"]
    with open_page(chromium, service, "/tour/warnowbruecke", init_script=NO_WEBGL) as visit:
        page = visit.page
        visit.wait_started()
        state = visit.state()
        assert state["status"] == "failed"
        status = page.locator("#view-status")
        assert status.get_attribute("data-state") == "failed"
        assert "WebGL" in status.inner_text()
        # The tour's text, stops and language work without the 3D view.
        page.locator("#next-stop").click()
        assert text_of(visit, "#stop-title") == stops[1]["title"]["de"]
        assert page.evaluate("() => location.pathname") == "/tour/warnowbruecke/2"
        page.locator("#language-switch").click()
        assert text_of(visit, "#stop-narration") == stops[1]["narration"]["en"]
        assert "WebGL" in status.inner_text() and status.inner_text() != state["errors"][0]
        assert not visit.external
