"""Tests of the CesiumJS real-client harness itself (tests/cesium_harness.py).

The tilesets here are built by hand (numpy + trimesh), independent of the project pipeline, so
a failure points at the harness, not at the code under test elsewhere.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import trimesh

from tests.cesium_harness import CENTRE, MIME_TYPES, CesiumBrowser, RenderResult, StaticServer

Vec3 = tuple[float, float, float]
RenderTileset = Callable[..., RenderResult]  # the render_tileset fixture

# WGS84, for placing the hand-made tileset at Rostock without depending on twin.crs.
WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)

ROSTOCK_LON_LAT_HEIGHT: Vec3 = (12.1292, 54.0884, 40.0)
BOX_EXTENTS_ENU: Vec3 = (40.0, 40.0, 60.0)  # east, north, up (metres)
BOX_COLOUR = (214, 120, 40, 255)  # orange: far from the sky and globe colours

# glTF is Y-up; 3D Tiles rotates Y-up to Z-up when it loads glTF content, so geometry that is
# Z-up in the tile frame goes into the GLB rotated by -90° about X: (x, y, z) -> (x, z, -y).
Z_UP_TO_Y_UP = trimesh.transformations.rotation_matrix(-np.pi / 2.0, [1.0, 0.0, 0.0])


def ecef_from_geodetic(lon_deg: float, lat_deg: float, height: float) -> np.ndarray:
    """WGS84 geodetic coordinates to ECEF metres."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * np.sin(lat) ** 2)
    return np.array(
        [
            (n + height) * np.cos(lat) * np.cos(lon),
            (n + height) * np.cos(lat) * np.sin(lon),
            (n * (1.0 - WGS84_E2) + height) * np.sin(lat),
        ]
    )


def enu_to_ecef_transform(lon_deg: float, lat_deg: float, height: float) -> np.ndarray:
    """4x4 matrix taking east-north-up metres at a place to ECEF."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2] = east, north, up
    matrix[:3, 3] = ecef_from_geodetic(lon_deg, lat_deg, height)
    return matrix


def box_glb(extents_enu: Vec3 = BOX_EXTENTS_ENU, offset_enu: Vec3 = (0.0, 0.0, 0.0)) -> bytes:
    """A lit, solid-coloured box as GLB, centred at offset_enu in the tile's Z-up frame."""
    mesh = trimesh.creation.box(extents=extents_enu)
    mesh.apply_translation(offset_enu)
    mesh.apply_transform(Z_UP_TO_Y_UP)
    # Split shared corners so every face gets its own flat normal (8 shared vertices would
    # average the normals into a blob-shaded box).
    mesh.unmerge_vertices()
    mesh.visual = trimesh.visual.TextureVisuals(
        material=trimesh.visual.material.PBRMaterial(
            baseColorFactor=BOX_COLOUR, metallicFactor=0.0, roughnessFactor=1.0
        )
    )
    glb: bytes = mesh.export(file_type="glb", include_normals=True)
    return glb


def write_tileset(
    directory: Path,
    *,
    glb: bytes | None,
    half_extents_enu: Vec3 = (20.0, 20.0, 30.0),
    place: Vec3 = ROSTOCK_LON_LAT_HEIGHT,
    content_uri: str = "box.glb",
) -> Path:
    """A one-tile 3D Tiles 1.1 tileset in an ENU frame at ``place``; no content if glb is None."""
    directory.mkdir(parents=True, exist_ok=True)
    hx, hy, hz = half_extents_enu
    root: dict[str, object] = {
        "transform": enu_to_ecef_transform(*place).flatten(order="F").tolist(),  # column-major
        "boundingVolume": {"box": [0.0, 0.0, 0.0, hx, 0.0, 0.0, 0.0, hy, 0.0, 0.0, 0.0, hz]},
        "geometricError": 0.0,
        "refine": "REPLACE",
    }
    if glb is not None:
        (directory / content_uri).write_bytes(glb)
    if glb is not None or "://" in content_uri:
        root["content"] = {"uri": content_uri}
    tileset = {"asset": {"version": "1.1"}, "geometricError": 100.0, "root": root}
    path = directory / "tileset.json"
    path.write_text(json.dumps(tileset, indent=2))
    return path


def test_enu_frame_is_orthonormal_and_up_points_away_from_earth() -> None:
    matrix = enu_to_ecef_transform(*ROSTOCK_LON_LAT_HEIGHT)
    basis = matrix[:3, :3]
    np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-12)
    origin = matrix[:3, 3]
    assert np.dot(basis[:, 2], origin / np.linalg.norm(origin)) > 0.99
    # Rostock is ~6.364e6 m from the centre (WGS84 radius at 54°N plus 40 m).
    assert 6.36e6 < np.linalg.norm(origin) < 6.37e6


def test_box_glb_is_tall_along_gltf_y() -> None:
    scene = trimesh.load(trimesh.util.wrap_as_stream(box_glb()), file_type="glb")
    extents = scene.extents
    np.testing.assert_allclose(extents, [40.0, 60.0, 40.0], atol=1e-6)


def test_static_server_serves_mounts_with_mime_types(tmp_path: Path) -> None:
    (tmp_path / "box.glb").write_bytes(box_glb())
    (tmp_path / "tileset.json").write_text("{}")
    with StaticServer() as server:
        prefix = server.mount(tmp_path)
        expected = {
            f"{prefix}box.glb": MIME_TYPES[".glb"],
            f"{prefix}tileset.json": MIME_TYPES[".json"],
            "/cesium/Cesium.js": MIME_TYPES[".js"],
            "/harness/index.html": MIME_TYPES[".html"],
        }
        for path, mime in expected.items():
            with urllib.request.urlopen(server.origin + path) as response:
                assert response.headers.get_content_type() == mime, path
        for missing in (f"{prefix}nope.json", f"{prefix}../../pyproject.toml", "/elsewhere/x"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(server.origin + missing)
            assert info.value.code == 404, missing
            info.value.close()


@pytest.mark.browser
def test_box_at_rostock_renders_in_the_centre(
    render_tileset: RenderTileset, tmp_path: Path
) -> None:
    write_tileset(tmp_path / "box", glb=box_glb())
    result = render_tileset(tmp_path / "box")
    assert result.tiles_loaded, result.summary()
    assert result.external_requests == [], result.summary()
    assert result.console_errors == [], result.summary()
    assert result.harness_errors == [], result.summary()
    assert result.stats["numberOfTilesWithContentReady"] == 1, result.summary()
    assert result.image.shape == (600, 800, 3)
    # The box fills most of the centre of the view, and it is lit: not black, not flat.
    assert result.content_fraction(CENTRE) > 0.8, result.summary()
    box_pixels = result.image[result.content_mask()]
    assert box_pixels.mean() > 60, "box rendered (nearly) black"
    assert len(np.unique(box_pixels // 16, axis=0)) > 1, "box faces not shaded differently"
    # Orange dominates: red above blue on average.
    assert box_pixels[:, 0].mean() > box_pixels[:, 2].mean() + 40
    # Around the box the view is empty globe (and maybe sky).
    assert result.content_fraction((0.0, 0.0, 1.0, 1.0)) < 0.5


@pytest.mark.browser
def test_tileset_without_content_renders_only_background(
    render_tileset: RenderTileset, tmp_path: Path
) -> None:
    write_tileset(tmp_path / "empty", glb=None)
    result = render_tileset(tmp_path / "empty")
    assert result.tiles_loaded, result.summary()
    assert result.external_requests == [] and result.console_errors == [], result.summary()
    assert result.content_fraction(CENTRE) < 0.01, result.summary()


@pytest.mark.browser
def test_content_far_from_its_bounding_volume_is_not_in_view(
    render_tileset: RenderTileset, tmp_path: Path
) -> None:
    # Bounding volume (and so the camera) at Rostock, geometry 1000 km east of it: the same
    # box that fills the centre above must not show, so the centre assertion can fail.
    write_tileset(tmp_path / "far", glb=box_glb(offset_enu=(1_000_000.0, 0.0, 0.0)))
    result = render_tileset(tmp_path / "far")
    assert result.tiles_loaded, result.summary()
    assert result.harness_errors == [] and result.console_errors == [], result.summary()
    assert result.content_fraction(CENTRE) < 0.01, result.summary()


@pytest.mark.browser
def test_external_tile_content_is_blocked_and_reported(
    render_tileset: RenderTileset, tmp_path: Path
) -> None:
    external = "https://example.com/tiles/box.glb"
    write_tileset(tmp_path / "external", glb=None, content_uri=external)
    result = render_tileset(tmp_path / "external")
    assert result.external_requests == [external], result.summary()
    assert any(external in error for error in result.harness_errors), result.summary()
    assert not result.ok
    assert result.content_fraction(CENTRE) < 0.01, result.summary()


@pytest.mark.browser
def test_missing_tileset_is_reported_not_hung(
    render_tileset: RenderTileset, tmp_path: Path
) -> None:
    (tmp_path / "nothing").mkdir()
    result = render_tileset(tmp_path / "nothing", timeout=30)
    assert result.status == "failed" and not result.timed_out, result.summary()
    assert not result.tiles_loaded
    assert any("tileset load failed" in error for error in result.harness_errors)


@pytest.mark.browser
def test_any_page_request_off_the_local_server_is_blocked(
    cesium_browser: CesiumBrowser, tmp_path: Path
) -> None:
    (tmp_path / "probe.html").write_text(
        """<!doctype html><title>probe</title>
<img src="http://example.org/pixel.png">
<script>
window.done = Promise.allSettled([
  fetch("https://example.com/data.json"),
  new Promise((resolve) => {
    const worker = new Worker(URL.createObjectURL(new Blob(
      ['fetch("https://worker.example.net/w").finally(() => postMessage(1))'])));
    worker.onmessage = resolve;
  }),
]).then(() => true);
</script>"""
    )
    prefix = cesium_browser.server.mount(tmp_path)
    with cesium_browser.page(f"{prefix}probe.html") as (page, visit):
        page.wait_for_function("() => window.done", timeout=30_000)
        page.evaluate("() => window.done")
    assert sorted(visit.external_requests) == [
        "http://example.org/pixel.png",
        "https://example.com/data.json",
        "https://worker.example.net/w",
    ]
    assert visit.console_errors, "blocked requests should surface as console errors"
