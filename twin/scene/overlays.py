"""Project overlays (``scenes/overlays/*.geojson``): loading and validation.

An overlay file is an RFC 7946 FeatureCollection in longitude/latitude, or in EPSG:25833 when
it says so in a top-level ``crs`` member (docs/scenes.md). Every feature carries a string
``id`` and the properties of :class:`OverlayProperties`. Loading checks everything a scene
build would otherwise trip over later — JSON syntax (with line and column), the GeoJSON
structure, coordinates that are out of range or look swapped, invalid polygons (with the
reason), unknown statuses — and names the file, the feature index and id, and the fix.

Geometries are kept in EPSG:25833 (easting, northing and, for ``absolute`` features, the
DHHN2016 height), the frame scene areas, terrain grids and cameras use.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from twin.crs import parse_srs_name
from twin.errors import CRSError, SceneError
from twin.scene.messages import display_path, format_point, scene_error_from_pydantic

IDENTIFIER_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
"""Ids of scenes, layers, epochs, stops and overlay features: they end up in URLs and paths."""

OverlayKind = Literal["bridge", "district", "quay", "path", "info-point"]
OverlayStatus = Literal["planned", "under construction", "done"]
HeightMode = Literal["clamp", "absolute"]

GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
LON_LAT = "lon/lat"
UTM33 = "EPSG:25833"
CRS_MEMBER_EXAMPLE = (
    '"crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::25833"}}'
)

# Plausible EPSG:25833 coordinates for Germany and its neighbours (easting, northing): wider
# than zone 33 itself, because the state grids run on past the zone edges.
UTM33_EASTING_RANGE = (0.0, 1_000_000.0)
UTM33_NORTHING_RANGE = (5_000_000.0, 6_500_000.0)
# Germany in longitude/latitude: a position that lies here only after swapping its two values
# was written latitude first.
GERMANY_LON_RANGE = (5.5, 15.5)
GERMANY_LAT_RANGE = (47.0, 55.5)


def _check_date(value: str | int | None) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date: write a year (2026) or an ISO date")
    if isinstance(value, int):
        if not 1000 <= value <= 2999:
            raise ValueError(f"{value} is not a plausible year")
        return value
    match = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", value)
    if match is None:
        raise ValueError(
            f"{value!r} is not a date: write a year (2026), a month (2026-09) or a day (2026-09-30)"
        )
    year, month, day = (int(part) if part else 1 for part in match.groups())
    try:
        datetime.date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date ({exc})") from None
    return value


def _check_url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not a web address: give the source as https://…")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
DateOrYear = Annotated[str | int | None, AfterValidator(_check_date)]


class OverlayProperties(BaseModel):
    """The properties every overlay feature carries (docs/scenes.md, "Overlays")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text = Field(description="German proper name")
    name_en: Text = Field(description="English name")
    kind: OverlayKind
    status: OverlayStatus
    start: DateOrYear = Field(default=None, description="ISO date or year; null if unknown")
    end: DateOrYear = Field(default=None, description="ISO date or year; null if open")
    cost_eur: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    description_de: Text
    description_en: Text
    source: Annotated[str, AfterValidator(_check_url)] = Field(description="URL of the source")
    height_mode: HeightMode = Field(
        default="clamp",
        description="clamp: on the terrain; absolute: positions carry a DHHN2016 height",
    )

    def to_geojson(self) -> dict[str, Any]:
        """The properties as published, keys sorted."""
        return dict(sorted(self.model_dump().items()))


@dataclass(frozen=True)
class OverlayFeature:
    """One project feature: its id, its place in the file, properties and geometry."""

    id: str
    index: int
    """Position in the file's ``features`` list (for messages)."""
    properties: OverlayProperties
    geometry: BaseGeometry
    """EPSG:25833 easting/northing; with the DHHN2016 height as z for ``absolute`` features."""


@dataclass(frozen=True)
class OverlayCollection:
    """A validated overlay file."""

    path: Path
    crs: str
    """``lon/lat`` (RFC 7946) or ``EPSG:25833``: how the file writes its positions."""
    features: tuple[OverlayFeature, ...]

    @property
    def ids(self) -> list[str]:
        """Feature ids in file order."""
        return [feature.id for feature in self.features]

    def get(self, feature_id: str) -> OverlayFeature | None:
        """The feature with this id, or None."""
        return next((f for f in self.features if f.id == feature_id), None)


def load_overlays(path: Path | str) -> OverlayCollection:
    """Read and validate an overlay GeoJSON file; SceneError names file, feature and field."""
    path = Path(path)
    file = display_path(path)
    document = _read_json(path, file)
    if not isinstance(document, dict):
        raise SceneError(file, "", "not a GeoJSON FeatureCollection (the top level is no object)")
    kind = document.get("type")
    if kind == "Feature":
        raise SceneError(
            file,
            "type",
            'a single Feature: wrap it as {"type": "FeatureCollection", "features": [ … ]}',
        )
    if kind != "FeatureCollection":
        raise SceneError(file, "type", f'{kind!r} is not "FeatureCollection"')
    crs = _declared_crs(document.get("crs"), file)
    raw_features = document.get("features")
    if not isinstance(raw_features, list):
        raise SceneError(file, "features", 'missing or not a list: add "features": [ … ]')
    features: list[OverlayFeature] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_features):
        feature = _parse_feature(raw, index, crs, file)
        if feature.id in seen:
            raise SceneError(
                file,
                f"features[{index}].id",
                f"{feature.id!r} is also the id of features[{seen[feature.id]}]: "
                "ids must be unique",
            )
        seen[feature.id] = index
        features.append(feature)
    return OverlayCollection(path, crs, tuple(features))


# --- reading --------------------------------------------------------------------------------


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> float:
    raise ValueError(name)


def _read_json(path: Path, file: str) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SceneError(file, "", "overlay file not found: check the path") from None
    except OSError as exc:
        raise SceneError(file, "", f"cannot read the file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SceneError(
            file, f"byte {exc.start}", "not UTF-8 text: save the file as UTF-8 (RFC 7946)"
        ) from None
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise SceneError(
            file,
            f"line {exc.lineno}, column {exc.colno}",
            f"not valid JSON ({exc.msg}): fix the syntax there",
        ) from None
    except _DuplicateKeyError as exc:
        raise SceneError(
            file, "", f"the key {exc.args[0]!r} appears twice in one JSON object: keep one"
        ) from None
    except ValueError as exc:
        raise SceneError(
            file, "", f"{exc.args[0]} is not a JSON number: write a finite number or null"
        ) from None


def _declared_crs(member: Any, file: str) -> str:
    if member is None:
        return LON_LAT
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if not isinstance(member, dict) or member.get("type") != "name" or not isinstance(name, str):
        raise SceneError(file, "crs", f"not a named CRS: write {CRS_MEMBER_EXAMPLE}")
    way_out = (
        "overlays are longitude/latitude (RFC 7946, no crs member) or EPSG:25833: "
        "reproject the file, e.g. ogr2ogr -t_srs EPSG:4326"
    )
    try:
        source = parse_srs_name(name)
    except CRSError:
        raise SceneError(file, "crs.properties.name", f"unknown CRS {name!r}: {way_out}") from None
    horizontal = source.horizontal.to_authority()
    vertical = source.vertical.to_epsg() if source.vertical is not None else None
    if horizontal in (("OGC", "CRS84"), ("EPSG", "4326")) and vertical is None:
        # EPSG:4326 officially puts latitude first; GeoJSON files that name it (the 2008
        # spec's habit) write longitude first all the same, and swapped files are caught below.
        return LON_LAT
    if horizontal == ("EPSG", "25833") and vertical in (None, 7837):
        return UTM33
    raise SceneError(file, "crs.properties.name", f"{name!r} is not accepted: {way_out}")


# --- features -------------------------------------------------------------------------------


def _parse_feature(raw: Any, index: int, crs: str, file: str) -> OverlayFeature:
    where = f"features[{index}]"
    if not isinstance(raw, dict) or raw.get("type") != "Feature":
        raise SceneError(file, where, 'not a GeoJSON Feature (needs "type": "Feature")')
    feature_id = raw.get("id")
    if not isinstance(feature_id, str) or re.fullmatch(IDENTIFIER_PATTERN, feature_id) is None:
        raise SceneError(
            file,
            f"{where}.id",
            f"{feature_id!r} is not a valid feature id: give every feature a string id of "
            "lower-case letters, digits and '-' (e.g. \"warnowbruecke\")",
        )
    where = f"{where} (id {feature_id!r})"
    raw_properties = raw.get("properties")
    if not isinstance(raw_properties, dict):
        raise SceneError(file, f"{where}.properties", "missing or not an object")
    try:
        properties = OverlayProperties.model_validate(raw_properties)
    except PydanticValidationError as exc:
        raise scene_error_from_pydantic(
            exc, file, OverlayProperties, prefix=(f"{where}.properties",)
        ) from None
    geometry = _parse_geometry(raw.get("geometry"), f"{where}.geometry", crs, properties, file)
    return OverlayFeature(feature_id, index, properties, geometry)


def _parse_geometry(
    raw: Any, where: str, crs: str, properties: OverlayProperties, file: str
) -> BaseGeometry:
    if not isinstance(raw, dict):
        raise SceneError(file, where, "missing: every overlay feature needs a geometry")
    kind = raw.get("type")
    if kind not in GEOMETRY_TYPES:
        raise SceneError(
            file, f"{where}.type", f"{kind!r} is not supported: use {', '.join(GEOMETRY_TYPES)}"
        )
    coordinates = raw.get("coordinates")
    depth = {
        "Point": 0,
        "MultiPoint": 1,
        "LineString": 1,
        "MultiLineString": 2,
        "Polygon": 2,
        "MultiPolygon": 3,
    }[kind]
    _check_structure(coordinates, kind, depth, f"{where}.coordinates", file)
    positions = list(_walk_positions(coordinates, depth, f"{where}.coordinates", file))
    dimensions = {len(values) for _, values in positions}
    if properties.height_mode == "absolute" and dimensions != {3}:
        place = next(p for p, values in positions if len(values) != 3)
        raise SceneError(
            file,
            place,
            "height_mode is 'absolute' but this position has no height: add the DHHN2016 "
            "height as the third value",
        )
    if properties.height_mode == "clamp" and dimensions != {2}:
        place = next(p for p, values in positions if len(values) != 2)
        raise SceneError(
            file,
            place,
            "height_mode is 'clamp' (on the terrain) but this position carries a height: "
            "drop it, or set height_mode to 'absolute'",
        )
    array = np.array([values for _, values in positions], dtype=np.float64)
    _check_ranges(array, [p for p, _ in positions], crs, file)

    source_geometry = shape({"type": kind, "coordinates": coordinates})
    if kind in ("Polygon", "MultiPolygon") and not shapely.is_valid(source_geometry):
        reason = shapely.is_valid_reason(source_geometry)
        raise SceneError(
            file,
            where,
            f"invalid {kind} ({reason}): fix the outline (no self-intersections, "
            "holes inside the shell)",
        )
    if kind in ("LineString", "MultiLineString") and shapely.length(source_geometry) == 0.0:
        raise SceneError(file, where, f"the {kind} has zero length: give distinct positions")

    if crs == UTM33:
        return source_geometry
    grid = _lonlat_to_utm33(array[:, 0], array[:, 1])
    replaced = iter(np.column_stack([grid, array[:, 2:]]).tolist())
    return shape({"type": kind, "coordinates": _replace_positions(coordinates, depth, replaced)})


def _check_structure(value: Any, kind: str, depth: int, where: str, file: str) -> None:
    """Nesting, counts, closed rings; positions are checked by _walk_positions."""
    if depth == 0:
        return
    if not isinstance(value, list):
        raise SceneError(file, where, "not a list of positions")
    if kind in ("MultiPoint", "MultiLineString", "MultiPolygon") and not value:
        raise SceneError(file, where, f"an empty {kind}: give at least one part")
    part_kind = {
        "MultiPoint": "Point",
        "MultiLineString": "LineString",
        "MultiPolygon": "Polygon",
        "Polygon": "ring",
    }.get(kind)
    if kind == "LineString" and len(value) < 2:
        raise SceneError(file, where, "a LineString needs at least 2 positions")
    if kind == "ring":
        if len(value) < 4:
            raise SceneError(file, where, "a polygon ring needs at least 4 positions (closed)")
        if isinstance(value[0], list) and value[0] != value[-1]:
            raise SceneError(
                file, where, "the ring is not closed: repeat the first position at the end"
            )
    if kind == "Polygon" and not value:
        raise SceneError(file, where, "a Polygon needs its outer ring")
    if part_kind is None:
        return
    for index, part in enumerate(value):
        _check_structure(part, part_kind, depth - 1, f"{where}[{index}]", file)


def _walk_positions(
    value: Any, depth: int, where: str, file: str
) -> Iterator[tuple[str, list[float]]]:
    if depth == 0:
        yield where, _position(value, where, file)
        return
    for index, part in enumerate(value):
        yield from _walk_positions(part, depth - 1, f"{where}[{index}]", file)


def _position(value: Any, where: str, file: str) -> list[float]:
    numbers = (
        isinstance(value, list)
        and len(value) in (2, 3)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )
    if not numbers:
        raise SceneError(
            file,
            where,
            f"{value!r} is not a position: write [longitude, latitude] (or [easting, northing] "
            "in EPSG:25833), plus a DHHN2016 height for absolute features",
        )
    if not all(math.isfinite(v) for v in value):
        raise SceneError(file, where, f"{value!r} is not finite: give real coordinates")
    return [float(v) for v in value]


def _replace_positions(value: Any, depth: int, replaced: Iterator[list[float]]) -> Any:
    if depth == 0:
        return next(replaced)
    return [_replace_positions(part, depth - 1, replaced) for part in value]


def _check_ranges(
    array: npt.NDArray[np.float64], places: Sequence[str], crs: str, file: str
) -> None:
    x, y = array[:, 0], array[:, 1]
    if crs == LON_LAT:
        swapped = (
            (x >= GERMANY_LAT_RANGE[0])
            & (x <= GERMANY_LAT_RANGE[1])
            & (y >= GERMANY_LON_RANGE[0])
            & (y <= GERMANY_LON_RANGE[1])
        )
        if swapped.any():
            i = int(np.flatnonzero(swapped)[0])
            raise SceneError(
                file,
                places[i],
                f"{format_point(array[i, :2])} looks like latitude, longitude: GeoJSON writes "
                "longitude first (e.g. [12.13, 54.09] in Rostock)",
            )
        outside = (np.abs(x) > 180.0) | (np.abs(y) > 90.0)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            metres = _in_utm33_range(array[i : i + 1, 0], array[i : i + 1, 1])[0]
            way_out = (
                f"these look like EPSG:25833 metres: declare them with {CRS_MEMBER_EXAMPLE}"
                if metres
                else "longitude must lie in -180…180 and latitude in -90…90"
            )
            raise SceneError(
                file, places[i], f"{format_point(array[i, :2])} is out of range: {way_out}"
            )
        return
    lon_lat_like = (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0)
    if lon_lat_like.any():
        i = int(np.flatnonzero(lon_lat_like)[0])
        raise SceneError(
            file,
            places[i],
            f"{format_point(array[i, :2])} looks like longitude/latitude, but the file declares "
            "EPSG:25833: drop the crs member or convert the positions to metres",
        )
    northing_first = _in_utm33_range(y, x) & ~_in_utm33_range(x, y)
    if northing_first.any():
        i = int(np.flatnonzero(northing_first)[0])
        raise SceneError(
            file,
            places[i],
            f"{format_point(array[i, :2])} looks like (northing, easting): EPSG:25833 "
            "positions are written easting first",
        )
    bad = ~_in_utm33_range(x, y)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SceneError(
            file,
            places[i],
            f"{format_point(array[i, :2])} is not a plausible EPSG:25833 position "
            "(easting 0–1,000,000 m, northing 5,000,000–6,500,000 m)",
        )


def _in_utm33_range(
    easting: npt.NDArray[np.float64], northing: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    return (
        (easting > UTM33_EASTING_RANGE[0])
        & (easting < UTM33_EASTING_RANGE[1])
        & (northing > UTM33_NORTHING_RANGE[0])
        & (northing < UTM33_NORTHING_RANGE[1])
    )


@functools.lru_cache(maxsize=1)
def _utm33_from_lonlat() -> pyproj.Transformer:
    # ETRS89 geographic -> ETRS89 / UTM 33N: a pure projection. RFC 7946 positions are WGS 84;
    # like the rest of the project (twin/crs.py) WGS 84 and ETRS89 are taken as one datum.
    return pyproj.Transformer.from_crs(
        pyproj.CRS.from_epsg(4258), pyproj.CRS.from_epsg(25833), always_xy=True
    )


def _lonlat_to_utm33(
    lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    easting, northing = _utm33_from_lonlat().transform(lon, lat)
    return np.column_stack([easting, northing]).astype(np.float64)
