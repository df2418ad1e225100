"""The tour.json and overlays.geojson documents of a published scene (docs/scenes.md).

Pure functions from a loaded scene to JSON-ready dicts; the builder writes them. Both are
deterministic: features sorted by id, keys sorted where their order means nothing, numbers
rounded (1e-7° ≈ 1 cm, 0.01 m), so the same scene gives the same bytes through
:func:`document_bytes`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from twin.crs import EcefTransformer, ecef_to_geodetic
from twin.errors import SceneError, TwinError
from twin.scene.camera import CAMERA, resolve_camera, scene_transformer
from twin.scene.definition import Scene
from twin.scene.messages import format_point
from twin.scene.overlays import OverlayFeature

FloatArray = npt.NDArray[np.float64]
TerrainHeights = Callable[[FloatArray, FloatArray], FloatArray]
"""(easting, northing arrays, EPSG:25833) -> DHHN2016 terrain heights; NaN where unknown."""

CLAMP_SEGMENT_LENGTH = 10.0
"""Clamped lines and outlines get a vertex at least every this many metres, so that they
follow the terrain between their corners instead of cutting through hills."""


def tour_document(scene: Scene, vertical: EcefTransformer) -> dict[str, Any]:
    """tour.json: the stops numbered from 1, cameras resolved for CesiumJS and the renderer.

    ``vertical`` is the transformer of scene coordinates (camera.scene_transformer(geoid)):
    it fixes the ellipsoidal heights, so it must be the one the scene's tiles were built with.
    A stop without an epoch shows the scene's default epoch. ``sources`` (the narration's
    references) is published with each stop, so the viewer can show where facts come from.
    """
    stops = []
    for index, stop in enumerate(scene.tour.stops):
        stops.append(
            {
                "number": index + 1,
                "id": stop.id,
                "title": stop.title.to_dict(),
                "narration": stop.narration.to_dict(),
                "dwell": float(stop.dwell),
                "epoch": scene.stop_epoch(index),
                "highlight": list(stop.highlight),
                "camera": resolve_camera(stop.camera, vertical).to_json(),
                "sources": list(stop.sources),
            }
        )
    return {"scene": scene.id, "title": scene.tour.title.to_dict(), "stops": stops}


def overlay_document(
    scene: Scene,
    overlays: Sequence[OverlayFeature],
    heights: TerrainHeights | None,
    vertical: EcefTransformer | None = None,
) -> dict[str, Any]:
    """overlays.geojson: the scene's overlay features in lon/lat with ellipsoidal heights.

    Clamped features are cut to the scene area, densified (CLAMP_SEGMENT_LENGTH) and take the
    terrain height from ``heights`` (the builder's terrain grid; None when the scene has no
    terrain layer, which only absolute features allow); absolute features keep their
    DHHN2016 heights. Every height then becomes ellipsoidal through ``vertical`` (default:
    camera.scene_transformer(), EGM96 — pass the one the tiles were built with). Polygons wind
    as RFC 7946 asks (outer rings counter-clockwise); features come sorted by id.
    """
    vertical = vertical if vertical is not None else scene_transformer()
    area = scene.area.shape
    features = []
    for feature in sorted(overlays, key=lambda f: f.id):
        geometry = _published_geometry(scene, feature, area, heights, vertical)
        if geometry is None:
            continue
        features.append(
            {
                "type": "Feature",
                "id": feature.id,
                "geometry": geometry,
                "properties": feature.properties.to_geojson(),
            }
        )
    return {"type": "FeatureCollection", "features": features}


def document_bytes(document: dict[str, Any]) -> bytes:
    """The canonical bytes of a published JSON document: UTF-8, sorted keys, no NaN."""
    text = json.dumps(document, ensure_ascii=False, sort_keys=True, allow_nan=False, indent=1)
    return (text + "\n").encode("utf-8")


def _published_geometry(
    scene: Scene,
    feature: OverlayFeature,
    area: shapely.Polygon,
    heights: TerrainHeights | None,
    vertical: EcefTransformer,
) -> dict[str, Any] | None:
    geometry = feature.geometry
    if feature.properties.height_mode == "clamp" and heights is None:
        raise SceneError(
            scene.file,
            f"overlays (feature {feature.id!r})",
            "the feature is clamped to the "
            'terrain but the scene has no terrain layer: add one (kind = "terrain") or give '
            "the feature absolute heights",
        )
    if feature.properties.height_mode == "clamp":
        if not area.covers(geometry):
            geometry = _clip(geometry, area)
            if geometry is None:
                return None
        if geometry.geom_type not in ("Point", "MultiPoint"):
            geometry = shapely.segmentize(geometry, CLAMP_SEGMENT_LENGTH)
    geometry = _wound(geometry)
    grid = shapely.get_coordinates(geometry, include_z=feature.properties.height_mode == "absolute")
    if heights is not None and feature.properties.height_mode == "clamp":
        terrain = np.asarray(heights(grid[:, 0].copy(), grid[:, 1].copy()), dtype=np.float64)
        if terrain.shape != (len(grid),):
            raise TwinError(
                f"the terrain height function gave {terrain.shape} values for {len(grid)} "
                "positions: it must return one height per position"
            )
        missing = ~np.isfinite(terrain)
        if missing.any():
            bad = grid[int(np.flatnonzero(missing)[0])]
            raise SceneError(
                scene.file,
                f"overlays (feature {feature.id!r})",
                f"no terrain height at {format_point(bad)}: the terrain grid must cover the "
                f"scene area ({scene.area.describe()}); rebuild the terrain layer",
            )
        grid = np.column_stack([grid, terrain])
    lon, lat, height = ecef_to_geodetic(vertical.to_ecef(grid))
    # Adding 0.0 turns -0.0 into 0.0: the same number always gives the same bytes.
    published = 0.0 + np.column_stack(
        [
            np.round(lon, CAMERA.degrees_decimals),
            np.round(lat, CAMERA.degrees_decimals),
            np.round(height, CAMERA.metres_decimals),
        ]
    )
    placed = shapely.set_coordinates(shapely.force_3d(geometry), published)
    document: dict[str, Any] = _json_geometry(mapping(placed))
    return document


def _clip(geometry: BaseGeometry, area: shapely.Polygon) -> BaseGeometry | None:
    """The part of a (2D) geometry inside the area, in the geometry's own dimension."""
    clipped = shapely.intersection(geometry, area)
    dimension = shapely.get_dimensions(geometry)
    if clipped.geom_type == "GeometryCollection":
        parts = [g for g in shapely.get_parts(clipped) if shapely.get_dimensions(g) == dimension]
        clipped = shapely.union_all(parts) if parts else shapely.GeometryCollection()
    if clipped.is_empty or shapely.get_dimensions(clipped) != dimension:
        return None
    return clipped


def _wound(geometry: BaseGeometry) -> BaseGeometry:
    """RFC 7946 winding: exterior rings counter-clockwise, holes clockwise."""
    if geometry.geom_type == "Polygon":
        return orient(geometry, sign=1.0)
    if geometry.geom_type == "MultiPolygon":
        return shapely.MultiPolygon([orient(p, sign=1.0) for p in geometry.geoms])
    return geometry


def _json_geometry(value: Any) -> Any:
    """shapely's mapping() uses tuples; GeoJSON wants lists (and plain floats)."""
    if isinstance(value, dict):
        return {key: _json_geometry(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_json_geometry(item) for item in value]
    if isinstance(value, np.floating):
        return float(value)
    return value
