"""Pure mesh operations on numpy arrays: normals, welding, LoD1 blocks, decimation, error.

Meshes here are (vertices (n,3) float64, triangles (m,3) uint32) in a metric right-handed
frame (the tileset's east-north-up frame); nothing touches files.
"""

from __future__ import annotations

from dataclasses import dataclass

import fast_simplification
import mapbox_earcut
import numpy as np
import numpy.typing as npt
import shapely

from twin.ops.triangulate import weld_keys

Float64Array = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.uint32]
ColorArray = npt.NDArray[np.uint8]


@dataclass(slots=True)
class FeatureMesh:
    """Triangles of one feature with per-vertex normals and colours (flat shaded polygons)."""

    vertices: Float64Array
    triangles: IndexArray
    normals: npt.NDArray[np.float32]
    colors: ColorArray

    @property
    def is_empty(self) -> bool:
        """Whether there is no triangle."""
        return len(self.triangles) == 0

    def bounds(self) -> tuple[Float64Array, Float64Array]:
        """Axis-aligned (min, max) corners of the vertices."""
        return self.vertices.min(axis=0), self.vertices.max(axis=0)


def triangle_normals(vertices: Float64Array, triangles: IndexArray) -> Float64Array:
    """Unit normals of triangles (zero-area triangles get +Z)."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    length = np.linalg.norm(n, axis=1)
    bad = length <= 1e-12
    n[bad] = (0.0, 0.0, 1.0)
    length[bad] = 1.0
    return n / length[:, None]


def vertex_normals_flat(vertices: Float64Array, triangles: IndexArray) -> npt.NDArray[np.float32]:
    """Per-vertex normals for meshes whose vertices belong to one planar polygon each.

    Each vertex takes the area-weighted normal of the triangles that use it: for polygon-local
    vertices that is the polygon's normal (flat shading without duplicating vertices).
    """
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    face = np.cross(b - a, c - a)  # length = 2 * area: area weighting for free
    acc = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(acc, triangles[:, i], face)
    length = np.linalg.norm(acc, axis=1)
    bad = length <= 1e-12
    acc[bad] = (0.0, 0.0, 1.0)
    length[bad] = 1.0
    return (acc / length[:, None]).astype(np.float32)


def weld(vertices: Float64Array, triangles: IndexArray) -> tuple[Float64Array, IndexArray]:
    """Merge vertices closer than the weld distance; drop triangles that collapse."""
    first, inverse = weld_keys(vertices)
    welded = vertices[first]
    tris = inverse[triangles].astype(np.uint32)
    keep = (tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])
    return welded, tris[keep]


def flat_mesh(vertices: Float64Array, triangles: IndexArray, color: ColorArray) -> FeatureMesh:
    """Unshare vertices so that every triangle is flat shaded, one colour for all."""
    tri_vertices = vertices[triangles.reshape(-1)]
    tris = np.arange(len(tri_vertices), dtype=np.uint32).reshape(-1, 3)
    normals = np.repeat(triangle_normals(vertices, triangles), 3, axis=0).astype(np.float32)
    colors = np.tile(color.astype(np.uint8), (len(tri_vertices), 1))
    return FeatureMesh(tri_vertices, tris, normals, colors)


def extrude_footprint(footprint: shapely.Polygon, z_bottom: float, z_top: float) -> tuple[
    Float64Array, IndexArray
]:
    """A closed LoD1 block: the footprint polygon extruded from ``z_bottom`` to ``z_top``.

    Returns polygon-local vertices (roof, walls, floor each with their own vertices) so that
    flat per-vertex normals are exact.
    """
    footprint = shapely.geometry.polygon.orient(footprint, 1.0)  # exterior counter-clockwise
    ring = np.asarray(footprint.exterior.coords)[:-1, :2]
    holes = [np.asarray(h.coords)[:-1, :2] for h in footprint.interiors]
    rings = [ring, *holes]
    flat = np.concatenate(rings)
    ends = np.cumsum([len(r) for r in rings]).astype(np.uint32)
    cap = mapbox_earcut.triangulate_float64(flat, ends).reshape(-1, 3).astype(np.uint32)
    # earcut's winding is not promised: make the top face counter-clockwise seen from above.
    a, b, c = flat[cap[:, 0]], flat[cap[:, 1]], flat[cap[:, 2]]
    cw = ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])) < 0
    cap[cw] = cap[cw][:, [0, 2, 1]]
    n = len(flat)
    top = np.column_stack((flat, np.full(n, z_top)))
    bottom = np.column_stack((flat, np.full(n, z_bottom)))
    vertices = [top, bottom]
    triangles = [cap, cap[:, [0, 2, 1]] + n]
    base = 2 * n
    for r in rings:
        # Exterior counter-clockwise and holes clockwise (orient() did that): walls face out.
        nxt = np.roll(r, -1, axis=0)
        k = len(r)
        quad = np.empty((4 * k, 3))
        quad[0::4] = np.column_stack((r, np.full(k, z_bottom)))
        quad[1::4] = np.column_stack((nxt, np.full(k, z_bottom)))
        quad[2::4] = np.column_stack((nxt, np.full(k, z_top)))
        quad[3::4] = np.column_stack((r, np.full(k, z_top)))
        q = base + 4 * np.arange(k, dtype=np.uint32)[:, None]
        triangles.append(np.concatenate((q + [0, 1, 2], q + [0, 2, 3])))
        vertices.append(quad)
        base += 4 * k
    return np.concatenate(vertices), np.concatenate(triangles).astype(np.uint32)


def footprint_of(mesh: FeatureMesh, ground: npt.NDArray[np.bool_] | None = None) -> shapely.Polygon:
    """The feature's footprint: the union of its ground triangles seen from above, or the
    convex hull of all vertices when it has no ground surface."""
    if ground is not None and ground.any():
        tris = mesh.vertices[mesh.triangles[ground]][:, :, :2]
        polys = shapely.polygons(np.concatenate((tris, tris[:, :1]), axis=1))
        merged = shapely.union_all(polys[shapely.area(polys) > 1e-9], grid_size=1e-3)
        if isinstance(merged, shapely.Polygon) and not merged.is_empty:
            return merged
        if isinstance(merged, shapely.MultiPolygon):
            return max(merged.geoms, key=lambda g: g.area)
    hull = shapely.convex_hull(shapely.multipoints(mesh.vertices[:, :2]))
    if isinstance(hull, shapely.Polygon):
        return hull
    return shapely.Polygon()


def hausdorff_estimate(a: Float64Array, b: Float64Array) -> float:
    """Symmetric Hausdorff distance between two point samples of surfaces (upper-bounded by
    the sampling density of the samples)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    from scipy.spatial import cKDTree  # ~0.5 s to import: only where it is used

    d_ab, _ = cKDTree(b).query(a)
    d_ba, _ = cKDTree(a).query(b)
    return float(max(d_ab.max(), d_ba.max()))


def surface_samples(vertices: Float64Array, triangles: IndexArray, spacing: float) -> Float64Array:
    """Deterministic points on a mesh surface: vertices, edge midpoints, centroids, and a
    barycentric grid on triangles larger than ``spacing``."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    pts = [vertices, (a + b) / 2, (b + c) / 2, (c + a) / 2, (a + b + c) / 3]
    longest = np.maximum.reduce(
        [
            np.linalg.norm(b - a, axis=1),
            np.linalg.norm(c - b, axis=1),
            np.linalg.norm(a - c, axis=1),
        ]
    )
    big = longest > spacing
    if big.any():
        steps = np.minimum(np.ceil(longest[big] / spacing).astype(int), 64)
        for k in np.unique(steps):
            sel = np.flatnonzero(big)[steps == k]
            i, j = np.meshgrid(np.arange(k + 1), np.arange(k + 1))
            keep = (i + j) <= k
            u = (i[keep] / k)[None, :, None]
            v = (j[keep] / k)[None, :, None]
            pa, pb, pc = a[sel][:, None], b[sel][:, None], c[sel][:, None]
            pts.append((pa + u * (pb - pa) + v * (pc - pa)).reshape(-1, 3))
    return np.concatenate(pts)


def decimate(
    vertices: Float64Array, triangles: IndexArray, target_reduction: float
) -> tuple[Float64Array, IndexArray]:
    """Quadric decimation (fast_simplification) of a welded copy of the mesh."""
    welded, tris = weld(vertices, triangles)
    if len(tris) < 64:
        return welded, tris
    origin = welded.mean(axis=0)
    points, faces = fast_simplification.simplify(
        (welded - origin).astype(np.float32), tris.astype(np.int32), target_reduction
    )
    return np.asarray(points, dtype=np.float64) + origin, np.asarray(faces, dtype=np.uint32)
