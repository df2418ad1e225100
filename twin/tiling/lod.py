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
    footprints: list[list[npt.NDArray[np.float64]]],
    block_color: npt.NDArray[np.uint8],
) -> list[tuple[FeatureMesh, float]]:
    """LoD1 blocks of many buildings at once, with an upper bound of each one's Hausdorff
    distance to the full mesh.

    Each building has one or more footprint rings (its ground polygons in local xy, any
    orientation, holes ignored). Every ring is extruded from the building's lowest point to
    the highest roof vertex above that ring, so a main body and a low annex keep their own
    heights. The error is the deepest a roof vertex dips below the top of its ring's block,
    or, for eaves outside every ring, their distance to the nearest ring.

    Vectorised over the whole batch: the hot path for M-V data.
    """
    n = len(meshes)
    if n == 0:
        return []
    ring_building = np.repeat(np.arange(n), [len(f) for f in footprints])
    rings = [ring for f in footprints for ring in f]
    lengths = np.array([len(r) for r in rings], dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    ring_of = np.repeat(np.arange(len(rings)), lengths)
    xy = np.concatenate([r[:, :2] for r in rings])
    local = np.arange(len(xy)) - starts[ring_of]
    nxt = np.where(local + 1 < lengths[ring_of], np.arange(len(xy)) + 1, starts[ring_of])
    # Counter-clockwise seen from above, so that the walls built below face outward.
    shoelace = np.add.reduceat(xy[:, 0] * xy[nxt, 1] - xy[nxt, 0] * xy[:, 1], starts)
    cw = (shoelace < 0)[ring_of]
    reverse = starts[ring_of] + lengths[ring_of] - 1 - local
    xy = xy[np.where(cw, reverse, np.arange(len(xy)))]

    # Roof triangles (facing up) against every ring of their building: a roof triangle's
    # centroid lies strictly inside the ring below it, even where rings share an edge.
    counts = np.array([len(m.vertices) for m in meshes])
    vertices = np.concatenate([m.vertices for m in meshes])
    v_starts = np.cumsum(counts) - counts
    z0 = np.minimum.reduceat(vertices[:, 2], v_starts)
    z1 = np.maximum.reduceat(vertices[:, 2], v_starts)
    triangles_in = np.concatenate([m.triangles + s for m, s in zip(meshes, v_starts, strict=True)])
    triangle_of = np.repeat(np.arange(n), [len(m.triangles) for m in meshes])
    up = np.concatenate([m.normals[:, 2] for m in meshes])[triangles_in[:, 0]] > _ROOF_NORMAL_Z
    roof = triangles_in[up]
    roof_building = triangle_of[up]
    corners = vertices[roof]  # (t, 3, 3)
    rings_per_building = np.bincount(ring_building, minlength=n)
    first_ring = np.cumsum(rings_per_building) - rings_per_building
    repeat = rings_per_building[roof_building]
    pair_triangle = np.repeat(np.arange(len(roof)), repeat)
    pair_ring = first_ring[roof_building[pair_triangle]] + (
        np.arange(len(pair_triangle)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    )
    polygons = shapely.polygons(shapely.linearrings(xy, indices=ring_of))
    centroids = corners.mean(axis=1)
    inside = shapely.contains_xy(
        polygons[pair_ring], centroids[pair_triangle, 0], centroids[pair_triangle, 1]
    )
    z_top = np.full(len(rings), -np.inf)
    np.maximum.at(z_top, pair_ring[inside], corners[pair_triangle[inside], :, 2].max(axis=1))
    z_top = np.where(np.isfinite(z_top), z_top, z1[ring_building])
    dip = np.zeros(n)
    np.maximum.at(
        dip,
        roof_building[pair_triangle[inside]],
        z_top[pair_ring[inside]] - corners[pair_triangle[inside], :, 2].min(axis=1),
    )
    # Roof triangles over no ring (eaves, overhangs): their reach beyond the nearest ring.
    covered = np.zeros(len(roof), dtype=bool)
    covered[pair_triangle[inside]] = True
    overhang = np.zeros(n)
    loose = ~covered[pair_triangle]
    if loose.any():
        # Per ring the farthest corner, then the nearest ring.
        pair_reach = np.zeros(int(loose.sum()))
        for corner in range(3):
            points = shapely.points(corners[pair_triangle[loose], corner, :2])
            pair_reach = np.maximum(
                pair_reach, shapely.distance(polygons[pair_ring[loose]], points)
            )
        reach = np.full(len(roof), np.inf)
        np.minimum.at(reach, pair_triangle[loose], pair_reach)
        far = np.isfinite(reach)
        np.maximum.at(overhang, roof_building[far], reach[far])
    errors = np.maximum(dip, overhang)

    # Extrude every ring: per ring block [top k, bottom k, walls 4k] vertices.
    block_size = 6 * lengths
    block_start = np.cumsum(block_size) - block_size
    top = np.column_stack((xy, z_top[ring_of]))
    caps = triangulate_soup(
        PolygonSoup(top, starts, lengths, np.arange(len(rings)), np.ones(len(rings), np.int64))
    )
    cap_ring = caps.triangle_polygon
    cap = caps.triangles.astype(np.int64) + (block_start - starts)[cap_ring][:, None]
    bottom_cap = cap[:, [0, 2, 1]] + lengths[cap_ring][:, None]
    b = xy[nxt]
    zb = z0[ring_building][ring_of]
    zt = z_top[ring_of]
    out = np.empty((int(block_size.sum()), 3))
    base = block_start[ring_of]
    k = lengths[ring_of]
    out[base + local] = top
    out[base + k + local] = np.column_stack((xy, zb))
    wall = base + 2 * k + 4 * local
    out[wall] = np.column_stack((xy, zb))
    out[wall + 1] = np.column_stack((b, zb))
    out[wall + 2] = np.column_stack((b, zt))
    out[wall + 3] = np.column_stack((xy, zt))
    walls = np.concatenate((wall[:, None] + [0, 1, 2], wall[:, None] + [0, 2, 3]))
    wall_ring = np.concatenate((ring_of, ring_of))
    normals = np.empty_like(out, dtype=np.float32)
    normals[base + local] = (0.0, 0.0, 1.0)
    normals[base + k + local] = (0.0, 0.0, -1.0)
    edge = b - xy
    edge /= np.maximum(np.linalg.norm(edge, axis=1), 1e-12)[:, None]
    wall_normal = np.column_stack((edge[:, 1], -edge[:, 0], np.zeros(len(edge))))
    for j in range(4):
        normals[wall + j] = wall_normal
    triangles = np.concatenate((cap, bottom_cap, walls))
    triangle_building = ring_building[np.concatenate((cap_ring, cap_ring, wall_ring))]
    order = np.argsort(triangle_building, kind="stable")
    triangles, triangle_building = triangles[order], triangle_building[order]
    t_bounds = np.searchsorted(triangle_building, np.arange(n + 1))
    ring_bounds = np.append(first_ring, len(rings))
    v_bounds = np.append(block_start, block_size.sum())[ring_bounds]
    result = []
    for o in range(n):
        v0, v1 = v_bounds[o], v_bounds[o + 1]
        mesh = FeatureMesh(
            out[v0:v1],
            (triangles[t_bounds[o]:t_bounds[o + 1]] - v0).astype(np.uint32),
            normals[v0:v1],
            np.broadcast_to(block_color, (v1 - v0, 4)),
        )
        result.append((mesh, float(errors[o])))
    return result
