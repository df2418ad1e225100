"""`twin build scene`: the published scene folder, incremental builds, atomic publishing,
bad scene files, and the scenes in CesiumJS."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.scene_fixtures import ROOT, SCENES, PublishedScenes, twin
from twin.readers.citygml import CityGMLReader
from twin.readers.heights import read_heights
from twin.validate import validate_tileset

pytestmark = pytest.mark.xdist_group("scenes")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the published folder ------------------------------------------------------------------


@pytest.mark.parametrize("scene", SCENES)
def test_manifest_lists_every_file_with_its_hash(published_scenes: PublishedScenes,
                                                 scene: str) -> None:
    folder = published_scenes.current(scene)
    manifest = published_scenes.manifest(scene)
    assert manifest["format"] == "rostock-virtuell-scene/1"
    assert manifest["id"] == scene
    assert folder.name == manifest["version"]
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json"} == set(manifest["files"])
    for path, digest in manifest["files"].items():
        assert _sha256(folder / path) == digest, path
    version = hashlib.sha256(
        json.dumps(manifest["files"], sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:16]
    assert manifest["version"] == version
    # Placement facts a client relies on: Rostock, heights through the geoid (EGM96 here).
    west, south, east, north, low, high = manifest["region"]
    assert 12.08 < west < east < 12.20 and 54.07 < south < north < 54.12
    assert 20.0 < low < high < 200.0  # ellipsoidal: ~38 m above DHHN2016 at Rostock
    assert "EGM96" in manifest["vertical_model"]["name"]
    assert manifest["vertical_model"]["expected_error_m"] == 1.0
    kinds = {layer["kind"] for layer in manifest["layers"]}
    assert {"terrain", "citygml", "points"} <= kinds
    assert [e["id"] for e in manifest["epochs"]] == ["heute", "geplant"]


@pytest.mark.parametrize("scene", SCENES)
def test_every_tileset_validates(published_scenes: PublishedScenes, scene: str) -> None:
    folder = published_scenes.current(scene)
    manifest = published_scenes.manifest(scene)
    tilesets = [e["tileset"] for e in manifest["epochs"]]
    tilesets += [layer["tileset"] for layer in manifest["layers"] if not layer["visible"]]
    for tileset in tilesets:
        result = validate_tileset(folder / tileset)
        assert result.ok, f"{tileset}: {result.summary()}"


def test_planned_layers_only_in_geplant(published_scenes: PublishedScenes) -> None:
    manifest = published_scenes.manifest("warnowbruecke")
    planned = [layer for layer in manifest["layers"] if layer["epochs"] == ["geplant"]]
    assert planned, "the Warnowbrücke scene has a planned layer"
    epochs = {e["id"]: e for e in manifest["epochs"]}
    folder = published_scenes.current("warnowbruecke")
    for layer in planned:
        assert layer["id"] not in epochs["heute"]["layers"]
        assert layer["id"] in epochs["geplant"]["layers"]
        heute = (folder / epochs["heute"]["tileset"]).read_text()
        geplant = (folder / epochs["geplant"]["tileset"]).read_text()
        assert f"layers/{layer['id']}/" not in heute
        assert f"layers/{layer['id']}/" in geplant


@pytest.mark.parametrize("scene", SCENES)
def test_buildings_stand_on_the_lidar_terrain(published_scenes: PublishedScenes,
                                              scene: str) -> None:
    """Every building's ground surface lies within 0.5 m of the terrain grid made from the
    LiDAR ground points (both DHHN2016, same geoid): the two pipelines agree."""
    grid = read_heights(published_scenes.current(scene) / "layers" / "terrain" / "heights.npz")
    xmin, ymin, xmax, ymax = grid.bounds
    checked = 0
    worst = 0.0
    for path in sorted(published_scenes.data.glob("LoD2_33_*_2_MV.gml")):
        for obj in CityGMLReader(path):
            grounds = [s.exterior for s in obj.surfaces if s.kind == "ground"]
            if not grounds:
                continue
            ring = np.vstack(grounds)
            centre = (ring[:, :2].min(axis=0) + ring[:, :2].max(axis=0)) / 2
            if not (xmin + 5 < centre[0] < xmax - 5 and ymin + 5 < centre[1] < ymax - 5):
                continue
            terrain = grid.sample(ring[:, 0], ring[:, 1])
            worst = max(worst, float(np.max(np.abs(ring[:, 2] - terrain))))
            checked += 1
    assert checked > 100
    assert worst <= 0.5, f"a building's ground is {worst:.2f} m off the terrain"


# --- incremental and atomic ------------------------------------------------------------------


def _copy_data(published: PublishedScenes, target: Path) -> Path:
    """A private copy of the sample data (hard links; files to be changed are replaced)."""
    shutil.copytree(published.data, target, copy_function=os.link)
    return target


def _replace_text(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    data = text.replace(old, new, 1)
    path.unlink()  # break the hard link before writing
    path.write_text(data, encoding="utf-8")


def _build(data: Path, out: Path, scene: str = "warnowbruecke") -> dict:
    result = twin("build", "scene", scene, "--data", str(data), "--out", str(out), "--json",
                  check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def _glb_inodes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_ino for p in folder.rglob("*.glb")}


def test_incremental_rebuilds(published_scenes: PublishedScenes, tmp_path: Path) -> None:
    data = _copy_data(published_scenes, tmp_path / "data")
    out = tmp_path / "scenes"
    full = _build(data, out)
    assert full["published"] and all(not p["cached"] for p in full["parts"])
    first = (out / "warnowbruecke" / "current").resolve()
    before = _glb_inodes(first)

    started = time.perf_counter()
    noop = _build(data, out)
    noop_seconds = time.perf_counter() - started
    assert not noop["published"] and noop["version"] == full["version"]
    # The command's own time (its report) and the whole process, against the full build.
    assert noop["seconds"] < 0.05 * full["seconds"], (noop["seconds"], full["seconds"])
    print(f"full build {full['seconds']:.2f} s, no-op {noop['seconds']:.3f} s "
          f"({noop_seconds:.2f} s with start-up)")

    # Change one building in one LoD2 tile: only that tile's part is rebuilt.
    tiles = sorted(p.name for p in data.glob("LoD2_33_*_2_MV.gml"))
    manifest = json.loads((first / "manifest.json").read_text())
    buildings = next(layer for layer in manifest["layers"] if layer["id"] == "buildings")
    used = sorted({Path(f).parts[2] for f in manifest["files"]
                   if f.startswith(f"layers/{buildings['id']}/") and f.endswith(".glb")})
    assert used, "the buildings layer has per-file parts"
    changed = f"{used[0]}.gml"
    assert changed in tiles
    # Every building of that tile a metre taller (in its attributes): its tiles change.
    path = data / changed
    text, count = re.subn(
        r'(<bldg:measuredHeight uom="[^"]*">)([0-9.]+)<',
        lambda m: f"{m.group(1)}{float(m.group(2)) + 1:.3f}<", path.read_text(encoding="utf-8"))
    assert count > 10
    path.unlink()  # break the hard link before writing
    path.write_text(text, encoding="utf-8")
    one = _build(data, out)
    rebuilt = [p for p in one["parts"] if not p["cached"]]
    assert [Path(p["sources"][0]).name for p in rebuilt] == [changed]
    second = (out / "warnowbruecke" / "current").resolve()
    after = _glb_inodes(second)
    new = sorted(p for p, inode in after.items() if before.get(p) != inode)
    assert new and all(p.startswith(f"layers/buildings/{used[0]}/") for p in new), new
    assert len(new) == sum(1 for p in after if p.startswith(f"layers/buildings/{used[0]}/"))
    assert one["files_written"] < one["files"] / 2
    # Two versions are kept (the previous one for requests in flight), no more.
    assert sorted(p.name for p in (out / "warnowbruecke" / "versions").iterdir()) == sorted(
        {first.name, second.name})


def test_kill_9_leaves_the_published_scene_intact(published_scenes: PublishedScenes,
                                                  tmp_path: Path) -> None:
    data = _copy_data(published_scenes, tmp_path / "data")
    out = tmp_path / "scenes"
    _build(data, out)
    scene_dir = out / "warnowbruecke"
    old = (scene_dir / "current").resolve()
    old_manifest = json.loads((old / "manifest.json").read_text())
    # Change the planned bridge: one part to rebuild, then a new version to publish.
    _replace_text(data / "geplant" / "Warnowbruecke_LoD2.gml", "<gen:value>62850000<",
                  "<gen:value>70000000<")
    for delay in (0.3, 1.0, 2.5):
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "build", "scene", "warnowbruecke", "--data",
             str(data), "--out", str(out)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        current = (scene_dir / "current").resolve()
        manifest = json.loads((current / "manifest.json").read_text())
        for path, digest in manifest["files"].items():
            assert _sha256(current / path) == digest
        if current == old:
            assert manifest == old_manifest
    done = _build(data, out)
    assert done["published"] or done["version"] != old_manifest["version"]
    current = (scene_dir / "current").resolve()
    assert current.name == done["version"] != old.name
    leftovers = [p.name for p in scene_dir.rglob(".twin-tmp-*")]
    assert leftovers == []


# --- bad scene files ---------------------------------------------------------------------------


@pytest.fixture
def scene_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "scenes"
    shutil.copytree(ROOT / "scenes", folder, ignore=shutil.ignore_patterns("data"))
    return folder


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.replace('kind = "terrain"', 'kind = "terain"', 1),
         ["warnowbruecke.toml", "layers.terrain.kind"]),
        (lambda s: s.replace("[[tour.stops]]\n", "[[tour.stops]]\n", 1).replace(
            "look_at = [", "look_at = [9", 1), ["warnowbruecke.toml", "tour.stops[0]"]),
        (lambda s: s.replace('sources = ["LoD2_33_*_2_MV.gml"]',
                             'sources = ["LoD2_33_999_*_2_MV.gml"]', 1),
         ["warnowbruecke.toml", "layers.buildings.sources", "LoD2_33_999_*_2_MV.gml"]),
    ],
    ids=["unknown-layer-kind", "stop-outside-area", "missing-sources"],
)
def test_bad_scene_file_publishes_nothing(published_scenes: PublishedScenes, scene_copy: Path,
                                          tmp_path: Path, edit, expected: list[str]) -> None:
    path = scene_copy / "warnowbruecke.toml"
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    out = tmp_path / "out"
    result = twin("build", "scene", "warnowbruecke", "--scenes", str(scene_copy), "--data",
                  str(published_scenes.data), "--out", str(out), check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("twin: error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert not (out / "warnowbruecke" / "current").exists()


def test_broken_overlay_file_publishes_nothing(published_scenes: PublishedScenes,
                                               scene_copy: Path, tmp_path: Path) -> None:
    overlay = next((scene_copy / "overlays").glob("*.geojson"))
    text = overlay.read_text(encoding="utf-8")
    overlay.write_text(text[: len(text) // 2], encoding="utf-8")
    result = twin("build", "scene", "warnowbruecke", "--scenes", str(scene_copy), "--data",
                  str(published_scenes.data), "--out", str(tmp_path / "out"), check=False)
    assert result.returncode == 1
    assert overlay.name in result.stderr and "line" in result.stderr, result.stderr
    assert not (tmp_path / "out" / "warnowbruecke" / "current").exists()


# --- in CesiumJS ---------------------------------------------------------------------------


def _view(stop: dict) -> tuple[float, ...]:
    camera = stop["camera"]
    return (camera["longitude"], camera["latitude"], camera["height"], camera["heading"],
            camera["pitch"], camera["fov"])


def _classes(image: np.ndarray) -> dict[str, float]:
    """Share of pixels that read as water (blue), terrain (green-olive) and buildings
    (roof red or wall white), for a sky/globe-free view."""
    rgb = image[..., :3].astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    water = (b > r + 15) & (b > g) & (b > 60)
    terrain = (g > r + 5) & (g > b + 10)
    roof = (r > g + 30) & (r > b + 30)
    wall = (r > 170) & (g > 165) & (b > 150)
    total = r.size
    return {"water": water.sum() / total, "terrain": terrain.sum() / total,
            "buildings": (roof | wall).sum() / total}


@pytest.mark.browser
@pytest.mark.parametrize("scene", SCENES)
def test_scene_renders_from_its_first_stop(published_scenes: PublishedScenes, render_tileset,
                                           scene: str) -> None:
    folder = published_scenes.current(scene)
    manifest = published_scenes.manifest(scene)
    stop = published_scenes.tour(scene)["stops"][0]
    epoch = stop.get("epoch") or manifest["default_epoch"]
    tileset = next(e["tileset"] for e in manifest["epochs"] if e["id"] == epoch)
    result = render_tileset(folder, tileset, view=_view(stop), timeout=120)
    assert result.ok, result.summary()
    assert result.external_requests == []
    shares = _classes(result.image)
    assert shares["water"] > 0.01, shares
    assert shares["terrain"] > 0.02, shares
    assert shares["buildings"] > 0.005, shares


@pytest.mark.browser
def test_bridge_drawn_only_in_geplant(published_scenes: PublishedScenes, render_tileset) -> None:
    folder = published_scenes.current("warnowbruecke")
    manifest = published_scenes.manifest("warnowbruecke")
    tour = published_scenes.tour("warnowbruecke")
    stop = next(s for s in tour["stops"] if s.get("epoch") == "geplant")
    view = _view(stop)
    tilesets = {e["id"]: e["tileset"] for e in manifest["epochs"]}
    bridge = next(layer for layer in manifest["layers"] if layer["epochs"] == ["geplant"]
                  and "bruecke" in layer["id"])
    alone = render_tileset(folder, bridge["tileset"], view=view, timeout=120)
    heute = render_tileset(folder, tilesets["heute"], view=view, timeout=120)
    geplant = render_tileset(folder, tilesets["geplant"], view=view, timeout=120)
    for result in (alone, heute, geplant):
        assert result.ok, result.summary()
    region = alone.content_mask()
    assert region.mean() > 0.002, "the bridge is in view"
    changed = np.abs(geplant.image[..., :3].astype(int) - heute.image[..., :3].astype(int))
    changed_px = changed.max(axis=-1) > 24
    assert changed_px[region].mean() > 0.5, "geplant draws the bridge where it stands"
