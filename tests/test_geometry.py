"""Pure geometry: triangulation, orientation, LoD1 blocks, the quadtree."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.ops.mesh import extrude_footprint, flat_mesh, footprint_of, vertex_normals_flat
from twin.ops.triangulate import is_closed, signed_volume, triangulate_polygon, weld_keys
from twin.tiling.lod import building_block, building_blocks
from twin.tiling.tree import build_quadtree

UTM = np.array([312244.0, 5997168.0, 0.0])  # Kröpeliner Tor: real magnitudes for precision


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def area_of(tri) -> float:
    v = tri.vertices
    a, b, c = (v[tri.triangles[:, i]] for i in range(3))
    return float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2)


def test_square_with_hole_area_and_normal():
    ext = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0]], float) + UTM
    hole = np.array([[2, 2, 0], [2, 4, 0], [4, 4, 0], [4, 2, 0]], float) + UTM
    tri = triangulate_polygon(ext, [hole])
    assert tri is not None
    assert area_of(tri) == pytest.approx(96.0, abs=1e-6)
    np.testing.assert_allclose(tri.normal, [0, 0, 1], atol=1e-12)
    # Every triangle faces the polygon's way.
    v = tri.vertices
    a, b, c = (v[tri.triangles[:, i]] for i in range(3))
    assert (np.cross(b - a, c - a) @ tri.normal > 0).all()


def test_vertical_wall_keeps_ring_orientation():
    # Counter-clockwise seen from the south (-y): the wall's outside faces south.
    wall = np.array([[0, 0, 0], [10, 0, 0], [10, 0, 5], [0, 0, 5]], float) + UTM
    tri = triangulate_polygon(wall)
    np.testing.assert_allclose(tri.normal, [0, -1, 0], atol=1e-12)
    assert area_of(tri) == pytest.approx(50.0)


def test_degenerate_rings_are_none():
    collinear = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], float) + UTM
    assert triangulate_polygon(collinear) is None
    tiny = np.array([[0, 0, 0], [1e-5, 0, 0], [0, 1e-5, 0]], float) + UTM
    assert triangulate_polygon(tiny) is None


def test_slightly_non_planar_roof_is_triangulated():
    roof = np.array([[0, 0, 10], [8, 0, 10.02], [8, 6, 14], [0, 6, 13.99]], float) + UTM
    tri = triangulate_polygon(roof)
    assert tri is not None and len(tri.triangles) == 2
    assert tri.normal[2] > 0.8


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.5, 30), min_size=2, max_size=2),
    st.floats(0, 2 * np.pi),
    st.floats(0, np.pi),
    st.booleans(),
)
def test_rectangle_with_hole_any_orientation(sides, azimuth, tilt, reverse):
    """Area and normal survive any rotation of the plane and either ring direction."""
    w, h = sides
    ext = np.array([[0, 0, 0], [w, 0, 0], [w, h, 0], [0, h, 0]], float)
    hole = np.array([[w / 4, h / 4, 0], [w / 4, h / 2, 0], [w / 2, h / 2, 0], [w / 2, h / 4, 0]])
    if reverse:
        ext, hole = ext[::-1].copy(), hole[::-1].copy()
    r = rotation(np.array([np.cos(azimuth), np.sin(azimuth), 0.3]), tilt)
    tri = triangulate_polygon(ext @ r.T + UTM, [hole @ r.T + UTM])
    assert tri is not None
    assert area_of(tri) == pytest.approx(w * h - (w / 4) * (h / 4), rel=1e-6)
    expected = r @ np.array([0, 0, -1.0 if reverse else 1.0])
    np.testing.assert_allclose(tri.normal, expected, atol=1e-6)


@pytest.mark.parametrize("extent", [500.0, 4e6])  # packed keys; too wide to pack: row-wise
def test_weld_keys_match_row_unique(extent):
    rng = np.random.default_rng(7)
    vertices = np.round(rng.uniform(-extent, extent, (5000, 3)), 3) + UTM
    # Near-duplicates within half a weld step, and exact repeats, out of order.
    vertices = np.concatenate((vertices, vertices[::-3] + 2e-4, vertices[:100]))
    keys = np.round(vertices / 1e-3).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    got_first, got_inverse = weld_keys(vertices)
    assert len(got_first) == 5000
    np.testing.assert_array_equal(got_first, first)
    np.testing.assert_array_equal(got_inverse, inverse.reshape(-1))


def test_extruded_block_is_closed_and_outward():
    footprint = shapely.Polygon([(0, 0), (12, 0), (12, 4), (4, 4), (4, 9), (0, 9)])  # L-shape
    vertices, triangles = extrude_footprint(footprint, 2.0, 11.0)
    assert is_closed(triangles, vertices)
    assert signed_volume(vertices, triangles) == pytest.approx(footprint.area * 9.0)
    # Clockwise input gives the same outward block.
    v2, t2 = extrude_footprint(footprint.reverse(), 2.0, 11.0)
    assert signed_volume(v2, t2) == pytest.approx(footprint.area * 9.0)


def test_block_of_gable_house_error_is_roof_height():
    """LoD1 block of a 10x8 m house with eaves at 6 m and ridge at 9 m: error 3 m."""
    fp = [(0, 0), (10, 0), (10, 8), (0, 8)]
    polys = []
    ground = np.array([[x, y, 0.0] for x, y in fp[::-1]])  # faces down
    polys.append(ground)
    polys.append(np.array([[0, 0, 0], [10, 0, 0], [10, 0, 6], [0, 0, 6]], float))
    polys.append(np.array([[10, 8, 0], [0, 8, 0], [0, 8, 6], [10, 8, 6]], float))
    polys.append(np.array([[10, 0, 0], [10, 8, 0], [10, 8, 6], [10, 4, 9], [10, 0, 6]], float))
    polys.append(np.array([[0, 8, 0], [0, 0, 0], [0, 0, 6], [0, 4, 9], [0, 8, 6]], float))
    polys.append(np.array([[0, 0, 6], [10, 0, 6], [10, 4, 9], [0, 4, 9]], float))
    polys.append(np.array([[10, 8, 6], [0, 8, 6], [0, 4, 9], [10, 4, 9]], float))
    tris = [triangulate_polygon(p) for p in polys]
    offsets = np.cumsum([0] + [len(t.vertices) for t in tris[:-1]])
    vertices = np.concatenate([t.vertices for t in tris])
    triangles = np.concatenate(
        [t.triangles + o for t, o in zip(tris, offsets, strict=True)]
    ).astype(np.uint32)
    assert is_closed(triangles, vertices)
    assert signed_volume(vertices, triangles) == pytest.approx(10 * 8 * 6 + 10 * 8 * 3 / 2)
    from twin.ops.mesh import FeatureMesh

    mesh = FeatureMesh(
        vertices, triangles, vertex_normals_flat(vertices, triangles),
        np.full((len(vertices), 4), 200, np.uint8),
    )
    ground_mask = np.zeros(len(triangles), bool)
    ground_mask[: len(tris[0].triangles)] = True
    fp_poly = footprint_of(mesh, ground_mask)
    assert fp_poly.area == pytest.approx(80.0)
    white = np.array([255, 255, 255, 255], np.uint8)
    block, error = building_block(mesh, ground_mask, white)
    assert error == pytest.approx(3.0)
    lo, hi = block.bounds()
    np.testing.assert_allclose(lo, [0, 0, 0])
    np.testing.assert_allclose(hi, [10, 8, 9])
    # The vectorised batch version agrees, for a clockwise footprint too.
    [(fast, fast_error)] = building_blocks([mesh], [[tris[0].vertices]], white)
    assert fast_error == pytest.approx(3.0)
    assert is_closed(fast.triangles, fast.vertices)
    assert signed_volume(fast.vertices, fast.triangles) == pytest.approx(80.0 * 9.0)
    np.testing.assert_allclose(fast.bounds()[1], [10, 8, 9])


def test_blocks_keep_annex_height():
    """Main body 10x8x9 m and a 4x8 m annex of 3 m: two blocks of their own heights."""
    from tests.citygml_samples import box_polygons
    from twin.ops.mesh import FeatureMesh

    polys = []
    for kind, rings in box_polygons(0, 0, 0, 10, 8, 9).items():
        polys += [(np.array(r, float), kind) for r in rings]
    for kind, rings in box_polygons(10, 0, 0, 4, 8, 3).items():
        polys += [(np.array(r, float), kind) for r in rings]
    tris = [triangulate_polygon(p) for p, _ in polys]
    offsets = np.cumsum([0] + [len(t.vertices) for t in tris[:-1]])
    vertices = np.concatenate([t.vertices for t in tris])
    triangles = np.concatenate([t.triangles + o for t, o in zip(tris, offsets, strict=True)])
    mesh = FeatureMesh(
        vertices,
        triangles.astype(np.uint32),
        vertex_normals_flat(vertices, triangles),
        np.zeros((len(vertices), 4), np.uint8),
    )
    grounds = [p for p, kind in polys if kind == "GroundSurface"]
    [(block, error)] = building_blocks([mesh], [grounds], np.zeros(4, np.uint8))
    assert error == pytest.approx(0.0, abs=1e-9)  # flat roofs: blocks are exact
    assert signed_volume(block.vertices, block.triangles) == pytest.approx(10 * 8 * 9 + 4 * 8 * 3)
    annex = block.vertices[block.vertices[:, 0] > 10.5]
    assert annex[:, 2].max() == pytest.approx(3.0)


def test_flat_mesh_normals_per_triangle():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    t = np.array([[0, 2, 1], [0, 1, 3]], np.uint32)
    m = flat_mesh(v, t, np.array([1, 2, 3, 255], np.uint8))
    assert len(m.vertices) == 6
    np.testing.assert_allclose(m.normals[:3], [[0, 0, -1]] * 3)
    np.testing.assert_allclose(m.normals[3:], [[0, -1, 0]] * 3)


def test_quadtree_bounds_features_per_tile():
    rng = np.random.default_rng(3)
    centres = rng.uniform(0, 1000, size=(5000, 2))
    weights = np.full(5000, 1000, dtype=np.int64)
    root = build_quadtree(centres, weights, max_features=300, max_weight=10**9)
    leaves = [n for n in root.walk() if n.is_leaf]
    assert all(len(n.features) <= 300 for n in leaves)
    got = np.sort(np.concatenate([n.features for n in leaves]))
    np.testing.assert_array_equal(got, np.arange(5000))  # every feature in exactly one leaf
    addresses = [n.address for n in root.walk()]
    assert len(addresses) == len(set(addresses))
    # By weight: 1000 bytes each, at most 50 kB per leaf -> at most 50 features.
    root = build_quadtree(centres, weights, max_features=10**6, max_weight=50_000)
    assert max(len(n.features) for n in root.walk() if n.is_leaf) <= 50


def test_quadtree_keeps_coincident_features_together():
    centres = np.zeros((20, 2))
    root = build_quadtree(centres, np.ones(20, np.int64), max_features=5, max_weight=10**9)
    leaves = [n for n in root.walk() if n.is_leaf]
    assert sum(len(n.features) for n in leaves) == 20
