"""Shared pytest fixtures."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.cesium_harness import CesiumBrowser, RenderResult
    from tests.scene_fixtures import PublishedScenes

# --------------------------------------------------------------------------------------------
# CesiumJS in headless chromium (tests/cesium_harness.py); for tests marked `browser`
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    """One sync Playwright for the whole test process: it keeps an event loop running on the
    main thread, so a second one refuses to start and asyncio.run() fails beside it (tests
    that need asyncio run it in a thread of their own, see ``run_async``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def cesium_browser(playwright_driver: Any) -> Iterator[CesiumBrowser]:
    """One headless chromium + local static server for the whole session (start-up is slow)."""
    # Imported here so that sessions without browser tests do not load the harness.
    from tests.cesium_harness import CesiumBrowser

    with CesiumBrowser(playwright=playwright_driver) as browser:
        yield browser


@pytest.fixture(scope="session")
def cesium_screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder under pytest's tmp dir holding every screenshot of the session."""
    return tmp_path_factory.mktemp("cesium-screenshots", numbered=False)


@pytest.fixture
def render_tileset(
    cesium_browser: CesiumBrowser, cesium_screenshot_dir: Path, request: pytest.FixtureRequest
) -> Callable[..., RenderResult]:
    """Render a tileset directory in CesiumJS; ``render_tileset(dir, "tileset.json", **view)``.

    Takes the options of ``CesiumBrowser.render_tileset`` (heading, pitch, range, timeout, ...)
    and returns its ``RenderResult``. Each screenshot is saved as
    ``<session tmp>/cesium-screenshots/<test>-<n>.png`` (``result.screenshot_path``) and copied
    to $TWIN_TEST_ARTIFACTS when that is set.
    """
    from tests.cesium_harness import copy_to_artifacts

    shots_dir = cesium_screenshot_dir
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    count = 0

    def render(
        tileset_dir: Path, tileset_name: str = "tileset.json", **options: Any
    ) -> RenderResult:
        nonlocal count
        count += 1
        result = cesium_browser.render_tileset(tileset_dir, tileset_name, **options)
        name = f"{test_name}-{count}.png"
        copy_to_artifacts(result.save(shots_dir / name), name)
        return result

    return render


# --------------------------------------------------------------------------------------------
# The sample data and the three published sample scenes (tests/scene_fixtures.py)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def published_scenes() -> PublishedScenes:
    """gehlsdorf, rostocker-oval and warnowbruecke built from the sample data (once per run,
    shared by the xdist workers through a file lock)."""
    from tests.scene_fixtures import published_scenes as build

    return build()
