"""Plain data for city models: what the CityGML reader yields and the pipeline consumes.

Coordinates stay in the source CRS (as written in the file, but always x=easting/longitude,
y=northing/latitude: the reader swaps lat/lon of geographic CRSs) until the pipeline
transforms them; nothing here knows about files or tiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

Ring = npt.NDArray[np.float64]
"""(n, 3) float64 ring of a polygon, closing point removed, n >= 3."""

AttributeValue = str | int | float | bool
"""Feature attribute values: CityGML dates stay ISO strings."""

# Semantic kinds of a surface, from the CityGML boundary surface classes (Wall/Roof/Ground/
# Closure/... Surface), and "terrain" for relief triangles, "other" for unclassified geometry.
SURFACE_KINDS = (
    "wall",
    "roof",
    "ground",
    "closure",
    "floor",
    "ceiling",
    "outer_floor",
    "outer_ceiling",
    "interior_wall",
    "door",
    "window",
    "terrain",
    "other",
)


@dataclass(slots=True)
class Surface:
    """One planar polygon with optional holes, its semantic kind and appearance colour."""

    exterior: Ring
    interiors: tuple[Ring, ...] = ()
    kind: str = "other"
    color: tuple[float, float, float] | None = None
    """X3D diffuse colour (linear 0..1 RGB) from a CityGML appearance, if any."""
    gml_id: str | None = None
    line: int | None = None
    """Source line of the polygon, for error messages."""


@dataclass(slots=True)
class CityObject:
    """A top-level city object (building, bridge, relief, ...) with all its geometry.

    Building and bridge parts are folded into their parent: their surfaces are appended and
    their ids listed in ``part_ids``, so a building is always one pickable feature.
    """

    gml_id: str
    cls: str
    """CityGML class name without namespace: Building, Bridge, TINRelief, GenericCityObject, ..."""
    lod: int
    """Level of detail of the geometry kept (0-4); -1 when the object has no geometry."""
    surfaces: list[Surface] = field(default_factory=list)
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    part_ids: tuple[str, ...] = ()
    srs_name: str | None = None
    """srsName in force for this object's geometry (its own, or the file's)."""
    srs_dimension: int = 3
    line: int | None = None
    """Source line where the object starts."""


@dataclass(slots=True)
class CityModelHeader:
    """What a CityGML file says about itself before its first city object."""

    path: Path
    version: str
    """CityGML version: "1.0", "2.0" or "3.0"."""
    srs_name: str | None = None
    envelope: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    """(lower corner, upper corner) of the root gml:Envelope, as written."""


@dataclass(slots=True)
class ReadReport:
    """Counts and warnings a reader gathers; goes into the build report."""

    objects: dict[str, int] = field(default_factory=dict)
    """City objects by class."""
    lods: dict[int, int] = field(default_factory=dict)
    """City objects by the LoD of the geometry kept."""
    surfaces: int = 0
    degenerate_rings: int = 0
    """Rings dropped: zero area, collinear, or (with skip_invalid) fewer than 3 points."""
    unresolved_xlinks: int = 0
    converted_high_lod: int = 0
    """Objects whose only geometry was LoD3/LoD4 and was taken as is."""
    skipped_objects: dict[str, int] = field(default_factory=dict)
    """Objects without usable geometry or of unsupported classes, by class."""
    warnings: list[str] = field(default_factory=list)
    """Human-readable warnings (kept short: the first few of a kind, then a count)."""

    def count_object(self, cls: str, lod: int) -> None:
        """Count one yielded city object."""
        self.objects[cls] = self.objects.get(cls, 0) + 1
        self.lods[lod] = self.lods.get(lod, 0) + 1
