"""Decoded tile content -> VTK meshes with display colours (vertex colours or an attribute's
classes), in the scene's render frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyvista as pv

from twin.readers.tileset import TileMesh
from twin.render.style import BUILDING_CLASSES, classify, linear_to_srgb

__all__ = ["TileGeometry", "tile_geometry"]

_ATTRIBUTE = {"function": "function", "height": "measuredHeight", "year": "yearOfConstruction"}


@dataclass(slots=True)
class TileGeometry:
    """What one tile content draws: a triangle mesh and/or a point cloud."""

    surfaces: pv.PolyData | None
    points: pv.PolyData | None
    bytes: int = 0


def _feature_heights(mesh: TileMesh, count: int) -> np.ndarray:
    """Per-feature height (max z − min z of its vertices in the render frame)."""
    assert mesh.feature_ids is not None
    z = mesh.positions[:, 2]
    ids = mesh.feature_ids
    top = np.full(count, -np.inf)
    bottom = np.full(count, np.inf)
    valid = (ids >= 0) & (ids < count)
    np.maximum.at(top, ids[valid], z[valid])
    np.minimum.at(bottom, ids[valid], z[valid])
    return np.where(np.isfinite(top), top - bottom, np.nan)


def _recolour(mesh: TileMesh, rgb: np.ndarray, color_by: str, language: str) -> None:
    """Colour the vertices of building features by their class of ``color_by``."""
    table = mesh.properties
    if table is None or mesh.feature_ids is None:
        return
    classes = table.get("citygml_class")
    if classes is None:
        return
    count = len(classes)
    values: Sequence[Any] | np.ndarray
    column = table.get(_ATTRIBUTE[color_by])
    if column is not None:
        values = list(column)
        if color_by == "height":
            measured = np.asarray(values, dtype=np.float64)
            geometric = _feature_heights(mesh, count)
            values = np.where((measured > 0) & (measured < 1e6), measured, geometric)
    elif color_by == "height":
        values = _feature_heights(mesh, count)
    else:
        values = [None] * count
    feature_rgb, _ = classify(color_by, values, language)
    buildings = np.array([c in BUILDING_CLASSES for c in classes], dtype=bool)
    ids = mesh.feature_ids
    inside = (ids >= 0) & (ids < count)
    target = inside.copy()
    target[inside] = buildings[ids[inside]]
    rgb[target] = feature_rgb[ids[target]]


def tile_geometry(meshes: list[TileMesh], color_by: str | None, language: str) -> TileGeometry:
    """One tile's primitives merged into a surface mesh and a point cloud."""
    surfaces: list[pv.PolyData] = []
    clouds: list[pv.PolyData] = []
    size = 0
    for mesh in meshes:
        rgb = linear_to_srgb(mesh.colors[:, :3])
        if color_by is not None:
            _recolour(mesh, rgb, color_by, language)
        points = mesh.positions.astype(np.float32)
        if mesh.mode == 4 and mesh.triangles is not None and len(mesh.triangles):
            poly = pv.PolyData.from_regular_faces(points, mesh.triangles)
            if mesh.normals is not None:
                poly.point_data["Normals"] = mesh.normals.astype(np.float32)
                poly.point_data.active_normals_name = "Normals"
            poly.point_data["rgb"] = rgb
            surfaces.append(poly)
        elif mesh.mode == 0 and len(points):
            cloud = pv.PolyData(points)
            cloud.point_data["rgb"] = rgb
            clouds.append(cloud)
        size += points.nbytes + rgb.nbytes + (
            mesh.triangles.nbytes if mesh.triangles is not None else 0)

    def merged(parts: list[pv.PolyData]) -> pv.PolyData | None:
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return pv.merge(parts, merge_points=False)

    return TileGeometry(merged(surfaces), merged(clouds), size)
