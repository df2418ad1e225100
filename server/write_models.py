"""Request and response bodies of the write API (pydantic, so the OpenAPI schema documents
them): RFC 7946 GeoJSON overlay features with the properties of docs/scenes.md ("Overlays",
the scene builder's model in twin/scene/overlays.py), and scenario variants.

Geometry checks go beyond the JSON shape: positions are [longitude, latitude(, height)] with
finite numbers in range, rings are closed and have four positions, and polygons must be valid
for GEOS (shapely), whose reason is reported (e.g. "Self-intersection[12.13 54.09]").
Polygon rings are stored in RFC 7946 winding order (exterior counterclockwise).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import shapely.geometry
import shapely.validation
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)

from twin.scene.overlays import IDENTIFIER_PATTERN, HeightMode, OverlayProperties

ID_PATTERN = IDENTIFIER_PATTERN
"""Ids of new overlay features and variants: as the scene's own ids ("warnowbruecke")."""

RecordId = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=128)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200,
                                         pattern=r"^[^\x00-\x1f\x7f]+$")]
"""An id of a scene's epoch, layer or overlay feature (published ids are not ours to shape)."""

Coordinate = Annotated[float, Strict(), Field(allow_inf_nan=False)]


def _check_position(position: list[float]) -> list[float]:
    longitude, latitude = position[0], position[1]
    if not -180.0 <= longitude <= 180.0:
        raise ValueError(
            f"longitude {longitude} is outside -180..180; positions are [longitude, latitude] "
            "or [longitude, latitude, height] in degrees (RFC 7946)"
        )
    if not -90.0 <= latitude <= 90.0:
        raise ValueError(
            f"latitude {latitude} is outside -90..90; positions are [longitude, latitude] "
            "or [longitude, latitude, height] in degrees (RFC 7946)"
        )
    return position


Position = Annotated[
    list[Coordinate],
    Field(min_length=2, max_length=3, description="[longitude, latitude] or with a height "
          "in metres (WGS 84 ellipsoid, RFC 7946)"),
    AfterValidator(_check_position),
]


def _check_ring(ring: list[list[float]]) -> list[list[float]]:
    if ring[0] != ring[-1]:
        raise ValueError(
            f"linear ring is not closed: the first position {ring[0]} differs from the last "
            f"{ring[-1]}; repeat the first position at the end (RFC 7946 3.1.6)"
        )
    return ring


LinearRing = Annotated[
    list[Position],
    Field(min_length=4, description="closed: the last position repeats the first"),
    AfterValidator(_check_ring),
]
LineCoordinates = Annotated[list[Position], Field(min_length=2)]
PolygonCoordinates = Annotated[
    list[LinearRing], Field(min_length=1, description="exterior ring, then holes")
]

MAX_POSITIONS = 50_000
"""Positions in one feature: a planner's outline, not a data import."""


def _signed_area(ring: list[list[float]]) -> float:
    """Shoelace area in degrees²: positive for a counterclockwise ring."""
    total = 0.0
    for (x0, y0, *_), (x1, y1, *_) in zip(ring, ring[1:], strict=False):
        total += x0 * y1 - x1 * y0
    return total / 2.0


def _rfc7946_winding(polygon: list[list[list[float]]]) -> list[list[list[float]]]:
    """Exterior ring counterclockwise, holes clockwise (RFC 7946 3.1.6)."""
    oriented = []
    for number, ring in enumerate(polygon):
        counterclockwise = _signed_area(ring) > 0
        wanted = number == 0
        oriented.append(ring if counterclockwise == wanted else ring[::-1])
    return oriented


class _Geometry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bbox: list[float] | None = Field(
        default=None, description="accepted and ignored: the service computes bounds itself"
    )

    def positions(self) -> list[list[float]]:
        """Every position, flattened."""
        found: list[list[float]] = []

        def walk(value: Any) -> None:
            if value and isinstance(value[0], float):
                found.append(value)
            else:
                for item in value:
                    walk(item)

        walk(getattr(self, "coordinates"))  # noqa: B009 - every subclass declares it
        return found

    @model_validator(mode="after")
    def _valid_for_geos(self) -> _Geometry:
        positions = self.positions()
        if len(positions) > MAX_POSITIONS:
            raise ValueError(
                f"{len(positions)} positions; at most {MAX_POSITIONS} in one feature (simplify "
                "the outline)"
            )
        if len({len(position) for position in positions}) > 1:
            raise ValueError(
                "mixed 2D and 3D positions; give every position a height or none"
            )
        shape = shapely.geometry.shape(self.model_dump(exclude={"bbox"}))
        if not shape.is_valid:
            raise ValueError(
                f"invalid {self.__class__.__name__} geometry: "
                f"{shapely.validation.explain_validity(shape)} (GEOS); fix self-intersections, "
                "repeated positions or rings outside their polygon"
            )
        return self


class Point(_Geometry):
    """A single position."""

    type: Literal["Point"]
    coordinates: Position


class MultiPoint(_Geometry):
    """Several positions."""

    type: Literal["MultiPoint"]
    coordinates: Annotated[list[Position], Field(min_length=1)]


class LineString(_Geometry):
    """A line through two or more positions."""

    type: Literal["LineString"]
    coordinates: LineCoordinates


class MultiLineString(_Geometry):
    """Several lines."""

    type: Literal["MultiLineString"]
    coordinates: Annotated[list[LineCoordinates], Field(min_length=1)]


class Polygon(_Geometry):
    """An area: an exterior ring and optional holes."""

    type: Literal["Polygon"]
    coordinates: PolygonCoordinates

    @model_validator(mode="after")
    def _winding(self) -> Polygon:
        self.coordinates = _rfc7946_winding(self.coordinates)
        return self


class MultiPolygon(_Geometry):
    """Several areas."""

    type: Literal["MultiPolygon"]
    coordinates: Annotated[list[PolygonCoordinates], Field(min_length=1)]

    @model_validator(mode="after")
    def _winding(self) -> MultiPolygon:
        self.coordinates = [_rfc7946_winding(polygon) for polygon in self.coordinates]
        return self


Geometry = Annotated[
    Point | MultiPoint | LineString | MultiLineString | Polygon | MultiPolygon,
    Field(discriminator="type"),
]

# -- overlay properties: the scene builder's model (twin/scene/overlays.py) --------------------


class PlannerOverlayProperties(OverlayProperties):
    """The overlay properties of docs/scenes.md ("Overlays"), as the scene's own overlay files
    have them, with the write API's height convention (RFC 7946, like the published
    overlays.geojson and CesiumJS: heights above the WGS 84 ellipsoid)."""

    height_mode: HeightMode = Field(
        default="clamp",
        description="clamp: on the terrain, positions without a height; absolute: every "
        "position carries its height in metres above the WGS 84 ellipsoid (RFC 7946)",
    )

    @model_validator(mode="after")
    def _start_before_end(self) -> PlannerOverlayProperties:
        if self.start is not None and self.end is not None:
            if _first_day(self.end) < _first_day(self.start):
                raise ValueError(f"end {self.end!r} is before start {self.start!r}")
        return self


def _first_day(value: int | str) -> date:
    """The first day of a (checked) ISO date, month or year."""
    parts = [int(part) for part in str(value).split("-")] + [1, 1]
    return date(parts[0], parts[1], parts[2])


_EXAMPLE_FEATURE = {
    "type": "Feature",
    "id": "kabutzenhof-steg",
    "geometry": {
        "type": "LineString",
        "coordinates": [[12.1268, 54.0935], [12.1281, 54.0941]],
    },
    "properties": {
        "name": "Steg am Kabutzenhof",
        "name_en": "Kabutzenhof footbridge",
        "kind": "path",
        "status": "planned",
        "start": 2027,
        "end": "2028-06",
        "cost_eur": 1_200_000,
        "description_de": "Neuer Fußweg am Wasser.",
        "description_en": "New footpath along the water.",
        "source": "https://rathaus.rostock.de/",
        "height_mode": "clamp",
    },
}


class OverlayFeature(BaseModel):
    """A planner's overlay feature: an RFC 7946 GeoJSON Feature in longitude/latitude."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE_FEATURE]})

    type: Literal["Feature"]
    id: RecordId | None = Field(
        default=None,
        description="POST: optional (generated when missing); PUT: the id in the URL or none",
    )
    geometry: Geometry
    properties: PlannerOverlayProperties
    bbox: list[float] | None = Field(
        default=None, description="accepted and ignored: the service computes bounds itself"
    )

    @model_validator(mode="after")
    def _heights(self) -> OverlayFeature:
        positions = self.geometry.positions()
        if self.properties.height_mode == "absolute":
            flat = [p for p in positions if len(p) < 3]
            if flat:
                raise ValueError(
                    f"height_mode is 'absolute' but position {flat[0]} has no height; give "
                    "[longitude, latitude, height] or use height_mode 'clamp'"
                )
        else:
            lifted = [p for p in positions if len(p) > 2]
            if lifted:
                raise ValueError(
                    f"height_mode is 'clamp' (on the terrain) but position {lifted[0]} carries "
                    "a height: drop it, or set height_mode to 'absolute'"
                )
        return self

    def to_feature(self, feature_id: str) -> dict[str, Any]:
        """The Feature as stored and served (no bbox, the given id)."""
        return {
            "type": "Feature",
            "id": feature_id,
            "geometry": self.geometry.model_dump(exclude={"bbox"}),
            "properties": self.properties.model_dump(),
        }


# -- scenario variants -----------------------------------------------------------------------

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Title(BaseModel):
    """A title in German and English."""

    model_config = ConfigDict(extra="forbid")

    de: Name
    en: Name


class Description(BaseModel):
    """A description in German and English (may be empty)."""

    model_config = ConfigDict(extra="forbid")

    de: Text = ""
    en: Text = ""


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


class VariantBody(BaseModel):
    """A scenario variant as a planner writes it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "bruecke-ohne-quartier",
                    "title": {"de": "Brücke ohne Quartier", "en": "Bridge without quarter"},
                    "description": {"de": "Nur die Brücke.", "en": "Only the bridge."},
                    "base_epoch": "geplant",
                    "layers": ["terrain", "buildings", "bridge"],
                    "overlays": ["warnowbruecke"],
                    "author": "Amt für Stadtplanung",
                }
            ]
        },
    )

    id: RecordId | None = Field(
        default=None,
        description="POST: optional (generated when missing); PUT: the id in the URL or none",
    )
    title: Title
    description: Description = Field(default_factory=Description)
    base_epoch: Label = Field(description="the scene epoch the variant starts from")
    layers: Annotated[list[Label], AfterValidator(_unique)] = Field(
        description="the scene's layers shown (a subset of the scene's layers)"
    )
    overlays: Annotated[list[Label], AfterValidator(_unique)] = Field(
        default_factory=list,
        description="overlay feature ids shown (published with the scene or a planner's)",
    )
    author: Name = Field(description="who made the variant (person or office)")

    def document(self) -> dict[str, Any]:
        """What the store keeps (everything but the id)."""
        return self.model_dump(exclude={"id"})


class Variant(BaseModel):
    """A stored scenario variant."""

    id: str
    scene: str
    title: Title
    description: Description
    base_epoch: str
    layers: list[str]
    overlays: list[str]
    author: str
    created: str = Field(description="RFC 3339 UTC")
    updated: str = Field(description="RFC 3339 UTC")
    revision: int = Field(description="1 when created, +1 per update; the ETag")


class VariantList(BaseModel):
    """A scene's scenario variants."""

    scene: str
    variants: list[Variant]
