"""A scene's area of interest in the coordinates a pipeline works in.

Scene areas are polygons in EPSG:25833. A pipeline tests its data against the area either in
the source CRS (LiDAR points, before they are placed) or in the tileset's local east-north-up
frame (CityGML objects, after placement, whatever CRS and axis order the file had). Edges are
densified before the transformation so that a straight edge stays where it was.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from shapely.geometry import Polygon

from twin.crs import ecef_to_enu_matrix, geodetic_to_ecef

__all__ = ["area_in_crs", "area_in_frame", "contains_xy"]

_DENSIFY_M = 10.0
"""Longest edge (metres of the area's CRS) transformed as a straight line."""


@lru_cache(maxsize=64)
def _transformer(source: str, target: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(source, target, always_xy=True)


def area_in_crs(area: Polygon, area_crs: str, target: pyproj.CRS) -> Polygon:
    """``area`` (in ``area_crs``) in ``target``'s horizontal coordinates, x = easting or
    longitude first (the order LAS files use)."""
    target_text = target.to_wkt()
    if pyproj.CRS.from_user_input(area_crs).equals(target, ignore_axis_order=True):
        return area
    dense = shapely.segmentize(area, _DENSIFY_M)
    transformer = _transformer(area_crs, target_text)
    return shapely.transform(dense, lambda xy: np.column_stack(transformer.transform(*xy.T)))


def area_in_frame(area: Polygon, area_crs: str, origin_ecef: npt.NDArray[np.float64]) -> Polygon:
    """``area`` (in ``area_crs``) in the local east-north-up frame at ``origin_ecef``, on the
    ellipsoid (a height of a few hundred metres moves it by millimetres)."""
    dense = shapely.segmentize(area, _DENSIFY_M)
    to_lonlat = _transformer(area_crs, "EPSG:4326")
    to_enu = ecef_to_enu_matrix(np.asarray(origin_ecef, dtype=np.float64).reshape(3))

    def convert(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lon, lat = to_lonlat.transform(xy[:, 0], xy[:, 1])
        ecef = geodetic_to_ecef(np.asarray(lon), np.asarray(lat), np.zeros(len(xy)))
        enu = ecef @ to_enu[:3, :3].T + to_enu[:3, 3]
        return np.asarray(enu[:, :2])

    return shapely.transform(dense, convert)


def contains_xy(
    area: Polygon, x: npt.ArrayLike, y: npt.ArrayLike
) -> npt.NDArray[np.bool_]:
    """Which points lie in ``area`` (on the boundary counts as inside)."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    xmin, ymin, xmax, ymax = area.bounds
    inside = (xs >= xmin) & (xs <= xmax) & (ys >= ymin) & (ys <= ymax)
    if area.equals(shapely.box(xmin, ymin, xmax, ymax)) or not inside.any():
        return inside
    shapely.prepare(area)
    candidates = np.flatnonzero(inside)
    inside[candidates] = shapely.intersects_xy(area, xs[candidates], ys[candidates])
    return inside
