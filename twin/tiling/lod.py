"""Level of detail: the simplified proxy of each feature and its measured error.

Buildings become LoD1 blocks (their footprint extruded from the lowest to the highest point);
other features (bridges, relief, generic objects) are decimated. Each proxy comes with the
geometric error it introduces, in metres, so that parent tiles can declare an honest
``geometricError``: the largest distance between the proxy and the full geometry.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely

from twin.ops.mesh import (
    FeatureMesh,
    decimate,
    extrude_footprint,
    flat_mesh,
    footprint_of,
    hausdorff_estimate,
    surface_samples,
)
from twin.ops.triangulate import PolygonSoup, triangulate_soup

BLOCK_CLASSES = frozenset({"Building"})
"""Classes whose proxy is an LoD1 block (their parts are folded in)."""

_ROOF_NORMAL_Z = 0.1
"""Vertices whose normal points up more than this belong to roofs (or flat tops)."""

_SMALL_MESH_TRIANGLES = 200
"""Generic features up to this many triangles are their own proxy (error 0)."""

_DECIMATION = 0.85
"""Fraction of triangles that decimation of large generic features removes."""


def building_block(
    mesh: FeatureMesh, ground: npt.NDArray[np.bool_], block_color: npt.NDArray[np.uint8]
) -> tuple[FeatureMesh, float]:
    """LoD1 block of a building and an upper bound of its Hausdorff distance to the full mesh.

    The block spans the footprint from the lowest to the highest vertex, so it contains the
    building's height range. With the footprint taken from the ground surfaces the walls
    coincide, and every point of the full mesh is at most as far from the block as the roof
    dips below the top (z_max minus the lowest upward-facing vertex) or eaves reach out beyond
    the ground outline. Without ground surfaces the footprint is the
    convex hull, and the error is measured by sampling both surfaces.
    """
    lo, hi = mesh.bounds()
    has_ground = bool(ground.any())
    footprint = footprint_of(mesh, ground if has_ground else None)
    if footprint.is_empty or footprint.area < 1e-6 or hi[2] - lo[2] < 1e-6:
        return generic_proxy(mesh)
    vertices, triangles = extrude_footprint(footprint, float(lo[2]), float(hi[2]))
    block = flat_mesh(vertices, triangles, block_color)
    if has_ground:
        up = mesh.normals[:, 2] > _ROOF_NORMAL_Z
        roof_low = float(mesh.vertices[up, 2].min()) if up.any() else float(hi[2])
        # Overhangs (eaves beyond the ground outline) add their horizontal reach.
        overhang = float(shapely.distance(footprint, shapely.points(mesh.vertices[:, :2])).max())
        error = max(float(hi[2]) - roof_low, overhang, 0.0)
    else:
        spacing = max(float(np.ptp(mesh.vertices, axis=0).max()) / 8.0, 0.5)
        error = hausdorff_estimate(
            surface_samples(mesh.vertices, mesh.triangles, spacing),
            surface_samples(block.vertices, block.triangles, spacing),
        )
    return block, error


def generic_proxy(mesh: FeatureMesh) -> tuple[FeatureMesh, float]:
    """The feature itself when small; otherwise a decimated copy and its sampled error."""
    if len(mesh.triangles) <= _SMALL_MESH_TRIANGLES:
        return mesh, 0.0
    vertices, triangles = decimate(mesh.vertices, mesh.triangles, _DECIMATION)
    if len(triangles) == 0:
        return mesh, 0.0
    # Keep the feature's dominant colour on the proxy: one colour, flat shaded.
    colors, counts = np.unique(mesh.colors, axis=0, return_counts=True)
    proxy = flat_mesh(vertices, triangles, colors[np.argmax(counts)])
    spacing = max(float(np.ptp(mesh.vertices, axis=0).max()) / 64.0, 0.25)
    error = hausdorff_estimate(
        surface_samples(mesh.vertices, mesh.triangles, spacing),
        surface_samples(proxy.vertices, proxy.triangles, spacing),
    )
    return proxy, error


def feature_proxy(
    cls: str,
    mesh: FeatureMesh,
    ground: npt.NDArray[np.bool_],
    block_color: npt.NDArray[np.uint8],
) -> tuple[FeatureMesh, float]:
    """The proxy of a feature for parent tiles, by class, with its geometric error."""
    if cls in BLOCK_CLASSES:
        return building_block(mesh, ground, block_color)
    return generic_proxy(mesh)


def importance(mesh: FeatureMesh) -> float:
    """How much a feature matters when a parent tile must drop some: its bounding volume."""
    lo, hi = mesh.bounds()
    return float(np.prod(np.maximum(hi - lo, 0.1)))


def building_blocks(
    meshes: list[FeatureMesh],
    footprints: list[npt.NDArray[np.float64]],
    block_color: npt.NDArray[np.uint8],
) -> list[tuple[FeatureMesh, float]]:
    """LoD1 blocks of many buildings at once, each from one footprint ring (local xy, any
    orientation, no holes), with the same error bound as ``building_block``.

    Vectorised over the batch: this is the hot path for M-V data, where every building has
    exactly one ground polygon.
    """
    if not meshes:
        return []
    n = len(meshes)
    lengths = np.array([len(f) for f in footprints], dtype=np.int64)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    ring_of = np.repeat(np.arange(n), lengths)
    xy = np.concatenate([f[:, :2] for f in footprints])
    # Counter-clockwise seen from above (shoelace per ring).
    nxt = np.arange(len(xy)) + 1
    nxt[starts + lengths - 1] = starts
    shoelace = np.add.reduceat(xy[:, 0] * xy[nxt, 1] - xy[nxt, 0] * xy[:, 1], starts)
    cw = shoelace < 0
    if cw.any():
        flip_index = np.arange(len(xy))
        for o in np.flatnonzero(cw):
            s, k = starts[o], lengths[o]
            flip_index[s:s + k] = flip_index[s:s + k][::-1]
        xy = xy[flip_index]
    lo = np.array([m.vertices.min(axis=0) for m in meshes])
    hi = np.array([m.vertices.max(axis=0) for m in meshes])
    z0, z1 = lo[:, 2], hi[:, 2]
    top = np.column_stack((xy, z1[ring_of]))
    soup = PolygonSoup(top, starts, lengths, np.arange(n), np.ones(n, dtype=np.int64))
    caps = triangulate_soup(soup)
    # Walls: a quad per footprint edge, outward because the ring is counter-clockwise.
    nxt = np.arange(len(xy)) + 1
    nxt[starts + lengths - 1] = starts
    a, b = xy, xy[nxt]
    zb, zt = z0[ring_of], z1[ring_of]
    quads = np.stack(
        (
            np.column_stack((a, zb)),
            np.column_stack((b, zb)),
            np.column_stack((b, zt)),
            np.column_stack((a, zt)),
        ),
        axis=1,
    )  # (edges, 4, 3)
    edge = b - a
    edge_len = np.maximum(np.linalg.norm(edge, axis=1), 1e-12)
    wall_normal = np.column_stack((edge[:, 1], -edge[:, 0], np.zeros(len(edge)))) / edge_len[:, None]
    # Errors: how far the roof dips below the block top, and eaves beyond the outline.
    vertex_counts = np.array([len(m.vertices) for m in meshes])
    all_vertices = np.concatenate([m.vertices for m in meshes])
    all_up = np.concatenate([m.normals[:, 2] for m in meshes]) > _ROOF_NORMAL_Z
    vertex_of = np.repeat(np.arange(n), vertex_counts)
    v_starts = np.zeros(n, dtype=np.int64)
    np.cumsum(vertex_counts[:-1], out=v_starts[1:])
    roof_z = np.where(all_up, all_vertices[:, 2], np.inf)
    roof_low = np.minimum.reduceat(roof_z, v_starts)
    roof_low = np.where(np.isfinite(roof_low), roof_low, z1)
    polygons = shapely.polygons(shapely.linearrings(xy, indices=ring_of))
    overhang_each = shapely.distance(polygons[vertex_of], shapely.points(all_vertices[:, :2]))
    overhang = np.maximum.reduceat(np.nan_to_num(overhang_each, nan=0.0), v_starts)
    errors = np.maximum(np.maximum(z1 - roof_low, overhang), 0.0)
    cap_tri_of = caps.triangle_polygon
    result = []
    t_bounds = np.searchsorted(cap_tri_of, np.arange(n + 1))
    for o in range(n):
        s, k = starts[o], lengths[o]
        cap = caps.triangles[t_bounds[o]:t_bounds[o + 1]].astype(np.int64) - s
        ring_top = top[s:s + k]
        ring_bottom = ring_top.copy()
        ring_bottom[:, 2] = z0[o]
        walls = quads[s:s + k].reshape(-1, 3)
        vertices = np.concatenate((ring_top, ring_bottom, walls))
        q = 2 * k + 4 * np.arange(k)[:, None]
        triangles = np.concatenate(
            (cap, cap[:, [0, 2, 1]] + k, q + [0, 1, 2], q + [0, 2, 3])
        ).astype(np.uint32)
        normals = np.concatenate(
            (
                np.tile([0.0, 0.0, 1.0], (k, 1)),
                np.tile([0.0, 0.0, -1.0], (k, 1)),
                np.repeat(wall_normal[s:s + k], 4, axis=0),
            )
        ).astype(np.float32)
        colors = np.broadcast_to(block_color, (len(vertices), 4))
        result.append((FeatureMesh(vertices, triangles, normals, colors), float(errors[o])))
    return result
