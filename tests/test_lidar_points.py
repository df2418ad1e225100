"""LiDAR → point-cloud 3D Tiles: placement, LOD tree, content, errors, CLI, render."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import laspy
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.spatial import cKDTree

import twin.pipeline.lidar as lidar_pipeline
from tools.cli import cli
from twin.crs import ecef_transformer, parse_crs_option
from twin.errors import InputError
from twin.pipeline.lidar import LidarOptions, build_lidar, parse_memory
from twin.readers.gltf import read_glb
from twin.readers.las import read_header
from twin.tiling.points import srgb16_to_linear8
from twin.validate import validate_tileset

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "lidar" / "laspy"
GEN_LAZ = ROOT.parent / "shared" / "tools" / "gen-laz"
MV_CRS = "EPSG:25833+7837"


@pytest.fixture(scope="session")
def mv_laz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200,000 synthetic M-V points (LAS 1.4 format 7, RGB, classes, EPSG:25833+DHHN2016)."""
    path = tmp_path_factory.mktemp("lidar") / "mv.laz"
    subprocess.run(
        [sys.executable, str(GEN_LAZ), "--points", "200000", "--seed", "3", "--out", str(path)],
        check=True,
    )
    return path


@pytest.fixture(scope="session")
def mv_points(mv_laz: Path) -> laspy.LasData:
    return laspy.read(mv_laz)


@pytest.fixture(scope="session")
def mv_tileset(mv_laz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("built") / "mv"
    build_lidar([mv_laz], out, LidarOptions(workers=1, max_points_per_tile=20_000))
    return out


def decoded_tiles(out: Path) -> list[tuple[dict, object]]:
    """(tile JSON, decoded primitive) of every tile with content, world frame = ECEF."""
    document = json.loads((out / "tileset.json").read_text())
    root = document["root"]
    transform = np.asarray(root["transform"]).reshape(4, 4).T
    found = []
    stack = [root]
    while stack:
        tile = stack.pop()
        stack.extend(tile.get("children", []))
        if "content" in tile:
            glb = read_glb((out / tile["content"]["uri"]).read_bytes())
            primitive = glb.primitives[0]
            ecef = primitive.positions @ transform[:3, :3].T + transform[:3, 3]
            found.append((tile, primitive, ecef, glb))
    return found


def test_points_are_placed_exactly_once_with_their_attributes(mv_tileset, mv_points):
    tiles = decoded_tiles(mv_tileset)
    ecef = np.vstack([t[2] for t in tiles])
    classes = np.concatenate([t[1].attributes["_CLASSIFICATION"].ravel() for t in tiles])
    intensity = np.concatenate([t[1].attributes["_INTENSITY"].ravel() for t in tiles])
    assert len(ecef) == len(mv_points) == 200_000  # ADD: every point once, none repeated
    source = np.column_stack([mv_points.x, mv_points.y, mv_points.z])
    expected = ecef_transformer(parse_crs_option(MV_CRS)).to_ecef(source)
    distance, index = cKDTree(expected).query(ecef)
    # 1 cm LAS scale: tiles are quantized to at most half of it; placement to 0.2 mm.
    assert distance.max() < 0.006
    # The generator repeats a few positions (several returns); those match any twin.
    raw = np.column_stack([mv_points.X, mv_points.Y, mv_points.Z])
    _, first, counts = np.unique(raw, axis=0, return_index=True, return_counts=True)
    assert np.unique(index).size == len(first)
    single = np.isin(index, first[counts == 1])
    assert single.mean() > 0.99
    index, picked = index[single], np.flatnonzero(single)
    np.testing.assert_array_equal(classes[picked], np.asarray(mv_points.classification)[index])
    np.testing.assert_array_equal(intensity[picked], np.asarray(mv_points.intensity)[index])
    colors = np.vstack([t[1].colors for t in tiles])[picked]
    rgb = np.column_stack([mv_points.red, mv_points.green, mv_points.blue])[index]
    linear = srgb16_to_linear8(16)[rgb] / 255.0  # glTF COLOR_0 is linear, not sRGB
    np.testing.assert_allclose(colors[:, :3], linear, atol=1e-6)
    assert np.abs(colors[:, :3] - rgb / 65535.0).max() > 0.1  # ... which differs from sRGB


def test_tree_is_bounded_refines_by_add_and_errors_shrink(mv_tileset):
    document = json.loads((mv_tileset / "tileset.json").read_text())
    root = document["root"]
    assert root["refine"] == "ADD" and document["asset"]["version"] == "1.1"
    meta = document["metadata"]["properties"]
    assert "DHHN2016" in meta["vertical_model"] and meta["vertical_error_m"] == 1.0
    assert document["schema"]["classes"]["point"]["properties"]["classification"]
    depth = 0

    def walk(tile, level):
        nonlocal depth
        depth = max(depth, level)
        children = tile.get("children", [])
        if not children:
            assert tile["geometricError"] == 0
        for child in children:
            assert child["geometricError"] < tile["geometricError"]
            walk(child, level + 1)

    walk(root, 0)
    assert depth >= 2
    for tile, primitive, _, glb in decoded_tiles(mv_tileset):
        assert len(primitive.positions) <= 20_000
        assert primitive.mode == 0  # POINTS
        if tile.get("children"):
            # A parent's error is at least the spacing its sample leaves (one voxel of 128).
            box = tile["boundingVolume"]["box"]
            assert tile["geometricError"] > 2 * max(box[3], box[7]) / 128 / 2
        extensions = glb.json["extensionsUsed"]
        assert "EXT_structural_metadata" in extensions
        attribute = glb.json["extensions"]["EXT_structural_metadata"]["propertyAttributes"][0]
        assert attribute["properties"]["intensity"] == {"attribute": "_INTENSITY"}
    # Leaves are small: positions are uint16 (KHR_mesh_quantization), 20 bytes per point.
    leaves = [t for t in decoded_tiles(mv_tileset) if not t[0].get("children")]
    assert all("KHR_mesh_quantization" in t[3].json["extensionsRequired"] for t in leaves)
    report = json.loads((mv_tileset / "build-report.json").read_text())
    assert report["tile_bytes"] / report["points_in_tiles"] < 21.5


def test_output_validates(mv_tileset):
    report = validate_tileset(mv_tileset)
    assert report.ok, report.errors[:5]
    assert report.glbs >= 10


def test_parents_are_well_spread_subsets(mv_tileset):
    document = json.loads((mv_tileset / "tileset.json").read_text())
    root_glb = read_glb((mv_tileset / document["root"]["content"]["uri"]).read_bytes())
    positions = root_glb.primitives[0].positions
    # One point per voxel: no two root points closer than a voxel's worth in every axis
    # would be in the same voxel; the nearest-neighbour spacing is near the voxel size.
    box = document["root"]["boundingVolume"]["box"]
    voxel = 2 ** np.ceil(np.log2(2 * max(box[3], box[7]) / 1e-4)) * 1e-4 / 128
    spacing, _ = cKDTree(positions).query(positions, k=2)
    assert np.median(spacing[:, 1]) > 0.3 * voxel


def test_deterministic_whatever_the_workers(mv_laz, tmp_path, monkeypatch):
    monkeypatch.setattr(lidar_pipeline, "INLINE_POINTS", 0)
    monkeypatch.setattr(lidar_pipeline, "POINTS_PER_INGEST_TASK", 70_000)
    one, two = tmp_path / "one", tmp_path / "two"
    options = {"max_points_per_tile": 20_000}
    build_lidar([mv_laz], one, LidarOptions(workers=1, **options))
    report = build_lidar([mv_laz], two, LidarOptions(workers=2, **options))
    assert report.workers == 2
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.suffix in (".glb", ".json")
                   and p.name != "build-report.json")
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.suffix in
                           (".glb", ".json") and p.name != "build-report.json")
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_small_cells_give_the_same_points(mv_laz, tmp_path, monkeypatch):
    # Force many cells (and nodes merged above them) with a tiny memory plan.
    monkeypatch.setattr(lidar_pipeline, "_cell_level", lambda *args: 3)
    out = tmp_path / "cells"
    report = build_lidar([mv_laz], out, LidarOptions(workers=1, max_points_per_tile=20_000))
    assert report.points_in_tiles == 200_000
    assert validate_tileset(out, containment=True).ok


def test_dense_cells_are_split_to_fit_memory(mv_laz, tmp_path, monkeypatch):
    # One cell for everything, but room for only 30,000 points per worker: the cell is split
    # (more than once where needed) and the tree above the pieces is merged.
    monkeypatch.setattr(lidar_pipeline, "_cell_level", lambda *args: 0)
    monkeypatch.setattr(lidar_pipeline, "_plan", lambda options, points: (1, 30_000))
    out = tmp_path / "split"
    report = build_lidar([mv_laz], out, LidarOptions(workers=1, max_points_per_tile=20_000))
    assert report.points_in_tiles == 200_000
    assert validate_tileset(out).ok
    reference = json.loads((out / "build-report.json").read_text())
    assert reference["tiles"] == report.tiles >= 10


def test_classes_filter_and_merge_of_two_files(mv_points, tmp_path):
    west = mv_points[mv_points.x < np.median(mv_points.x)]
    east = mv_points[mv_points.x >= np.median(mv_points.x)]
    paths = []
    for name, part in (("west.las", west), ("east.laz", east)):
        part.header.mins = [part.x.min(), part.y.min(), part.z.min()]
        part.header.maxs = [part.x.max(), part.y.max(), part.z.max()]
        part.write(tmp_path / name)
        paths.append(tmp_path / name)
    out = tmp_path / "merged"
    report = build_lidar(paths, out, LidarOptions(workers=1, classes=(2, 9)))
    wanted = np.isin(np.asarray(mv_points.classification), [2, 9])
    assert report.points_read == 200_000 and report.points_kept == int(wanted.sum())
    tiles = decoded_tiles(out)
    classes = np.concatenate([t[1].attributes["_CLASSIFICATION"].ravel() for t in tiles])
    assert set(np.unique(classes)) == {2, 9} and len(classes) == wanted.sum()


def test_every_sample_converts_or_fails_clearly(tmp_path):
    converted = []
    for path in sorted(SAMPLES.glob("*.la[sz]")):
        out = tmp_path / path.stem
        result = CliRunner().invoke(cli, ["-q", "build", "lidar", str(path), "--out", str(out),
                                          "--workers", "1"])
        if result.exit_code == 0:
            converted.append(path.name)
            assert validate_tileset(out).ok
        else:
            assert result.exit_code == 1, result.output
            message = result.output.strip().splitlines()[-1]
            assert message.startswith(f"twin: error: {path}")
            assert "--crs" in message or "--geoid" in message
            assert not out.exists()
    assert {"fullwave.laz", "test1_4.las", "1_4_w_evlr.laz", "autzen_trim.laz",
            "file_with_both_wkt_and_geotiff_vlrs.las"} <= set(converted)


def test_nad83_sample_lands_in_oregon(tmp_path):
    """NAD83(HARN) has registered transformations only to WGS 84: Autzen Stadium, Eugene."""
    out = tmp_path / "autzen"
    build_lidar([SAMPLES / "autzen_trim.laz"], out, LidarOptions(workers=1))
    lon, lat, _ = json.loads((out / "build-report.json").read_text())["origin_lon_lat_h"]
    assert -123.10 < lon < -123.05 and 44.04 < lat < 44.07


def test_crs_override_and_feet(tmp_path):
    # simple.las declares no CRS; --crs places it (its numbers are Oregon feet, so as UTM 33
    # metres they land 850 km north of the equator, at 15.3° E: the override is obeyed).
    placed = tmp_path / "placed"
    result = CliRunner().invoke(cli, ["build", "lidar", str(SAMPLES / "simple.las"), "--out",
                                      str(placed), "--crs", "EPSG:25833", "--workers", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((placed / "build-report.json").read_text())
    lon, lat, _ = report["origin_lon_lat_h"]
    assert 15.0 < lon < 16.5 and 7.5 < lat < 8.0
    assert report["points_in_tiles"] == 1065
    out = tmp_path / "feet"
    report = build_lidar([SAMPLES / "test1_4.las"], out, LidarOptions(workers=1))
    assert any("US survey foot" in w or "0.3048" in w for w in report.warnings)
    tiles = decoded_tiles(out)
    heights = tiles[0][1].positions[:, 2]
    # 5592.75..5599.07 US survey feet of terrain: 1.926 m of relief, not 6.3 m (within the
    # 1 cm placement lattice).
    header = read_header(SAMPLES / "test1_4.las")
    relief_m = (header.maxs[2] - header.mins[2]) * 1200 / 3937
    assert np.ptp(heights) == pytest.approx(relief_m, abs=0.01)


# --- bad input: one test each, exit 1, nothing at --out ---------------------------------------


def run_bad(tmp_path: Path, path: Path, *extra: str) -> str:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["build", "lidar", str(path), "--out", str(out), "--workers", "1", *extra]
    )
    assert result.exit_code == 1, result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".twin-tmp-*"))
    return result.output


def test_bad_truncated_las(tmp_path, mv_points):
    path = tmp_path / "cut.las"
    mv_points.write(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in run_bad(tmp_path, path)


def test_bad_truncated_laz(tmp_path, mv_laz):
    path = tmp_path / "cut.laz"
    data = mv_laz.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "chunk table" in run_bad(tmp_path, path)


def test_bad_header_claims_more_points(tmp_path):
    data = bytearray((SAMPLES / "autzen_trim.laz").read_bytes())
    struct.pack_into("<I", data, 107, 200_000)
    path = tmp_path / "more.laz"
    path.write_bytes(bytes(data))
    output = run_bad(tmp_path, path, "--crs", "EPSG:25833")
    assert "more.laz: cannot decode points from index" in output


def test_bad_zero_points(tmp_path):
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.add_crs(parse_crs_option(MV_CRS).horizontal)
    laspy.LasData(header).write(tmp_path / "empty.las")
    assert "no points" in run_bad(tmp_path, tmp_path / "empty.las")


def test_bad_all_points_identical(tmp_path):
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = [0.01, 0.01, 0.01]
    header.offsets = [312000, 5998000, 0]
    las = laspy.LasData(header)
    las.x = np.full(5000, 312100.0)
    las.y = np.full(5000, 5998100.0)
    las.z = np.full(5000, 12.0)
    las.write(tmp_path / "same.las")
    assert "one position" in run_bad(tmp_path, tmp_path / "same.las", "--crs", MV_CRS)


def test_bad_nan_offset(tmp_path):
    data = bytearray((SAMPLES / "test1_4.las").read_bytes())
    struct.pack_into("<d", data, 163, float("nan"))  # y offset
    path = tmp_path / "nan.las"
    path.write_bytes(bytes(data))
    assert "y offset is nan" in run_bad(tmp_path, path)


def test_bad_absurd_coordinates(tmp_path):
    # simple1_4.las: "WGS 84" degrees with longitudes to 226 and latitudes to 100.
    output = run_bad(tmp_path, SAMPLES / "simple1_4.las")
    assert "simple1_4.las" in output and "absurd coordinates" in output


def test_bad_points_outside_the_header_bounds(tmp_path, mv_points):
    path = tmp_path / "liar.las"
    mv_points.write(path)
    data = bytearray(path.read_bytes())
    x_max_offset = 179  # LAS 1.4 header: max X
    struct.pack_into("<d", data, x_max_offset, float(np.asarray(mv_points.x).max()) - 100)
    path.write_bytes(bytes(data))
    assert "outside the bounding box its header declares" in run_bad(tmp_path, path)


def test_terrain_and_points_together(mv_laz, tmp_path):
    out = tmp_path / "both"
    report = build_lidar([mv_laz], out, LidarOptions(workers=1, mode="both", cell=2.0))
    assert report.terrain_tiles >= 1 and report.tiles >= 1 and report.terrain_cells > 1000
    document = json.loads((out / "tileset.json").read_text())
    points, terrain = document["root"]["children"]
    assert points["refine"] == "ADD" and terrain["refine"] == "REPLACE"
    assert points["content"]["uri"].startswith("tiles/")
    uris = []
    stack = [terrain]
    while stack:
        tile = stack.pop()
        stack.extend(tile.get("children", []))
        uris += [tile["content"]["uri"]] if "content" in tile else []
    assert uris and all(u.startswith("terrain/") for u in uris)
    assert validate_tileset(out).ok


def test_placement_lattice_matches_the_exact_transform():
    from twin.pipeline.common import LocalFrame
    from twin.tiling.points import fit_grid_transform

    transformer = ecef_transformer(parse_crs_option(MV_CRS))
    exact = LocalFrame().to_local(transformer)
    exact(np.array([[313000.0, 5999000.0, 0.0]]))
    mins, maxs = (311000.0, 5997000.0, -5.0), (315000.0, 6001000.0, 120.0)
    lattice = fit_grid_transform(exact, mins, maxs)
    rng = np.random.default_rng(7)
    points = rng.uniform(mins, maxs, size=(20_000, 3))
    got = np.column_stack(lattice.apply(points[:, 0].copy(), points[:, 1].copy(), points[:, 2]))
    assert np.abs(got - exact(points)).max() < 2e-4  # 0.2 mm over 4 km x 4 km x 125 m
    assert lattice.nx * lattice.ny <= 64 * 64  # and a small table (24 x 4096 doubles)


def test_memory_budget():
    assert parse_memory("2GB") == 2 << 30 and parse_memory("800 MiB") == 800 << 20
    with pytest.raises(InputError, match="not a size"):
        parse_memory("lots")
    with pytest.raises(InputError, match="too small"):
        lidar_pipeline._plan(LidarOptions(memory_budget=100 << 20), 10**7)
    workers, cell = lidar_pipeline._plan(LidarOptions(workers=8, memory_budget=1 << 30), 10**8)
    assert workers < 8 and cell >= 50_000


@pytest.mark.browser
def test_points_render_in_cesium(mv_tileset, render_tileset):
    # From afar only the root's sample is drawn (one pixel per point, sparse); close up with
    # a fine screen-space error the tiles below are added.
    far = render_tileset(mv_tileset, pitch=-50)
    assert far.ok, far.summary()
    assert far.stats["numberOfPointsLoaded"] > 1000
    result = render_tileset(mv_tileset, pitch=-50, range=90, maximum_screen_space_error=2)
    assert result.ok, result.summary()
    assert result.external_requests == []
    mask = result.content_mask()
    assert mask.mean() > 2 * far.content_mask().mean(), result.summary()
    assert mask.mean() > 0.08, result.summary()  # coloured points fill the view
    glbs = [u for u in result.requests if u.endswith(".glb")]
    assert len(glbs) >= 4  # refined below the root
    assert result.stats["numberOfPointsLoaded"] > 3 * far.stats["numberOfPointsLoaded"]
    pixels = result.image[mask].astype(int)
    # Rolling terrain, trees and roofs in the generator's colours: not one flat colour.
    assert pixels.std(axis=0).max() > 10


@pytest.mark.browser
def test_lidar_terrain_renders_in_cesium(mv_laz, tmp_path, render_tileset):
    """A DTM built from the generated M-V-style LAZ covers the view from above."""
    out = tmp_path / "terrain"
    report = build_lidar([mv_laz], out, LidarOptions(workers=1, mode="terrain", cell=2.0))
    assert report.terrain_tiles >= 1
    result = render_tileset(out, pitch=-89)
    assert result.ok, result.summary()
    assert result.external_requests == []
    h, w, _ = result.image.shape
    centre = result.content_mask()[h // 3: 2 * h // 3, w // 3: 2 * w // 3]
    assert centre.mean() > 0.95, result.summary()  # ground everywhere under the camera
    pixels = result.image[h // 3: 2 * h // 3, w // 3: 2 * w // 3].reshape(-1, 3).astype(int)
    # Shaded terrain colour (green over red and blue on average), not one flat fill.
    assert pixels[:, 1].mean() > pixels[:, 2].mean() and pixels.std(axis=0).max() > 2


def test_dsm_stands_above_dtm(mv_laz, tmp_path):
    """--dsm keeps roofs and trees: its surface is above the DTM where buildings stand."""
    heights = {}
    for name, dsm in (("dtm", False), ("dsm", True)):
        out = tmp_path / name
        report = build_lidar([mv_laz], out, LidarOptions(workers=1, mode="terrain", cell=2.0,
                                                         dsm=dsm))
        assert report.terrain_surface.startswith(name)
        leaves = [t for t in decoded_tiles(out) if "children" not in t[0]]
        heights[name] = np.concatenate([t[1].positions[:, 2] for t in leaves])  # local up
        assert validate_tileset(out).ok
    assert heights["dsm"].max() > heights["dtm"].max() + 3.0  # roofs of 4-20 m buildings
