"""``twin render``: planner renders of a published scene (tests/render_fixtures.py builds it
with the real pipelines).

Image regression: renders are compared with the PNGs in tests/references/render/ with a
tolerance (mean absolute difference and the share of clearly different pixels). After an
intended change of the renders (or of the pipelines that make the fixture scene), look at
the new images and refresh the references with

    TWIN_UPDATE_RENDER_REFERENCES=1 .venv/bin/python -m pytest tests/test_render.py \
        -n 0 -k reference

(the test then writes the references and passes; commit them with the change).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from PIL import Image

from tests import render_fixtures as fx
from tools.cli import cli
from twin.render import CameraSpec, RenderOptions, View, open_scene, place_camera, view_for
from twin.render.scene import PublishedScene
from twin.render.style import classify
from twin.render.sun import (
    day_series,
    parse_interval,
    parse_time,
    sun_position,
)
from twin.render.views import Session, series_path, sun_at

REFERENCES = Path(__file__).parent / "references" / "render"
UPDATE = os.environ.get("TWIN_UPDATE_RENDER_REFERENCES") == "1"
SMALL = (320, 180)


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("render-scene")
    fx.build_render_scene(root / "scenes", root / "work")
    return root / "scenes"


@pytest.fixture(scope="module")
def scene(scenes_dir: Path) -> PublishedScene:
    return open_scene(scenes_dir, fx.SCENE_ID)


def render(scene: PublishedScene, view: View, sun: dt.datetime | None = None,
           **options: object) -> np.ndarray:
    settings = RenderOptions(**{"size": SMALL, **options})  # type: ignore[arg-type]
    with Session(scene, settings) as session:
        return session.image(view, sun_at(scene, sun) if sun else None)


def tower_view() -> View:
    """Straight down onto the tower from 400 m, north up."""
    e, n, w, d, _ = fx.TOWER
    centre = (e + w / 2, n + d / 2)
    ground = float(fx.land_height(np.array([centre[0]]), np.array([centre[1]]))[0])
    return View(CameraSpec(position=(centre[0], centre[1], 400.0),
                           look_at=(centre[0], centre[1], ground), fov=40.0))


def pixel_box(scene: PublishedScene, view: View, corners: list[tuple[float, float, float]],
              size: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the screen rectangle around projected EPSG:25833 points."""
    camera = place_camera(scene, view.spec)
    pixels, depth = camera.project(scene.to_frame(corners), *size)
    assert (depth > 0).all()
    x0, y0 = np.floor(pixels.min(axis=0)).astype(int) - 1  # a pixel of margin: edges blend
    x1, y1 = np.ceil(pixels.max(axis=0)).astype(int) + 1
    width, height = size
    return slice(max(y0, 0), min(y1, height)), slice(max(x0, 0), min(x1, width))


def box_corners(e: tuple[float, float], n: tuple[float, float], h: tuple[float, float]) -> list[
    tuple[float, float, float]
]:
    return [(a, b, c) for a in e for b in n for c in h]


# --- reading tilesets -----------------------------------------------------------------------


def test_tile_content_is_placed_where_the_citygml_says(scene: PublishedScene) -> None:
    from twin.readers.tileset import read_tile_meshes

    tileset = scene.tileset(scene.epoch("heute"))
    camera = place_camera(scene, tower_view().spec)
    selection = tileset.select(camera.frustum(np.linalg.inv(scene.ecef_to_frame), *SMALL))
    tower = [t for t in selection.tiles if "Turm_LoD2" in t.address]
    assert len(tower) == 1
    (mesh,) = read_tile_meshes(tower[0].contents[0], scene.ecef_to_frame @ tower[0].world)
    assert mesh.properties is not None
    assert mesh.properties["gml_id"] == ["turm"]
    assert mesh.properties["function"] == ["31001_3000"]
    assert list(mesh.properties["yearOfConstruction"]) == [1975]
    e, n, w, d, h = fx.TOWER
    ground = float(fx.land_height(np.array([e + w / 2]), np.array([n + d / 2]))[0])
    expected = scene.to_frame(box_corners((e, e + w), (n, n + d), (ground - 0.5, ground + h)))
    # Positions are quantised to 1 cm in the GLB.
    np.testing.assert_allclose(mesh.positions.min(axis=0), expected.min(axis=0), atol=0.02)
    np.testing.assert_allclose(mesh.positions.max(axis=0), expected.max(axis=0), atol=0.02)
    assert mesh.triangles is not None and len(mesh.triangles) == 12


def test_far_camera_selects_fewer_and_coarser_tiles(scene: PublishedScene) -> None:
    tileset = scene.tileset(scene.epoch("geplant"))
    frame_to_ecef = np.linalg.inv(scene.ecef_to_frame)
    near = place_camera(scene, CameraSpec((312000.0, 5997700.0, 60.0),
                                          look_at=(312000.0, 5997900.0, 10.0)))
    far = place_camera(scene, CameraSpec((310500.0, 5995500.0, 5000.0),
                                         look_at=(312000.0, 5998000.0, 10.0)))
    near_tiles = tileset.select(near.frustum(frame_to_ecef, 1920, 1080))
    far_tiles = tileset.select(far.frustum(frame_to_ecef, 1920, 1080))
    # Near: full LoD2 leaves (geometricError 0) of the buildings ahead, terrain at full
    # resolution in front and one level coarser behind; the terrain behind the camera culled.
    assert (len(near_tiles.tiles), near_tiles.visited, near_tiles.culled) == (19, 34, 1)
    assert sum(t.geometric_error == 0.0 for t in near_tiles.tiles) == 17
    assert max(t.geometric_error for t in near_tiles.tiles) < 1.5
    # Far: the whole scene in view, drawn from the roots: the terrain's overview tile and
    # the LoD1 blocks of the buildings (error 39 m, 8 px at 5 km); tower and bridge are
    # single tiles.
    assert (len(far_tiles.tiles), far_tiles.visited, far_tiles.culled) == (4, 13, 0)
    layers = sorted((t.address.split("/")[1], round(t.geometric_error, 2), t.depth)
                    for t in far_tiles.tiles)
    assert layers[:3] == [("bridge", 0.0, 4), ("buildings", 0.0, 4), ("buildings", 39.04, 4)]
    assert layers[3][0] == "terrain" and layers[3][1] > 1.0 and layers[3][2] == 2
    # A lower screen-space error limit loads more.
    assert len(tileset.select(far.frustum(frame_to_ecef, 1920, 1080), 1.0).tiles) > 4


# --- images ---------------------------------------------------------------------------------


def compare_with_reference(name: str, image: np.ndarray) -> None:
    path = REFERENCES / name
    if UPDATE:
        REFERENCES.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        return
    assert path.is_file(), (
        f"no reference image {path}: create it with TWIN_UPDATE_RENDER_REFERENCES=1 (see the "
        "module docstring)"
    )
    reference = np.asarray(Image.open(path).convert("RGB"))
    assert reference.shape == image.shape
    difference = np.abs(reference.astype(np.int16) - image.astype(np.int16)).max(axis=2)
    assert difference.mean() < 1.0, f"{name}: mean difference {difference.mean():.2f}"
    assert (difference > 40).mean() < 0.005, (
        f"{name}: {(difference > 40).mean():.2%} of the pixels differ clearly"
    )


def test_reference_overview(scene: PublishedScene) -> None:
    image = render(scene, view_for(scene, "1", None))
    assert image.shape == (180, 320, 3)
    compare_with_reference("overview.png", image)


def test_reference_compare_with_difference(scene: PublishedScene) -> None:
    image = render(scene, view_for(scene, "bruecke", None), compare=("heute", "geplant"),
                   difference=True)
    assert image.shape == (180, 960, 3)
    compare_with_reference("bridge-compare.png", image)


def test_reference_sun_and_heights(scene: PublishedScene) -> None:
    image = render(scene, view_for(scene, "turm", None),
                   sun=parse_time("2026-06-21T15:00+02:00"), color_by="height", language="en")
    compare_with_reference("tower-sun-height.png", image)


def test_renders_are_deterministic(scene: PublishedScene) -> None:
    view = view_for(scene, "1", None)
    sun = parse_time("2026-06-21T17:00+02:00")
    first = render(scene, view, sun=sun)
    second = render(scene, view, sun=sun)
    assert np.abs(first.astype(np.int16) - second.astype(np.int16)).max() <= 1


def test_planned_bridge_shows_in_geplant_only(scene: PublishedScene) -> None:
    view = view_for(scene, "bruecke", None)
    options = {"annotations": False, "overlays": "off"}
    heute = render(scene, view, epoch="heute", **options)
    geplant = render(scene, view, epoch="geplant", **options)
    rows, cols = pixel_box(scene, view, box_corners(fx.BRIDGE_E, fx.BRIDGE_N,
                                                    (-1.0, fx.BRIDGE_DECK[1])), SMALL)
    changed = np.abs(heute.astype(np.int16) - geplant.astype(np.int16)).max(axis=2) > 24
    inside = np.zeros_like(changed)
    inside[rows, cols] = True
    # The deck crosses the view diagonally: a few hundred pixels of its bounding rectangle
    # change, and nothing outside it does.
    assert changed[inside].sum() > 300
    assert changed[~inside].sum() == 0


def dark_share(image: np.ndarray, rows: slice, cols: slice, ground: float) -> float:
    luminance = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return float((luminance[rows, cols] < 0.8 * ground).mean())


@pytest.mark.parametrize(("time", "shadow_side"), [("09:00", "west"), ("17:00", "east")])
def test_shadow_falls_opposite_the_sun(scene: PublishedScene, time: str,
                                       shadow_side: str) -> None:
    view = tower_view()
    size = (320, 240)
    when = parse_time(f"2026-06-21T{time}+02:00")
    image = render(scene, view, sun=when, size=size, annotations=False, overlays="off")
    e, n, w, d, _ = fx.TOWER
    level = (8.0, 12.0)
    west = pixel_box(scene, view, box_corners((e - 45, e - 3), (n + 2, n + d - 2), level), size)
    east = pixel_box(scene, view, box_corners((e + w + 3, e + w + 45), (n + 2, n + d - 2), level),
                     size)
    ground = float(np.median(image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])))
    shares = {"west": dark_share(image, *west, ground), "east": dark_share(image, *east, ground)}
    other = "east" if shadow_side == "west" else "west"
    assert shares[shadow_side] > 0.6, shares
    assert shares[other] < 0.05, shares
    # The shadow points away from the sun: its centre lies at the sun's azimuth + 180°.
    sun = sun_at(scene, when)
    luminance = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    rows, cols = np.nonzero(luminance < 0.8 * ground)
    camera = place_camera(scene, view.spec)
    pixels, _ = camera.project(scene.to_frame([(e + w / 2, n + d / 2, 10.0)]), *size)
    cx, cy = pixels[0]
    bearing = math.degrees(math.atan2(cols.mean() - cx, -(rows.mean() - cy))) % 360
    assert abs((bearing - (sun.azimuth + 180.0) + 180.0) % 360.0 - 180.0) < 8.0


# --- sun ------------------------------------------------------------------------------------

# NREL SPA (pvlib 0.16 spa_python, 1013.25 hPa, 12 °C) at 54.0924 N, 12.1286 E: azimuth and
# apparent elevation.
SPA = [
    ("2026-06-21T09:00+02:00", 96.986793, 34.343082),
    ("2026-06-21T15:00+02:00", 223.712482, 53.428515),
    ("2026-06-21T19:00+02:00", 281.719892, 20.742239),
    ("2026-12-21T12:00+01:00", 177.761684, 12.514284),
    ("2026-03-20T08:30+01:00", 117.589580, 18.446098),
]


@pytest.mark.parametrize(("time", "azimuth", "elevation"), SPA)
def test_sun_position_agrees_with_spa(time: str, azimuth: float, elevation: float) -> None:
    position = sun_position(12.1286, 54.0924, parse_time(time))
    assert position.azimuth == pytest.approx(azimuth, abs=0.02)
    assert position.elevation == pytest.approx(elevation, abs=0.02)


def test_sun_series_covers_daylight_every_step() -> None:
    positions = day_series(12.1286, 54.0924, dt.date(2026, 6, 21), parse_interval("1h"))
    hours = [p.time.hour for p in positions]
    assert hours == list(range(5, 22))  # sunrise 04:38, sunset 21:47 CEST
    assert all(p.elevation > 0 for p in positions)
    assert series_path(Path("out/schatten.png"), positions[0].time) == Path(
        "out/schatten-0500.png")


def test_colour_classes() -> None:
    rgb, legend = classify("height", [3.0, 17.0, 60.0, -1.0e300], "de")
    labels = [e.label for e in legend]
    assert labels == ["< 5 m", "5–10 m", "10–15 m", "15–20 m", "20–30 m", "30–50 m", "≥ 50 m",
                      "unbekannt"]
    assert [tuple(c) for c in rgb] == [legend[0].rgb, legend[3].rgb, legend[6].rgb,
                                       legend[7].rgb]
    rgb, legend = classify("function", ["31001_1010", "31001_2463", "31001_3065",
                                        "31001_9998", ""], "en")
    assert [legend[i].label for i in range(5)] == ["Residential", "Business, trade, industry",
                                                   "Public use", "Other", "unknown"]
    assert [tuple(c) for c in rgb] == [legend[0].rgb, legend[1].rgb, legend[2].rgb,
                                       legend[3].rgb, legend[4].rgb]
    rgb, legend = classify("year", [1975, 1899, 2026, -(2**31)], "de")
    assert [e.label for e in legend] == ["< 1900", "1900–1946", "1946–1970", "1970–1990",
                                         "1990–2010", "≥ 2010", "unbekannt"]
    assert [tuple(c) for c in rgb] == [legend[3].rgb, legend[0].rgb, legend[5].rgb,
                                       legend[6].rgb]


def test_draped_overlay_lies_on_the_terrain(scene: PublishedScene) -> None:
    from scipy.ndimage import maximum_filter

    from twin.model.heights import HeightGrid
    from twin.render.overlays import DRAPE_LIFT, DRAPE_WINDOW, overlay_geometry

    geometry = overlay_geometry(scene, "draped")
    assert geometry.surfaces is not None and geometry.statuses == ["planned"]
    frame = np.asarray(geometry.surfaces.points, dtype=np.float64)
    frame_to_ecef = np.linalg.inv(scene.ecef_to_frame)
    enh = scene.transformer.from_ecef(frame @ frame_to_ecef[:3, :3].T + frame_to_ecef[:3, 3])
    # The terrain cells (1 m) whose centres lie in the polygon 312050-312200 x 5997850-5998000.
    assert (enh[:, 0].min(), enh[:, 0].max()) == pytest.approx((312050.0, 312200.0), abs=0.01)
    assert (enh[:, 1].min(), enh[:, 1].max()) == pytest.approx((5997850.0, 5998000.0), abs=0.01)
    # On the highest terrain height within 9 cells (coarser terrain levels bulge up to that).
    grid = scene.heights
    assert grid is not None
    highest = HeightGrid(grid.x0, grid.y0, grid.cell,
                         maximum_filter(grid.heights, size=DRAPE_WINDOW, mode="nearest"), grid.crs)
    np.testing.assert_allclose(enh[:, 2], highest.sample(enh[:, 0], enh[:, 1]) + DRAPE_LIFT,
                               atol=0.01)
    terrain = grid.sample(enh[:, 0], enh[:, 1])
    assert 0.0 <= float((enh[:, 2] - DRAPE_LIFT - terrain).min())
    assert float((enh[:, 2] - DRAPE_LIFT - terrain).max()) < 0.3  # a gentle slope: 9 m × 2 %
    # And the terrain is where the LiDAR put it (one point per cell, 3 cm noise).
    np.testing.assert_allclose(terrain, fx.land_height(enh[:, 0], enh[:, 1]), atol=0.15)


# --- command line -------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-q", "render", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--stop", "nirgendwo:1"], "unknown scene 'nirgendwo'"),
    (["--stop", "testhafen:9"], "has no tour stop '9' (stops: 1 uebersicht, 2 bruecke, 3 turm)"),
    (["--stop", "testhafen:1", "--epoch", "morgen"], "has no epoch 'morgen'"),
    (["--stop", "testhafen:1", "--compare", "heute,morgen"], "has no epoch 'morgen'"),
    (["--scene", "testhafen", "--camera", "312000,5998000,5", "--look-at", "312100,5998100,9"],
     "is 5.9 m below the terrain (10.9 m DHHN2016 there)"),
    (["--stop", "testhafen:1", "--sun", "2026-06-31T12:00"], "not a time"),
    (["--stop", "testhafen:1", "--sun", "2026-06-21T01:00+02:00"],
     "the sun is below the horizon there"),
    (["--stop", "testhafen:1", "--sun-series", "2026-06-21", "--every", "7d"], "--every '7d'"),
])
def test_bad_input_is_one_line_and_no_image(scenes_dir: Path, tmp_path: Path, args: list[str],
                                            message: str) -> None:
    out = tmp_path / "bild.png"
    code, stdout, stderr = run("--scenes", str(scenes_dir), *args, "--size", "64x36",
                               "--out", str(out))
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("twin: error: ") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_a_render_and_a_sun_series(scenes_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bild.png"
    code, stdout, stderr = run("--scenes", str(scenes_dir), "--stop", "testhafen:turm",
                               "--size", "96x54", "--out", str(out))
    assert (code, stderr) == (0, "")
    with Image.open(out) as image:
        assert image.size == (96, 54)
    code, stdout, stderr = run("--scenes", str(scenes_dir), "--stop", "testhafen:3",
                               "--size", "64x36", "--sun-series", "2026-12-21", "--every", "2h",
                               "--out", str(tmp_path / "winter.png"))
    assert code == 0, stderr
    # 21 December: sunrise 08:30, sunset 15:58 CET.
    assert sorted(p.name for p in tmp_path.glob("winter-*.png")) == [
        "winter-1000.png", "winter-1200.png", "winter-1400.png"]


def test_cli_flythrough(scenes_dir: Path, tmp_path: Path) -> None:
    gif = tmp_path / "tour.gif"
    code, stdout, stderr = run("--scenes", str(scenes_dir), "--scene", "testhafen",
                               "--flythrough", str(gif), "--size", "64x36", "--fps", "2")
    assert code == 0, stderr
    with Image.open(gif) as animation:
        # 3 stops held 1.5 s (3 frames at 2 fps), 2 flights of 4 s (7 frames between stops);
        # the GIF keeps each hold as one frame of 1.5 s.
        durations = []
        for index in range(animation.n_frames):
            animation.seek(index)
            durations.append(animation.info["duration"])
        assert animation.size == (64, 36)
        assert durations == [1500] + [500] * 7 + [1500] + [500] * 7 + [1500]
    mp4 = tmp_path / "tour.mp4"
    code, stdout, stderr = run("--scenes", str(scenes_dir), "--scene", "testhafen",
                               "--flythrough", str(mp4), "--size", "64x36", "--fps", "2")
    assert code == 0, stderr
    import imageio_ffmpeg

    # (read_frames would leave ffmpeg's pipe open once it has read to the end)
    assert imageio_ffmpeg.count_frames_and_secs(str(mp4)) == (23, 11.5)


# --- the sample scenes (tests/scene_fixtures.py: twin sample-data + twin build scene all) ----


@pytest.fixture(scope="module")
def sample_scenes(published_scenes) -> Path:  # type: ignore[no-untyped-def]
    return published_scenes.out


def layer_box(scene: PublishedScene, layer: str) -> np.ndarray:
    """The 8 corners (render frame) of a layer tileset's root bounding box."""
    from twin.readers.tileset import Tileset

    bounds = Tileset(scene.folder / "layers" / layer / "tileset.json",
                     root_folder=scene.folder).root.bounds
    assert bounds.axes is not None
    signs = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], float)
    ecef = bounds.center + signs @ bounds.axes
    m = scene.ecef_to_frame
    return ecef @ m[:3, :3].T + m[:3, 3]


@pytest.mark.parametrize("scene_id", ["gehlsdorf", "rostocker-oval", "warnowbruecke"])
def test_reference_sample_scene_first_stop(sample_scenes: Path, scene_id: str) -> None:
    scene = open_scene(sample_scenes, scene_id)
    image = render(scene, view_for(scene, "1", None))
    compare_with_reference(f"{scene_id}-1.png", image)


def test_reference_warnowbruecke_compare(sample_scenes: Path) -> None:
    scene = open_scene(sample_scenes, "warnowbruecke")
    image = render(scene, view_for(scene, "s-kurve", None), compare=("heute", "geplant"),
                   difference=True)
    compare_with_reference("warnowbruecke-3-compare.png", image)


@pytest.mark.parametrize("stop", ["s-kurve", "klappbruecke", "faehrberg"])
def test_warnowbruecke_visible_in_geplant_only(sample_scenes: Path, stop: str) -> None:
    scene = open_scene(sample_scenes, "warnowbruecke")
    view = view_for(scene, stop, None)
    options = {"annotations": False, "overlays": "off"}
    heute = render(scene, view, epoch="heute", **options)
    geplant = render(scene, view, epoch="geplant", **options)
    camera = place_camera(scene, view.spec)
    pixels, depth = camera.project(layer_box(scene, "warnowbruecke"), *SMALL)
    changed = np.abs(heute.astype(np.int16) - geplant.astype(np.int16)).max(axis=2) > 24
    rows, cols = np.nonzero(changed)
    # The bridge changes hundreds of pixels ...
    assert len(rows) > 300
    # ... and only inside the screen rectangle of its bounding box (corners behind the
    # camera make the rectangle open to that side).
    in_front = depth > 0
    x0, y0 = np.floor(pixels[in_front].min(axis=0)) - 1
    x1, y1 = np.ceil(pixels[in_front].max(axis=0)) + 1
    if not in_front.all():
        x0, y0, x1, y1 = -np.inf, y0, np.inf, np.inf
    inside = (cols >= x0) & (cols <= x1) & (rows >= y0) & (rows <= y1)
    assert inside.all()


def test_sample_scene_lod_far_and_near(sample_scenes: Path) -> None:
    scene = open_scene(sample_scenes, "rostocker-oval")
    tileset = scene.tileset(scene.epoch("heute"))
    frame_to_ecef = np.linalg.inv(scene.ecef_to_frame)
    near = place_camera(scene, CameraSpec.from_stop(scene.id, scene.stop("altstadt")))
    far = place_camera(scene, CameraSpec((310000.0, 5994000.0, 8000.0),
                                         look_at=(312600.0, 5997900.0, 5.0)))
    near_tiles = tileset.select(near.frustum(frame_to_ecef, 1920, 1080))
    far_tiles = tileset.select(far.frustum(frame_to_ecef, 1920, 1080))

    def terrain(selection: object) -> list[float]:
        return [t.geometric_error for t in selection.tiles  # type: ignore[attr-defined]
                if "layers/terrain" in t.address]

    assert len(terrain(near_tiles)) > len(terrain(far_tiles)) >= 1
    assert min(terrain(far_tiles)) > max(terrain(near_tiles))
    assert near_tiles.culled > far_tiles.culled


def tallest_building(scene: PublishedScene) -> tuple[float, np.ndarray, str]:
    """Height, highest vertex (render frame) and gml:id of the tallest building of a scene."""
    from twin.readers.tileset import read_tile_meshes

    tileset = scene.tileset(scene.epoch("heute"))
    best: tuple[float, np.ndarray, str] | None = None
    stack = [tileset.root]
    while stack:
        node = stack.pop()
        children = tileset.children(node)
        stack.extend(children)
        if not node.contents or children or "layers/buildings" not in node.address:
            continue
        for mesh in read_tile_meshes(node.contents[0], scene.ecef_to_frame @ node.world):
            assert mesh.feature_ids is not None and mesh.properties is not None
            for feature in np.unique(mesh.feature_ids):
                points = mesh.positions[mesh.feature_ids == feature]
                height = float(np.ptp(points[:, 2]))
                if best is None or height > best[0]:
                    apex = points[np.argmax(points[:, 2])].copy()
                    apex[2] = points[:, 2].min()  # its foot
                    best = (height, apex, str(mesh.properties["gml_id"][feature]))
    assert best is not None
    return best


def test_sample_scene_shadows_move_from_west_to_east(sample_scenes: Path) -> None:
    scene = open_scene(sample_scenes, "rostocker-oval")
    height, foot, _ = tallest_building(scene)
    assert height > 80.0  # a church spire
    frame_to_ecef = np.linalg.inv(scene.ecef_to_frame)
    e, n, h = (float(v) for v in scene.transformer.from_ecef(
        (frame_to_ecef[:3, :3] @ foot + frame_to_ecef[:3, 3])[None, :])[0])
    view = View(CameraSpec(position=(e, n, h + 900.0), look_at=(e, n, h), fov=40.0))
    size = (320, 240)
    camera = place_camera(scene, view.spec)
    weights = np.array([0.299, 0.587, 0.114])
    times = ("09:00", "17:00")
    dark = {}
    for time in times:
        image = render(scene, view, sun=parse_time(f"2026-06-21T{time}+02:00"),
                       annotations=False, overlays="off", size=size)
        luminance = image.astype(np.float64) @ weights
        dark[time] = luminance < 0.8 * float(np.median(luminance))

    def strip(direction: np.ndarray) -> np.ndarray:
        """Pixels of the ground 90-140 m from the spire's foot in ``direction``, 6 m wide."""
        side = np.array([-direction[1], direction[0]])
        corners = [foot + np.append(direction * d + side * w, 0.0)
                   for d in (90.0, 140.0) for w in (-3.0, 3.0)]
        pixels, _ = camera.project(np.array(corners), *size)
        quad = shapely.Polygon(pixels[[0, 1, 3, 2]])
        rows, cols = np.mgrid[0:size[1], 0:size[0]]
        return shapely.contains_xy(quad, cols + 0.5, rows + 0.5)

    for time, other in zip(times, reversed(times), strict=True):
        sun = sun_at(scene, parse_time(f"2026-06-21T{time}+02:00"))
        away = -sun.direction[:2] / np.linalg.norm(sun.direction[:2])  # where shadows point
        assert 140.0 < height / math.tan(math.radians(sun.elevation)) < 180.0
        assert (away[0] < 0) == (time == "09:00")  # west in the morning, east later
        # Pixels dark now but not at the other time: the spire's shadow, which lies on the
        # side away from the sun and not towards it (roofs, dark at both times, drop out).
        moved = dark[time] & ~dark[other]
        shaded, lit = strip(away), strip(-away)
        assert shaded.sum() > 20 and lit.sum() > 20
        assert moved[shaded].mean() > 0.6, (time, moved[shaded].mean())
        assert moved[lit].mean() < 0.05, (time, moved[lit].mean())
