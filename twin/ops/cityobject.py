"""From a city object's polygons to one triangle mesh in the local metric frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.constants import SURFACE_COLORS
from twin.model.city import CityObject
from twin.ops.mesh import FeatureMesh, vertex_normals_flat
from twin.ops.triangulate import PolygonSoup, closed_and_volume, triangulate_soup

ToLocal = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]
"""Source CRS coordinates (n, 3) -> local east-north-up metres (n, 3)."""


def srgb_to_linear(rgb: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """sRGB components 0..1 to linear 0..1 (glTF vertex colours are linear)."""
    c = np.asarray(rgb, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_bytes(rgb: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """sRGB 0..1 colour to linear RGBA bytes for COLOR_0."""
    lin = srgb_to_linear(rgb)
    return np.append(np.round(lin * 255.0), 255).astype(np.uint8)


KIND_COLORS: dict[str, npt.NDArray[np.uint8]] = {
    kind: linear_bytes(np.array(rgb) / 255.0) for kind, rgb in SURFACE_COLORS.items()
}
BLOCK_COLOR = KIND_COLORS["wall"]


@dataclass(slots=True)
class ObjectMesh:
    """The triangulated object, which of its triangles are ground, and what was dropped."""

    mesh: FeatureMesh
    ground: npt.NDArray[np.bool_]
    degenerate_rings: int
    flipped: bool
    ground_rings: list[npt.NDArray[np.float64]]
    """Exterior rings of the ground surfaces in the local frame (for footprints)."""


def mesh_city_objects(
    objects: Sequence[CityObject], to_local: Sequence[ToLocal]
) -> list[ObjectMesh]:
    """Triangulate every surface of a batch of objects (in source coordinates, where the
    polygons are planar), move the vertices to the local frame with each object's
    ``to_local``, and orient closed shells outward. Vectorised over the whole batch."""
    polygons = [(s.exterior, s.interiors) for obj in objects for s in obj.surfaces]
    surfaces = [s for obj in objects for s in obj.surfaces]
    surface_object = np.repeat(
        np.arange(len(objects)), [len(obj.surfaces) for obj in objects]
    ).astype(np.int64)
    soup = PolygonSoup.from_polygons(polygons)
    tri = triangulate_soup(soup)
    # Place: one transform call per run of objects that share a transformer.
    vertex_object = np.repeat(
        surface_object, np.add.reduceat(soup.ring_lengths, soup.polygon_first_ring)
        if len(surfaces) else np.zeros(0, np.int64)
    )
    local = np.empty_like(soup.vertices)
    i = 0
    while i < len(objects):
        j = i
        while j + 1 < len(objects) and to_local[j + 1] is to_local[i]:
            j += 1
        mask = (vertex_object >= i) & (vertex_object <= j)
        if mask.any():
            local[mask] = to_local[i](soup.vertices[mask])
        i = j + 1
    triangle_object = surface_object[tri.triangle_polygon]
    closed, volume = closed_and_volume(local, tri.triangles, triangle_object, len(objects))
    # Rings should be counter-clockwise seen from outside, but real files get it wrong: a
    # closed shell with negative volume is inside out, so turn it around as a whole.
    flipped = closed & (volume < 0)
    triangles = tri.triangles.copy()
    flip = flipped[triangle_object]
    triangles[flip] = triangles[flip][:, [0, 2, 1]]
    normals = vertex_normals_flat(local, triangles)
    kinds = np.array([s.kind for s in surfaces], dtype=object)
    # One palette row per distinct colour (a few per batch), one index per surface.
    palette: dict[Any, int] = {}
    rows: list[npt.NDArray[np.uint8]] = []
    surface_color: list[int] = []
    for surface in surfaces:
        key = surface.color if surface.color is not None else surface.kind
        row = palette.get(key)
        if row is None:
            row = palette[key] = len(rows)
            rows.append(
                linear_bytes(surface.color)
                if surface.color is not None
                else KIND_COLORS.get(surface.kind, KIND_COLORS["other"])
            )
        surface_color.append(row)
    colors = (
        np.array(rows, dtype=np.uint8)[np.array(surface_color, dtype=np.intp)]
        if surfaces else np.zeros((0, 4), np.uint8)
    )
    vertex_surface = np.repeat(
        np.arange(len(surfaces)), np.add.reduceat(soup.ring_lengths, soup.polygon_first_ring)
    ) if len(surfaces) else np.zeros(0, np.int64)
    vertex_colors = colors[vertex_surface] if len(surfaces) else np.zeros((0, 4), np.uint8)
    ground_triangle = (kinds == "ground")[tri.triangle_polygon] if len(surfaces) else np.zeros(
        0, bool
    )
    degenerate_per_object = np.bincount(
        surface_object[tri.degenerate], minlength=len(objects)
    )
    is_ground = kinds == "ground"
    ground_rings: list[list[npt.NDArray[np.float64]]] = [[] for _ in objects]
    ext_starts = soup.ring_starts[soup.polygon_first_ring]
    ext_lengths = soup.ring_lengths[soup.polygon_first_ring]
    for k in np.flatnonzero(is_ground & ~tri.degenerate):
        start = ext_starts[k]
        ground_rings[surface_object[k]].append(local[start:start + ext_lengths[k]])
    # Keep only vertices that triangles use (degenerate rings leave theirs behind), then slice
    # the batch back into objects: the vertices of an object are contiguous.
    used = np.zeros(len(local), dtype=bool)
    used[triangles.reshape(-1)] = True
    remap = np.cumsum(used, dtype=np.int64) - 1
    kept_object = vertex_object[used]
    kept_local, kept_normals, kept_colors = local[used], normals[used], vertex_colors[used]
    kept_triangles = remap[triangles]
    objects_range = np.arange(len(objects) + 1)
    v_bounds = np.searchsorted(kept_object, objects_range).tolist()
    t_bounds = np.searchsorted(triangle_object, objects_range).tolist()
    degenerate_list, flipped_list = degenerate_per_object.tolist(), flipped.tolist()
    result = []
    for o in range(len(objects)):
        v0, v1 = v_bounds[o], v_bounds[o + 1]
        t0, t1 = t_bounds[o], t_bounds[o + 1]
        mesh = FeatureMesh(
            kept_local[v0:v1],
            (kept_triangles[t0:t1] - v0).astype(np.uint32),
            kept_normals[v0:v1],
            kept_colors[v0:v1],
        )
        result.append(
            ObjectMesh(
                mesh,
                ground_triangle[t0:t1],
                degenerate_list[o],
                flipped_list[o],
                ground_rings[o],
            )
        )
    return result
