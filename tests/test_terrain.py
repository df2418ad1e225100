"""Terrain from LiDAR points: gridding (DTM/DSM, ground filter), gap filling, and the tiled
terrain mesh (accuracy, measured geometric errors, crack-free edges, validation, rendering).

The synthetic surface z = 5 + 3 sin(x/50) cos(y/70) (x, y relative to a corner near the
Kröpeliner Tor, EPSG:25833 + DHHN2016 heights) is sampled by random points with noise; three
flat-roofed "buildings" stand on it (class 6, no ground points below, as in real ALS), a round
"lake" has no points at all, and a few low-noise points (class 7) lie far below.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.constants import TERRAIN
from twin.crs import (
    ecef_to_enu_matrix,
    ecef_to_geodetic,
    ecef_transformer,
    enu_to_ecef_matrix,
    geodetic_to_ecef,
    parse_srs_name,
)
from twin.errors import GeometryError, InputError
from twin.ops.terrain import TerrainGrid, TerrainGridBuilder, fill_gaps
from twin.readers.gltf import read_glb
from twin.tiling.terrain import (
    TerrainMesh,
    surface_error,
    terrain_levels,
    terrain_tile_meshes,
    write_terrain_tiles,
)
from twin.tiling.tileset import column_major
from twin.validate import validate_tileset

X0, Y0 = 312000.0, 5997000.0
WIDTH, HEIGHT = 320.0, 256.0
DENSITY = 3.0  # points per m²
NOISE = 0.03  # m, vertical sensor noise
LEAF = 64  # cells per leaf side: 5 x 4 leaves, three levels above them
BUILDINGS = [  # (xmin, ymin, xmax, ymax) relative to the corner; 10 m above the ground
    (40.0, 40.0, 60.0, 52.0),
    (200.0, 150.0, 230.0, 168.0),
    (250.0, 40.0, 262.0, 52.0),
]
ROOF = 10.0
LAKE = (120.0, 170.0, 30.0)  # centre x, y and radius relative to the corner


def truth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The known terrain height at source coordinates."""
    return 5.0 + 3.0 * np.sin((x - X0) / 50.0) * np.cos((y - Y0) / 70.0)


def in_buildings(x: np.ndarray, y: np.ndarray, margin: float = 0.0) -> np.ndarray:
    dx, dy = x - X0, y - Y0
    inside = np.zeros(np.shape(x), dtype=bool)
    for x0, y0, x1, y1 in BUILDINGS:
        inside |= (dx >= x0 - margin) & (dx <= x1 + margin) & (dy >= y0 - margin) & (
            dy <= y1 + margin
        )
    return inside


def in_lake(x: np.ndarray, y: np.ndarray, margin: float = 0.0) -> np.ndarray:
    cx, cy, r = LAKE
    return np.hypot(x - X0 - cx, y - Y0 - cy) <= r + margin


def roof_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Flat roofs: 10 m above the ground at each building's centre."""
    z = np.full(np.shape(x), np.nan)
    dx, dy = x - X0, y - Y0
    for x0, y0, x1, y1 in BUILDINGS:
        inside = (dx >= x0) & (dx <= x1) & (dy >= y0) & (dy <= y1)
        z[inside] = truth(np.array(X0 + (x0 + x1) / 2), np.array(Y0 + (y0 + y1) / 2)) + ROOF
    return z


@dataclass
class Cloud:
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    classification: np.ndarray


def synthetic_cloud(seed: int = 7) -> Cloud:
    """Ground (2), roofs (6), no returns on the lake, a few low-noise points (7)."""
    rng = np.random.default_rng(seed)
    n = int(WIDTH * HEIGHT * DENSITY)
    x = X0 + rng.random(n) * WIDTH
    y = Y0 + rng.random(n) * HEIGHT
    z = truth(x, y) + rng.normal(0.0, NOISE, n)
    classification = np.full(n, 2, dtype=np.uint8)
    roofs = in_buildings(x, y)
    z[roofs] = roof_height(x[roofs], y[roofs]) + rng.normal(0.0, NOISE, int(roofs.sum()))
    classification[roofs] = 6
    keep = ~in_lake(x, y)
    x, y, z, classification = x[keep], y[keep], z[keep], classification[keep]
    noise = rng.choice(len(x), 20, replace=False)
    z[noise] -= 40.0
    classification[noise] = 7
    return Cloud(x, y, z, classification)


def build(cloud: Cloud, *, surface: str = "dtm", classified: bool = True) -> TerrainGrid:
    """Stream the cloud in three chunks, as a LAS reader would."""
    builder = TerrainGridBuilder((X0, Y0, X0 + WIDTH, Y0 + HEIGHT), 1.0, surface=surface)
    for part in np.array_split(np.arange(len(cloud.x)), 3):
        classes = cloud.classification[part] if classified else None
        builder.add(cloud.x[part], cloud.y[part], cloud.z[part], classes)
    return builder.finish()


def cell_centres(grid: TerrainGrid) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = grid.shape
    x, y = grid.cell_centres(np.arange(ny), np.arange(nx))
    return np.meshgrid(x, y)


@pytest.fixture(scope="module")
def cloud() -> Cloud:
    return synthetic_cloud()


@pytest.fixture(scope="module")
def dtm(cloud: Cloud) -> TerrainGrid:
    return build(cloud)


@dataclass
class Frame:
    """The tileset frame: ENU at the area's centre, as the pipelines build it."""

    to_local: Callable[[np.ndarray], np.ndarray]
    to_source: Callable[[np.ndarray], np.ndarray]
    enu_to_ecef: np.ndarray


@pytest.fixture(scope="module")
def frame() -> Frame:
    return make_frame()


def make_frame() -> Frame:
    """ENU at the area's centre on the ellipsoid; UTM 33 + DHHN2016 heights (EGM96 geoid)."""
    transformer = ecef_transformer(parse_srs_name("EPSG:25833+7837"))
    centre = transformer.to_ecef(np.array([[X0 + WIDTH / 2, Y0 + HEIGHT / 2, 0.0]]))
    lon, lat, _ = ecef_to_geodetic(centre)
    origin = np.asarray(geodetic_to_ecef(lon, lat, np.zeros(1))).reshape(3)
    to_enu, from_enu = ecef_to_enu_matrix(origin), enu_to_ecef_matrix(origin)

    def to_local(points: np.ndarray) -> np.ndarray:
        ecef = transformer.to_ecef(points)
        return ecef @ to_enu[:3, :3].T + to_enu[:3, 3]

    def to_source(local: np.ndarray) -> np.ndarray:
        return transformer.from_ecef(local @ from_enu[:3, :3].T + from_enu[:3, 3])

    return Frame(to_local, to_source, from_enu)


@pytest.fixture(scope="module")
def meshes(dtm: TerrainGrid, frame: Frame) -> tuple[list[TerrainMesh], dict]:
    return terrain_tile_meshes(dtm, frame.to_local, leaf_cells=LEAF)


# --- gridding -----------------------------------------------------------------------------


def test_dtm_keeps_ground_ignores_buildings_and_noise(dtm: TerrainGrid, cloud: Cloud):
    assert dtm.surface == "dtm" and dtm.ground_filter == "classes 2"
    assert dtm.shape == (256, 320) and (dtm.x0, dtm.y0, dtm.cell) == (X0, Y0, 1.0)
    assert np.isfinite(dtm.heights).all()
    x, y = cell_centres(dtm)
    error = dtm.heights - truth(x, y)
    observed = ~dtm.filled
    # Mean of ~3 ground points per cell with 3 cm noise.
    rms = float(np.sqrt(np.mean(error[observed] ** 2)))
    assert rms < 0.03, rms
    # Buildings and the lake had no ground points: filled, and close to the ground.
    assert dtm.filled[in_buildings(x, y, margin=-1.0)].all()
    assert dtm.filled[in_lake(x, y, margin=-1.0)].all()
    assert np.abs(error[in_buildings(x, y)]).max() < 0.3
    assert dtm.heights.min() > 1.0  # the -40 m noise points left no pits
    assert dtm.source_points == int((cloud.classification == 2).sum())


def test_lake_is_filled_smoothly_at_shore_height(dtm: TerrainGrid):
    x, y = cell_centres(dtm)
    lake = in_lake(x, y, margin=-1.0)
    shore = in_lake(x, y, margin=2.0) & ~in_lake(x, y, margin=0.5)
    lake_heights = dtm.heights[lake]
    # Laplace interpolation obeys the maximum principle: the filled water surface lies within
    # the shore's heights, and it is smooth (no steps between neighbouring cells).
    assert dtm.heights[shore].min() - 0.01 <= lake_heights.min()
    assert lake_heights.max() <= dtm.heights[shore].max() + 0.01
    assert np.abs(lake_heights - truth(x, y)[lake]).max() < 1.0
    steps = np.abs(np.diff(dtm.heights, axis=1))[lake[:, 1:] & lake[:, :-1]]
    assert steps.max() < 0.1


def test_dsm_includes_buildings(cloud: Cloud):
    dsm = build(cloud, surface="dsm")
    assert dsm.surface == "dsm" and dsm.ground_filter == ""
    x, y = cell_centres(dsm)
    roofs = in_buildings(x, y, margin=-1.0)
    seen = roofs & ~dsm.filled
    assert seen.sum() > 0.9 * roofs.sum()
    assert np.abs(dsm.heights[seen] - roof_height(x, y)[seen]).max() < 0.15
    # A roof cell without a return is interpolated, mostly from the roof around it.
    assert (dsm.heights[roofs] > truth(x, y)[roofs] + 8.0).all()
    ground = ~in_buildings(x, y, margin=1.5) & ~dsm.filled
    # Highest of ~3 points: biased up by about one noise sigma.
    assert np.abs(dsm.heights[ground] - truth(x, y)[ground]).mean() < 0.08
    assert dsm.filled[in_lake(x, y, margin=-1.0)].all()
    assert dsm.heights.min() > 1.0  # noise class 7 is never part of a surface


def test_unclassified_dtm_uses_lowest_point_filter(cloud: Cloud):
    keep = cloud.classification != 7  # no noise class in unclassified data
    unclassified = Cloud(
        cloud.x[keep], cloud.y[keep], cloud.z[keep], np.ones(int(keep.sum()), dtype=np.uint8)
    )
    for classified in (True, False):  # all class 1, and no classification at all
        grid = build(unclassified, classified=classified)
        assert grid.ground_filter == "lowest-point filter (PMF)"
        x, y = cell_centres(grid)
        # Roofs are removed and filled from the ground around them.
        assert grid.filled[in_buildings(x, y, margin=-1.0)].all()
        error = grid.heights - truth(x, y)
        assert np.abs(error[in_buildings(x, y)]).max() < 0.3
        ground = ~grid.filled
        assert float(np.sqrt(np.mean(error[ground] ** 2))) < 0.1
        # Few real ground cells are lost to the filter.
        lost = grid.filled & ~in_buildings(x, y, margin=1.5) & ~in_lake(x, y, margin=1.5)
        assert lost.mean() < 0.15, lost.mean()


def test_builder_rejects_bad_input():
    with pytest.raises(InputError, match="empty"):
        TerrainGridBuilder((1.0, 1.0, 1.0, 2.0))
    with pytest.raises(InputError, match="cell size"):
        TerrainGridBuilder((0.0, 0.0, 10.0, 10.0), 0.0)
    with pytest.raises(InputError, match="surface"):
        TerrainGridBuilder((0.0, 0.0, 10.0, 10.0), surface="dem")
    with pytest.raises(InputError, match="split the area"):
        TerrainGridBuilder((0.0, 0.0, 1e6, 1e6), 0.05)
    builder = TerrainGridBuilder((0.0, 0.0, 10.0, 10.0))
    with pytest.raises(InputError, match="3 x"):
        builder.add(np.zeros(3), np.zeros(2), np.zeros(3), None)
    # Points outside the bounds, non-finite ones and noise are ignored: nothing is left.
    builder.add(
        np.array([20.0, np.nan, 5.0]), np.array([5.0, 5.0, 5.0]), np.array([1.0, 1.0, 1.0]),
        np.array([2, 2, 7]),
    )
    with pytest.raises(GeometryError, match="no ground points"):
        builder.finish()


def test_points_on_the_max_edge_and_grid_alignment():
    builder = TerrainGridBuilder((10.3, 20.7, 14.0, 23.0), 1.0)
    assert (builder.x0, builder.y0, builder.nx, builder.ny) == (10.0, 20.0, 4, 3)
    builder.add(np.array([14.0, 10.3]), np.array([23.0, 20.7]), np.array([2.0, 1.0]), [2, 2])
    grid = builder.finish()
    assert grid.heights[2, 3] == 2.0 and grid.heights[0, 0] == 1.0
    assert grid.filled.sum() == 10


# --- gap filling ------------------------------------------------------------------------------


def test_fill_gaps_reproduces_a_plane():
    yy, xx = np.mgrid[0:120, 0:150].astype(float)
    plane = 3.0 + 0.02 * xx - 0.05 * yy
    known = np.hypot(xx - 70, yy - 60) > 35
    filled = fill_gaps(plane, known)
    assert np.array_equal(filled[known], plane[known])
    # A plane is harmonic: Laplace interpolation inside a hole reproduces it.
    assert np.abs(filled - plane).max() < 0.05


@settings(max_examples=30, deadline=None)
@given(
    st.integers(2, 40), st.integers(2, 40), st.integers(0, 2**32 - 1),
    st.floats(0.05, 0.95),
)
def test_fill_gaps_properties(ny, nx, seed, density):
    rng = np.random.default_rng(seed)
    heights = rng.normal(0.0, 10.0, (ny, nx))
    known = rng.random((ny, nx)) < density
    known.flat[rng.integers(ny * nx)] = True
    filled = fill_gaps(np.where(known, heights, np.nan), known)
    assert np.isfinite(filled).all()
    assert np.array_equal(filled[known], heights[known])
    lo, hi = heights[known].min(), heights[known].max()
    assert (filled >= lo - 1e-9).all() and (filled <= hi + 1e-9).all()
    assert np.array_equal(filled, fill_gaps(np.where(known, heights, 0.0), known))


# --- tiles ------------------------------------------------------------------------------------


def test_quadtree_levels_cover_the_grid():
    levels = terrain_levels((256, 320), LEAF)
    assert [(lv.stride, lv.tiles_x, lv.tiles_y) for lv in levels] == [
        (8, 1, 1), (4, 2, 1), (2, 3, 2), (1, 5, 4)
    ]
    for lv in levels:
        # Every level spans the whole grid and nests in the level below.
        assert lv.columns[0] == 0 and lv.columns[-1] == 319 and lv.rows[-1] == 255
    for upper, lower in zip(levels, levels[1:], strict=False):
        assert set(upper.columns) <= set(lower.columns)
    with pytest.raises(ValueError, match="2 x 2"):
        terrain_levels((1, 10))


@pytest.mark.parametrize(
    ("ny", "nx", "leaf", "tiles"),
    [(2, 2, 64, 1), (3, 5, 2, 1 + 2), (65, 129, 64, 1 + 2), (66, 130, 64, 1 + 2 + 3 * 2)],
)
def test_odd_grids_are_covered_once_by_leaves(ny, nx, leaf, tiles, tmp_path):
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    grid = TerrainGrid(
        x0=1000.0, y0=2000.0, cell=0.5, heights=np.sin(xx / 3.0) + 0.1 * yy,
        filled=np.zeros((ny, nx), dtype=bool), surface="dtm", source_points=ny * nx,
    )

    def shift(points: np.ndarray) -> np.ndarray:
        return points - np.array([1000.0, 2000.0, 0.0])

    meshes, errors = terrain_tile_meshes(grid, shift, leaf_cells=leaf)
    assert len(meshes) == tiles
    deepest = max(m.spec.level for m in meshes)
    covered = np.zeros((ny, nx), dtype=int)
    for mesh in meshes:
        if mesh.spec.level != deepest:
            continue
        rows, cols = mesh.node_shape
        nodes = mesh.vertices[: rows * cols]
        i = np.round(nodes[:, 0] / 0.5 - 0.5).astype(int)
        j = np.round(nodes[:, 1] / 0.5 - 0.5).astype(int)
        np.testing.assert_allclose(nodes[:, 2], grid.heights[j, i])
        # Interior quads once: count the cells whose lower-left node each tile owns.
        own = (i < i.max()) & (j < j.max())
        np.add.at(covered, (j[own], i[own]), 1)
    assert (covered[:-1, :-1] == 1).all()
    root = write_terrain_tiles(grid, shift, tmp_path / "tiles", leaf_cells=leaf)
    assert root["geometricError"] == errors[(0, 0, 0)]
    assert len(list((tmp_path / "tiles").iterdir())) == tiles


def test_too_small_a_grid_is_an_input_error():
    grid = TerrainGrid(0.0, 0.0, 1.0, np.zeros((1, 5)), np.zeros((1, 5), bool), "dtm", 5)
    with pytest.raises(GeometryError, match="2 x 2"):
        terrain_tile_meshes(grid, lambda p: p)


def _by_key(meshes: list[TerrainMesh]) -> dict[tuple[int, int, int], TerrainMesh]:
    return {(m.spec.level, m.spec.x, m.spec.y): m for m in meshes}


def _nodes(mesh: TerrainMesh, what: np.ndarray) -> np.ndarray:
    rows, cols = mesh.node_shape
    return what[: rows * cols].reshape(rows, cols, -1)


def test_neighbouring_tiles_share_bit_identical_edges(meshes):
    tiles, _ = meshes
    by_key = _by_key(tiles)
    pairs = 0
    for (level, x, y), mesh in by_key.items():
        east, north = by_key.get((level, x + 1, y)), by_key.get((level, x, y + 1))
        for attribute in ("vertices", "normals", "colors"):
            here = _nodes(mesh, getattr(mesh, attribute))
            if east is not None:
                there = _nodes(east, getattr(east, attribute))
                assert np.array_equal(here[:, -1], there[:, 0])
                assert here[:, -1].tobytes() == there[:, 0].tobytes()
            if north is not None:
                there = _nodes(north, getattr(north, attribute))
                assert here[-1].tobytes() == there[0].tobytes()
        pairs += (east is not None) + (north is not None)
    # Leaves 5 x 4: 16 + 15 pairs; level 2, 3 x 2: 4 + 3; level 1, 2 x 1: 1.
    assert pairs == 31 + 7 + 1


def test_leaf_tiles_match_the_known_surface(meshes, frame: Frame):
    tiles, errors = meshes
    leaves = [m for m in tiles if m.spec.level == 3]
    assert len(leaves) == 20
    assert all(errors[(m.spec.level, m.spec.x, m.spec.y)] == 0.0 for m in leaves)
    observed_errors, all_errors = [], []
    for mesh in leaves:
        rows, cols = mesh.node_shape
        source = frame.to_source(mesh.vertices[: rows * cols])
        error = source[:, 2] - truth(source[:, 0], source[:, 1])
        water = in_lake(source[:, 0], source[:, 1], 1.0) | in_buildings(
            source[:, 0], source[:, 1], 1.0
        )
        observed_errors.append(error[~water])
        all_errors.append(error)
    observed = np.concatenate(observed_errors)
    everything = np.concatenate(all_errors)
    assert float(np.sqrt(np.mean(observed**2))) < 0.1
    # With the interpolated lake and the ground under buildings (not seen by the scanner).
    assert float(np.sqrt(np.mean(everything**2))) < 0.1


def test_parents_are_within_their_geometric_error(meshes, dtm: TerrainGrid, frame: Frame):
    """Independent of the tiler's own measure: interpolate each parent's actual triangles
    (moved back to source coordinates) at every full-resolution cell centre they cover."""
    tiles, errors = meshes
    parents = [m for m in tiles if m.spec.level < 3]
    assert len(parents) == 1 + 2 + 6
    x_all, y_all = cell_centres(dtm)
    worst_ratio = 0.0
    for mesh in parents:
        declared = errors[(mesh.spec.level, mesh.spec.x, mesh.spec.y)]
        rows, cols = mesh.node_shape
        nodes = frame.to_source(mesh.vertices[: rows * cols])
        surface = mesh.triangles[(mesh.triangles < rows * cols).all(axis=1)]
        worst = 0.0
        for tri in surface:
            a, b, c = nodes[tri]
            lo = np.floor(np.minimum(np.minimum(a, b), c)[:2] - np.array([X0, Y0])).astype(int)
            hi = np.ceil(np.maximum(np.maximum(a, b), c)[:2] - np.array([X0, Y0])).astype(int)
            px = x_all[lo[1]: hi[1] + 1, lo[0]: hi[0] + 1].reshape(-1)
            py = y_all[lo[1]: hi[1] + 1, lo[0]: hi[0] + 1].reshape(-1)
            pz = dtm.heights[lo[1]: hi[1] + 1, lo[0]: hi[0] + 1].reshape(-1)
            det = (b[1] - c[1]) * (a[0] - c[0]) + (c[0] - b[0]) * (a[1] - c[1])
            wa = ((b[1] - c[1]) * (px - c[0]) + (c[0] - b[0]) * (py - c[1])) / det
            wb = ((c[1] - a[1]) * (px - c[0]) + (a[0] - c[0]) * (py - c[1])) / det
            wc = 1.0 - wa - wb
            inside = (wa >= -1e-6) & (wb >= -1e-6) & (wc >= -1e-6)
            z = wa * a[2] + wb * b[2] + wc * c[2]
            if inside.any():
                worst = max(worst, float(np.abs(z - pz)[inside].max()))
        # 2 mm: the round trip local -> ECEF -> source heights and float rounding.
        assert worst <= declared + 2e-3, (mesh.spec, worst, declared)
        assert declared > 0.0
        worst_ratio = max(worst_ratio, worst / declared)
    assert worst_ratio > 0.9  # declared errors are measured, not padded


def test_errors_are_measured_on_the_grid_and_non_increasing(meshes, dtm: TerrainGrid):
    tiles, errors = meshes
    levels = terrain_levels(dtm.shape, LEAF)
    for (level, x, y), error in errors.items():
        if level == 3:
            assert error == 0.0
            continue
        lv = levels[level]
        children = [errors.get((level + 1, 2 * x + dx, 2 * y + dy), 0.0)
                    for dx in (0, 1) for dy in (0, 1)]
        assert error >= max(children)
        rows = lv.rows[y * LEAF: min((y + 1) * LEAF, len(lv.rows) - 1) + 1]
        cols = lv.columns[x * LEAF: min((x + 1) * LEAF, len(lv.columns) - 1) + 1]
        assert error >= surface_error(dtm.heights, rows, cols)
    # A plane is represented exactly at every level.
    yy, xx = np.mgrid[0:65, 0:129].astype(float)
    plane = 0.3 * xx - 0.2 * yy
    assert surface_error(plane, np.arange(0, 65, 8), np.arange(0, 129, 8)) < 1e-9


def test_skirts_close_gaps_to_coarser_neighbours(meshes, dtm: TerrainGrid):
    """Where a tile meets a neighbour one or two levels coarser (REPLACE refinement allows
    that), the higher of the two edges has a skirt reaching down to the lower one."""
    tiles, _ = meshes
    by_key = _by_key(tiles)
    levels = terrain_levels(dtm.shape, LEAF)
    checked = 0
    for (level, x, y), fine in by_key.items():
        lv = levels[level]
        if level == 0:
            assert fine.skirt_depth == 0.0 and len(fine.vertices) == np.prod(fine.node_shape)
            continue
        # The east edge of (x, y) against the coarser tile that holds (x + 1, y)'s area.
        if x + 1 >= lv.tiles_x:
            continue
        rows = lv.rows[fine.spec.r0: fine.spec.r1 + 1]
        edge_col = lv.columns[fine.spec.c1]
        fine_z = dtm.heights[rows, edge_col]
        for up in (1, 2):
            if level - up < 0:
                break
            coarse_level = levels[level - up]
            cx, cy = (x + 1) >> up, y >> up
            if (x >> up) == cx:
                continue  # same coarse tile: not a neighbour at that level
            coarse = by_key[(level - up, cx, cy)]
            c_rows = coarse_level.rows[coarse.spec.r0: coarse.spec.r1 + 1]
            assert coarse_level.columns[coarse.spec.c0] == edge_col
            coarse_z = np.interp(rows, c_rows, dtm.heights[c_rows, edge_col])
            gap_up = (fine_z - coarse_z).max()  # fine edge above: its skirt must reach down
            gap_down = (coarse_z - fine_z).max()
            assert fine.skirt_depth >= gap_up, (fine.spec, up, gap_up)
            assert coarse.skirt_depth >= gap_down, (coarse.spec, up, gap_down)
            checked += 1
    assert checked >= 10
    # Skirts only on interior edges: the corner leaf (0, 0) has two (east and north), which
    # taper to nothing where they meet the outer rim (no cut end hanging below the terrain).
    corner = by_key[(3, 0, 0)]
    rows, cols = corner.node_shape
    assert len(corner.vertices) == rows * cols + (rows - 1) + (cols - 1)
    skirt = corner.vertices[rows * cols:]
    top = corner.vertices[: rows * cols].reshape(rows, cols, 3)
    np.testing.assert_allclose(skirt[: rows - 1, 2], top[1:, -1, 2] - corner.skirt_depth)
    np.testing.assert_allclose(skirt[: rows - 1, :2], top[1:, -1, :2])
    assert corner.skirt_depth >= TERRAIN.min_skirt_depth
    # The strips face out of the tile (east for the east edge).
    east = corner.triangles[(corner.triangles >= rows * cols).any(axis=1)]
    a, b, c = (corner.vertices[east[:, i]] for i in range(3))
    facing = np.cross(b - a, c - a)
    east_column = np.arange(rows) * cols + cols - 1
    surface_part = np.where(east < rows * cols, east, east_column[0])
    east_strip = np.isin(surface_part, east_column).all(axis=1)
    assert east_strip.sum() == 2 * (rows - 1) - 1  # one triangle fewer at the tapered end
    grid_east = top[0, -1] - top[0, -2]  # the frame is rotated against UTM grid east
    assert (facing[east_strip] @ grid_east > 0).all()
    assert (facing[~east_strip] @ (top[-1, 0] - top[-2, 0]) > 0).all()  # north strip


def test_normals_are_unit_and_point_up(meshes):
    tiles, _ = meshes
    for mesh in tiles:
        length = np.linalg.norm(mesh.normals.astype(np.float64), axis=1)
        np.testing.assert_allclose(length, 1.0, atol=1e-6)
        assert mesh.normals[:, 2].min() > 0.9  # gentle synthetic slopes
        # Triangles face up (counter-clockwise seen from above) on the surface part.
        rows, cols = mesh.node_shape
        surface = mesh.triangles[(mesh.triangles < rows * cols).all(axis=1)]
        a, b, c = (mesh.vertices[surface[:, i]] for i in range(3))
        assert (np.cross(b - a, c - a)[:, 2] > 0).all()


def write_tileset(grid: TerrainGrid, frame: Frame, out: Path, **kwargs) -> dict:
    calls: list[int] = []
    root = write_terrain_tiles(
        grid, frame.to_local, out / "tiles", progress=calls.append, leaf_cells=LEAF, **kwargs
    )
    root["transform"] = column_major(frame.enu_to_ecef)
    document = {
        "asset": {"version": "1.1"},
        "geometricError": max(2.0 * root["geometricError"], 20.0),
        "root": root,
    }
    (out / "tileset.json").write_text(json.dumps(document, indent=1))
    assert sum(calls) == len(list((out / "tiles").iterdir()))
    return document


@pytest.fixture(scope="module")
def terrain_tileset(dtm: TerrainGrid, frame: Frame, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("terrain")
    write_tileset(dtm, frame, out)
    return out


def test_written_tileset_validates(terrain_tileset: Path, dtm: TerrainGrid, frame: Frame,
                                   tmp_path: Path):
    report = validate_tileset(terrain_tileset / "tileset.json")
    assert report.errors == [], report.errors[:5]
    assert report.glbs == 1 + 2 + 6 + 20
    document = json.loads((terrain_tileset / "tileset.json").read_text())
    root = document["root"]
    assert root["refine"] == "REPLACE" and root["content"]["uri"] == "tiles/terrain-0-0-0.glb"
    assert len(root["children"]) == 2
    # Byte-identical on a second build.
    again = tmp_path / "again"
    write_tileset(dtm, frame, again)
    for path in sorted((terrain_tileset / "tiles").iterdir()):
        assert (again / "tiles" / path.name).read_bytes() == path.read_bytes(), path.name
    assert (again / "tileset.json").read_text() == (terrain_tileset / "tileset.json").read_text()


def test_glbs_hold_the_tile_meshes(terrain_tileset: Path, meshes, frame: Frame):
    tiles, _ = meshes
    assert len(list((terrain_tileset / "tiles").iterdir())) == len(tiles)
    leaf_errors = []
    for mesh in tiles:
        path = terrain_tileset / "tiles" / mesh.spec.name
        (primitive,) = read_glb(path.read_bytes(), source=path.name).primitives
        # float32 positions relative to the tile centre: well below a millimetre.
        np.testing.assert_allclose(primitive.positions, mesh.vertices, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(primitive.indices, mesh.triangles)
        # Normals are stored as normalized bytes: within one step (1/127) per component.
        np.testing.assert_allclose(primitive.normals, mesh.normals, atol=1.0 / 127)
        np.testing.assert_allclose(primitive.colors * 255.0, mesh.colors, atol=1e-3)
        if mesh.spec.level == 3:
            rows, cols = mesh.node_shape
            source = frame.to_source(primitive.positions[: rows * cols])
            leaf_errors.append(source[:, 2] - truth(source[:, 0], source[:, 1]))
    errors = np.concatenate(leaf_errors)
    assert float(np.sqrt(np.mean(errors**2))) < 0.1


def test_filled_low_cells_are_drawn_as_water(frame: Frame, tmp_path: Path):
    # A coastal strip: land rising from 0 m, with a sea (no points) at -0.2 m.
    rng = np.random.default_rng(3)
    n = 60_000
    x = X0 + rng.random(n) * 100.0
    y = Y0 + rng.random(n) * 100.0
    z = (x - X0 - 50.0) * 0.05
    keep = x - X0 > 30.0  # the sea west of x = 30 has no returns
    builder = TerrainGridBuilder((X0, Y0, X0 + 100.0, Y0 + 100.0))
    builder.add(x[keep], y[keep], z[keep], np.full(int(keep.sum()), 2))
    grid = builder.finish()
    meshes, _ = terrain_tile_meshes(grid, frame.to_local, leaf_cells=64)
    leaf = next(m for m in meshes if m.spec.level == 1 and m.spec.x == 0 and m.spec.y == 0)
    colours = _nodes(leaf, leaf.colors)
    water = colours[:, 10]  # column 10: x = 10.5 m, in the filled sea at about -1 m
    land = colours[:, 35:]
    assert (water[:, 2] > water[:, 1]).all()  # bluish
    assert (land[..., 1] > land[..., 2]).all()  # terrain green
    # Land cells without a return (at 6 points/m², a few) are filled but are not water.
    specks = grid.filled[:65, 35:65]
    assert specks.any() and (grid.heights[:65, 35:65][specks] < 0.5).any()


@pytest.mark.browser
def test_terrain_renders_in_cesium(terrain_tileset: Path, render_tileset):
    result = render_tileset(terrain_tileset, heading=30, pitch=-45)
    assert result.ok, result.summary()
    assert result.external_requests == []
    h, w, _ = result.image.shape
    centre = (slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))
    mask = result.content_mask()[centre]
    assert mask.mean() > 0.5, result.summary()
    # Lit terrain in its olive green (the lake in the synthetic DTM is above sea level).
    pixels = result.image[centre].astype(int)
    green = (pixels[..., 1] > pixels[..., 2] + 10) & (pixels[..., 1] >= pixels[..., 0] - 10)
    assert (green & mask).mean() > 0.3, result.summary()
    # Shading from the normals: the sinusoidal hills are not one flat colour.
    assert pixels[..., 1][mask].std() > 3.0
    assert any(u.endswith(".glb") for u in result.requests)
    # Close above the middle with a strict screen-space error, tiles of several levels meet
    # in one view (REPLACE refinement): no crack may let the background through.
    close = render_tileset(
        terrain_tileset, heading=0, pitch=-90, range=120, maximum_screen_space_error=0.3
    )
    assert close.ok, close.summary()
    assert close.stats.get("selected", 0) >= 4, close.stats
    assert close.content_mask().mean() == 1.0
    leaves = {u.rsplit("/", 1)[-1] for u in close.requests if "terrain-3-" in u}
    assert len(leaves) >= 4


def test_water_points_make_the_surface_and_fill_their_gaps() -> None:
    """Class 9 points are the surface where there is no ground; cells without points inside
    a river are water too (nearest cell with points is water), and land stays land."""
    builder = TerrainGridBuilder((0.0, 0.0, 20.0, 10.0), 1.0)
    x, y = np.meshgrid(np.arange(20) + 0.5, np.arange(10) + 0.5)
    x, y = x.ravel(), y.ravel()
    river = x > 10
    keep = ~river | ((x.astype(int) + y.astype(int)) % 3 != 0)  # holes in the river
    z = np.where(river, 0.02, 3.0)
    classes = np.where(river, 9, 2)
    builder.add(x[keep], y[keep], z[keep], classes[keep])
    grid = builder.finish()
    assert grid.water is not None
    assert grid.water[:, 11:].all() and not grid.water[:, :10].any()
    np.testing.assert_allclose(grid.heights[:, :10], 3.0)
    np.testing.assert_allclose(grid.heights[:, 12:], 0.02, atol=0.05)
