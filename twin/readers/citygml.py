"""Streaming CityGML 1.0 / 2.0 / 3.0 reader: one top-level city object at a time.

The file is parsed with lxml ``iterparse`` filtered on the member elements
(``core:cityObjectMember``, ``gml:featureMember``, ``app:appearanceMember``), so libxml2 builds
one member's subtree in C, Python walks it once, and the member and everything before it are
then dropped: memory is bounded by the largest top-level object, not by the file. Only the
ring coordinate texts of up to 128 walked objects wait together, to be parsed and cleaned in
one numpy batch (objects still come out one at a time, in file order, and an error in one
object is raised after the objects before it were yielded).

How the CityGML model is mapped onto :class:`~twin.model.city.CityObject`:

- Elements are matched by local name plus namespace family (GML 3.1.1 / 3.2, any CityGML
  module of any version), so 1.0, 2.0 and 3.0 files take the same code path.
- Building/bridge/tunnel parts, installations and constructive elements are folded into their
  top-level object (surfaces appended, ids in ``part_ids``). Furniture is left out: it is
  movable interior decoration, not part of the object's shape.
- Geometry is gathered per LoD from the property names (``lod2Solid``, ``lod0FootPrint``,
  relief ``tin`` with the relief's ``lod``, ...). The highest LoD <= 2 is kept; an object with
  only LoD3/LoD4 keeps its lowest of those (counted in ``converted_high_lod``). Terrain
  intersection curves and implicit geometries (prototype + matrix) are not rendered. At LoD0
  roof edges (``lod0RoofEdge``, 3.0 LoD0 roof surfaces) are used only when there is no
  footprint.
- ``xlink:href`` geometry references (the AdV ``lod2Solid`` of ``#polygon`` members) are
  resolved within the top-level object. Each polygon is emitted once, with the semantic kind of
  the boundary surface that holds it.
- One object is yielded per ``ReliefFeature`` (cls "ReliefFeature", all its TIN components,
  kind "terrain", LoD from the feature's ``dem:lod``); a top-level ``TINRelief`` is yielded
  as cls "TINRelief".
- X3D materials inside an object colour its polygons (first material per polygon wins).
  Global ``appearanceMember`` materials come after the objects were yielded: they are counted
  and reported in one warning, not applied. Textures are ignored.
- Coordinates are returned as written (no axis swap, no transformation).
"""

from __future__ import annotations

import codecs
import dataclasses
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from lxml import etree

from twin.errors import FormatError, GeometryError, UnsafeInputError
from twin.model.city import AttributeValue, CityModelHeader, CityObject, ReadReport, Surface

__all__ = ["CityGMLReader", "RingTolerances", "read_citygml"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RingTolerances:
    """Thresholds for dropping rings; unit-free, so they hold in metres and degrees alike."""

    degenerate_area_ratio: float = 1e-9
    """A ring whose area is below this times its squared perimeter is (near) zero-area."""


TOLERANCES = RingTolerances()

# --- namespaces and names ----------------------------------------------------------------------

_CORE_VERSIONS = {
    "http://www.opengis.net/citygml/1.0": "1.0",
    "http://www.opengis.net/citygml/2.0": "2.0",
    "http://www.opengis.net/citygml/3.0": "3.0",
}
_GML_NAMESPACES = frozenset({"http://www.opengis.net/gml", "http://www.opengis.net/gml/3.2"})
_GML_ID = {
    "1.0": "{http://www.opengis.net/gml}id",
    "2.0": "{http://www.opengis.net/gml}id",
    "3.0": "{http://www.opengis.net/gml/3.2}id",
}
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

# lxml accepts "{*}local" to match a local name in any namespace.
_MEMBER_TAGS = (
    "{*}cityObjectMember",
    "{*}featureMember",
    "{*}featureMembers",
    "{*}appearanceMember",
)
_MEMBER_NAMES = frozenset(tag[3:] for tag in _MEMBER_TAGS)

# Hardened parser: no DTD, no entity expansion, no network, libxml2's default size limits.
_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "remove_blank_text": True,  # fewer text nodes: ~20 % faster on indented files
    "remove_comments": True,
    "remove_pis": True,
}

_SURFACE_KIND = {
    "WallSurface": "wall",
    "RoofSurface": "roof",
    "GroundSurface": "ground",
    "ClosureSurface": "closure",
    "FloorSurface": "floor",
    "OuterFloorSurface": "outer_floor",
    "CeilingSurface": "ceiling",
    "OuterCeilingSurface": "outer_ceiling",
    "InteriorWallSurface": "interior_wall",
    "Door": "door",
    "DoorSurface": "door",
    "Window": "window",
    "WindowSurface": "window",
    "ReliefFeature": "terrain",
    "TINRelief": "terrain",
}
_RELIEF_CLASSES = frozenset({"ReliefFeature", "TINRelief"})
_PART_CLASSES = frozenset({
    "BuildingPart", "BuildingInstallation", "BuildingConstructiveElement",
    "BridgePart", "BridgeInstallation", "BridgeConstructiveElement", "BridgeConstructionElement",
    "TunnelPart", "TunnelInstallation", "TunnelConstructiveElement",
})
_FURNITURE_CLASSES = frozenset({"BuildingFurniture", "BridgeFurniture", "TunnelFurniture"})
# Feature properties that never hold rendered geometry: skipped without descending.
_NON_GEOMETRY_PROPERTIES = frozenset({
    "address", "externalReference", "genericAttribute", "genericAttributeSet",
    "stringAttribute", "intAttribute", "doubleAttribute", "dateAttribute", "uriAttribute",
    "measureAttribute", "relatedTo", "generalizesTo", "height", "occupancy", "lod",
    "dynamizer",
})
_POLYGON_TYPES = frozenset({"Polygon", "Triangle", "PolygonPatch", "Rectangle"})
_NON_SURFACE_GEOMETRY = frozenset({
    "Point", "MultiPoint", "LineString", "Curve", "MultiCurve", "CompositeCurve",
    "OrientableCurve", "Envelope", "controlPoint", "stopLines", "breakLines", "maxLength",
})
_NOT_RENDERED_LOD_SUFFIXES = ("TerrainIntersection", "ImplicitRepresentation")

_TEXT_ATTRIBUTES = frozenset({
    "class", "function", "usage", "roofType", "creationDate", "terminationDate",
    "dateOfConstruction", "dateOfDemolition",
})
_INT_ATTRIBUTES = frozenset({
    "storeysAboveGround", "storeysBelowGround", "yearOfConstruction", "yearOfDemolition",
})
_FLOAT_ATTRIBUTES = frozenset({"measuredHeight"})
_GENERIC_TYPES: dict[str, type] = {
    # CityGML 1.0 / 2.0: <gen:intAttribute name="..."><gen:value>
    "stringAttribute": str, "intAttribute": int, "doubleAttribute": float,
    "dateAttribute": str, "uriAttribute": str, "measureAttribute": float,
    # CityGML 3.0: <core:genericAttribute><gen:IntAttribute><gen:name/><gen:value>
    "StringAttribute": str, "IntAttribute": int, "DoubleAttribute": float,
    "DateAttribute": str, "UriAttribute": str, "MeasureAttribute": float, "CodeAttribute": str,
}
# Roles in the flat geometry pass (see _ObjectWalk.geometry_flat).
(_FLAT_OTHER, _FLAT_AGGREGATE, _FLAT_MEMBER, _FLAT_POLYGON, _FLAT_EXTERIOR, _FLAT_INTERIOR,
 _FLAT_RING, _FLAT_POS_LIST) = range(8)
_FLAT_ROLES = {
    **dict.fromkeys(("MultiSurface", "CompositeSurface", "Shell", "Solid", "MultiSolid",
                     "CompositeSolid", "TriangulatedSurface", "Tin"), _FLAT_AGGREGATE),
    **dict.fromkeys(("surfaceMember", "surfaceMembers", "solidMember", "solidMembers",
                     "trianglePatches", "patches"), _FLAT_MEMBER),
    **dict.fromkeys(("Polygon", "Triangle", "Rectangle"), _FLAT_POLYGON),
    "exterior": _FLAT_EXTERIOR,
    "interior": _FLAT_INTERIOR,
    "LinearRing": _FLAT_RING,
    "posList": _FLAT_POS_LIST,
}
_FLAT_TAG_ROLES: dict[Any, int] = {}
_BOUNDARIES = {"exterior": True, "outerBoundaryIs": True, "interior": False,
               "innerBoundaryIs": False}
_DIMENSIONS = {"2": 2, "3": 3}
_X3D_DEFAULT_DIFFUSE = (0.8, 0.8, 0.8)  # the X3D default when diffuseColor is absent

_GML, _CITY, _OTHER = 0, 1, 2
_TAG_CACHE: dict[str, tuple[int, str]] = {}
_LOD_CACHE: dict[str, tuple[int, str] | None] = {}
_LOD_PROPERTY = re.compile(r"lod([0-4])([A-Za-z]+)")
_NOT_RENDERED: tuple[int, str] = (-1, "")


def _tag_info(tag: Any) -> tuple[int, str]:
    """Namespace family and local name of a Clark-notation tag (cached: few distinct tags)."""
    if tag.__class__ is not str:
        return (_OTHER, "#")  # comment, PI or entity node (the parser drops them anyway)
    info = _TAG_CACHE.get(tag)
    if info is None:
        ns, _, local = tag[1:].partition("}") if tag[:1] == "{" else ("", "", tag)
        if ns in _GML_NAMESPACES:
            family = _GML
        elif ns.startswith("http://www.opengis.net/citygml/"):
            family = _CITY
        else:
            family = _OTHER
        info = (family, local)
        if len(_TAG_CACHE) < 10_000:  # a hostile file with endless tag names cannot grow it
            _TAG_CACHE[tag] = info
    return info


# What the walk does with a child of a city object or nested feature, cached per tag.
_SKIP, _DESCEND, _GEOMETRY, _PART, _ENVELOPE, _TIN, _APPEARANCE = range(7)
_FEATURE_ACTIONS: dict[Any, tuple[int, Any]] = {}
# Which attribute a direct child of a top-level object is, cached per tag.
(_NOT_ATTRIBUTE, _TEXT, _INT, _FLOAT, _NAME, _GENERIC_2, _GENERIC_3, _ADDRESS,
 _HEIGHT) = range(9)
_ATTRIBUTE_ACTIONS: dict[Any, int] = {}


def _feature_action(tag: Any) -> tuple[int, Any]:
    """(action, payload) for a feature-level child element with this tag."""
    family, local = _tag_info(tag)
    action: tuple[int, Any]
    prop = _lod_property(local) if local.startswith("lod") else None
    if prop is not None:
        action = (_SKIP, None) if prop is _NOT_RENDERED else (_GEOMETRY, prop)
    elif family == _GML:
        action = (_ENVELOPE if local == "boundedBy" else _SKIP, None)
    elif local == "appearance":
        action = (_APPEARANCE, None)
    elif local in _NON_GEOMETRY_PROPERTIES or local in _FURNITURE_CLASSES:
        action = (_SKIP, None)
    elif local == "tin":
        action = (_TIN, None)
    elif local in _PART_CLASSES:
        action = (_PART, None)
    else:
        action = (_DESCEND, _SURFACE_KIND.get(local))
    if len(_FEATURE_ACTIONS) < 10_000:
        _FEATURE_ACTIONS[tag] = action
    return action


def _attribute_action(tag: Any) -> int:
    """Which kind of attribute a direct child of a city object is, or _NOT_ATTRIBUTE."""
    family, local = _tag_info(tag)
    if local in _TEXT_ATTRIBUTES:
        action = _TEXT
    elif local in _INT_ATTRIBUTES:
        action = _INT
    elif local in _FLOAT_ATTRIBUTES:
        action = _FLOAT
    elif family == _GML and local == "name":
        action = _NAME
    elif local in _GENERIC_TYPES or local == "genericAttributeSet":
        action = _GENERIC_2
    elif local == "genericAttribute":
        action = _GENERIC_3
    elif local == "address":
        action = _ADDRESS
    elif local == "height" and family == _CITY:
        action = _HEIGHT
    else:
        action = _NOT_ATTRIBUTE
    if len(_ATTRIBUTE_ACTIONS) < 10_000:
        _ATTRIBUTE_ACTIONS[tag] = action
    return action


def _lod_property(local: str) -> tuple[int, str] | None:
    """(lod, role) of a geometry property such as lod2Solid; _NOT_RENDERED or None."""
    if local in _LOD_CACHE:
        return _LOD_CACHE[local]
    match = _LOD_PROPERTY.fullmatch(local)
    result: tuple[int, str] | None = None
    if match:
        suffix = match.group(2)
        if suffix.startswith(_NOT_RENDERED_LOD_SUFFIXES):
            result = _NOT_RENDERED
        else:
            role = {"RoofEdge": "roof_edge", "FootPrint": "footprint"}.get(suffix, "")
            result = (int(match.group(1)), role)
    if len(_LOD_CACHE) < 10_000:
        _LOD_CACHE[local] = result
    return result


def _text(elem: Any) -> str:
    """An element's text, stripped ("" when empty)."""
    return (elem.text or "").strip()


def _typed(text: str, kind: type) -> AttributeValue:
    """``text`` as int/float when it parses, else the string as written."""
    if kind is str:
        return text
    try:
        return kind(text)  # type: ignore[no-any-return]
    except ValueError:
        return text


# --- geometry records gathered while walking one object ----------------------------------------

RingSource = tuple[str, int]
"""Coordinates of one ring as whitespace-separated numbers, and the numbers per point (0: bad)."""


class _Polygon:
    """A polygon seen in the object: ring sources (parsed only if its LoD is kept)."""

    __slots__ = ("gml_id", "line", "lod", "kind", "roof_edge", "reverse", "exterior",
                 "interiors", "color")

    def __init__(self, gml_id: str | None, line: int | None, lod: int, kind: str,
                 roof_edge: bool, reverse: bool, exterior: RingSource | None,
                 interiors: list[RingSource | None]) -> None:
        self.gml_id = gml_id
        self.line = line
        self.lod = lod
        self.kind = kind
        self.roof_edge = roof_edge
        self.reverse = reverse
        self.exterior = exterior
        self.interiors = interiors
        self.color: tuple[float, float, float] | None = None


class _Ref:
    """An ``xlink:href`` geometry reference, resolved when the object is complete."""

    __slots__ = ("target", "lod", "kind", "roof_edge", "reverse", "line")

    def __init__(self, target: str, lod: int, kind: str, roof_edge: bool, reverse: bool,
                 line: int | None) -> None:
        self.target = target
        self.lod = lod
        self.kind = kind
        self.roof_edge = roof_edge
        self.reverse = reverse
        self.line = line


class _ObjectWalk:
    """Walks one top-level city object: geometry records by LoD, id index, colours, parts."""

    def __init__(self, gml_id_attr: str, relief_lod: int, line_offset: int = 0) -> None:
        self.gml_id_attr = gml_id_attr
        self.relief_lod = relief_lod
        self.line_offset = line_offset
        """Added to libxml2's line numbers: the file line before the parsed fragment's."""
        self.records: list[_Polygon | _Ref] = []
        self.index: dict[str, tuple[int, int]] = {}
        self.colors: dict[str, tuple[float, float, float]] = {}
        self.part_ids: list[str] = []
        self.srs_name: str | None = None
        self.tin_without_triangles = 0

    # feature level: semantic surfaces, parts, geometry properties
    # (the parser drops comments and PIs, so every child is an element)

    def feature(self, elem: Any, kind: str) -> None:
        """Walk the children of a feature-level element."""
        actions = _FEATURE_ACTIONS
        for child in elem:
            action = actions.get(child.tag) or _feature_action(child.tag)
            self.feature_child(child, action, kind)

    def feature_child(self, child: Any, action: tuple[int, Any], kind: str) -> None:
        """Handle one property or nested feature of a city object, as its tag's action says."""
        code, payload = action
        if code == _DESCEND:
            if len(child):
                self.feature(child, payload or kind)
        elif code == _GEOMETRY:
            lod, role = payload
            if role == "footprint" and kind == "other":
                kind = "ground"
            roof_edge = role == "roof_edge" or (lod == 0 and kind == "roof")
            if len(child):
                self.geometry(child, lod, kind, roof_edge, 0, False)
            else:
                self.reference(child, lod, kind, roof_edge, False)
        elif code == _PART:
            part_id = child.get(self.gml_id_attr)
            if part_id:
                self.part_ids.append(part_id)
            if len(child):
                self.feature(child, kind)
        elif code == _ENVELOPE:
            if self.srs_name is None and len(child):
                self.srs_name = child[0].get("srsName")
        elif code == _TIN:
            self.geometry(child, self.relief_lod, "terrain", False, 0, False)
        elif code == _APPEARANCE:
            self.appearance(child)

    # geometry level: inside a lodX... property

    def reference(self, elem: Any, lod: int, kind: str, roof_edge: bool, reverse: bool) -> None:
        """Record an xlink:href geometry reference, if the leaf element carries one."""
        href = elem.get(_XLINK_HREF)
        if href:
            target = href[1:] if href[:1] == "#" else href
            self.records.append(_Ref(target, lod, kind, roof_edge, reverse,
                                     elem.sourceline + self.line_offset))

    def geometry(self, prop: Any, lod: int, kind: str, roof_edge: bool, dim: int,
                 reverse: bool) -> None:
        """Record the polygons and references below a geometry property."""
        if not self.geometry_flat(prop, lod, kind, roof_edge, dim, reverse):
            self.geometry_tree(prop, lod, kind, roof_edge, dim, reverse)

    def geometry_flat(self, prop: Any, lod: int, kind: str, roof_edge: bool, dim: int,
                      reverse: bool) -> bool:
        """Fast path: one C-level pass over plain MultiSurface/Solid/TIN geometry.

        Handles the vocabulary of nearly all real files (aggregates, members, polygons and
        triangles with LinearRing/posList, xlink:href members) in document order without
        recursion. Returns False, having recorded nothing, on anything else (orientation,
        patches, gml:pos, solid cavities, nested srsDimension); the recursive walk then runs.
        """
        records = self.records
        index = self.index
        start = len(records)
        added: list[tuple[str, tuple[int, int] | None]] = []
        aggregates: list[tuple[str, int, Any]] = []
        roles = _FLAT_TAG_ROLES
        id_attr = self.gml_id_attr
        line_offset = self.line_offset
        polygon: _Polygon | None = None
        exterior_next = True
        elements = prop.iter()
        next(elements)  # the property itself
        for elem in elements:
            role = roles.get(elem.tag)
            if role is None:
                role = _flat_role(elem.tag)
            if role == _FLAT_POS_LIST:
                if polygon is None:
                    break
                declared = elem.get("srsDimension")
                if declared is None:  # inherited from the ring, polygon or an aggregate
                    declared = _inherited_dimension(elem, prop)
                ring = (elem.text or "", _dimension(declared) if declared else dim or 3)
                if exterior_next:
                    if polygon.exterior is not None:
                        break
                    polygon.exterior = ring
                else:
                    polygon.interiors.append(ring)
            elif role == _FLAT_POLYGON:
                gml_id = elem.get(id_attr)
                polygon = _Polygon(gml_id, elem.sourceline + line_offset, lod, kind,
                                   roof_edge, reverse, None, [])
                if gml_id is not None:
                    added.append((gml_id, index.get(gml_id)))
                    index[gml_id] = (len(records), len(records) + 1)
                records.append(polygon)
                exterior_next = True
            elif role == _FLAT_RING:
                pass
            elif role == _FLAT_EXTERIOR and polygon is not None:
                exterior_next = True  # a Solid's shell never directly follows a polygon
            elif role == _FLAT_INTERIOR and polygon is not None and (
                _tag_info(elem.getparent().tag)[1] in _POLYGON_TYPES
            ):
                exterior_next = False
            elif role == _FLAT_MEMBER or role == _FLAT_EXTERIOR:
                # A member, or a Solid's exterior shell.
                polygon = None
                if not len(elem):
                    self.reference(elem, lod, kind, roof_edge, reverse)
            elif role == _FLAT_AGGREGATE:
                polygon = None
                if self.srs_name is None:
                    self.srs_name = elem.get("srsName")
                gml_id = elem.get(id_attr)
                if gml_id is not None:
                    aggregates.append((gml_id, len(records), elem))
            else:
                break  # a Solid's interior shell (a cavity), or vocabulary for the tree walk
        else:
            for gml_id, first, aggregate in aggregates:
                if aggregate.getparent() is prop:
                    index[gml_id] = (first, len(records))
                else:
                    index[gml_id] = (first, first + _flat_record_count(aggregate))
            return True
        del records[start:]
        for gml_id, previous in reversed(added):
            if previous is None:
                index.pop(gml_id, None)
            else:
                index[gml_id] = previous
        return False

    def geometry_tree(self, elem: Any, lod: int, kind: str, roof_edge: bool, dim: int,
                      reverse: bool) -> None:
        """Walk GML geometry below ``elem`` recursively (any GML surface vocabulary)."""
        records = self.records
        cache = _TAG_CACHE
        id_attr = self.gml_id_attr
        for child in elem:
            local = (cache.get(child.tag) or _tag_info(child.tag))[1]
            if not len(child):
                self.reference(child, lod, kind, roof_edge, reverse)
                continue
            if local in _NON_SURFACE_GEOMETRY:
                continue
            if self.srs_name is None:
                self.srs_name = child.get("srsName")
            declared = child.get("srsDimension")
            child_dim = dim if declared is None else _dimension(declared)
            gml_id = child.get(id_attr)
            if local in _POLYGON_TYPES:
                self.polygon(child, lod, kind, roof_edge, child_dim, reverse, gml_id)
                continue
            start = len(records)
            if local == "OrientableSurface":
                flipped = reverse ^ (child.get("orientation") == "-")
                self.geometry_tree(child, lod, kind, roof_edge, child_dim, flipped)
            elif local == "Solid":
                # Only the exterior shell is rendered; interior shells are cavities.
                for shell in child:
                    if (cache.get(shell.tag) or _tag_info(shell.tag))[1] == "exterior":
                        self.geometry_member(shell, lod, kind, roof_edge, child_dim, reverse)
            elif local == "Surface":
                # gml:Surface/patches/PolygonPatch: the patches carry the Surface's id.
                for patches in child:
                    for patch in patches:
                        if (cache.get(patch.tag) or _tag_info(patch.tag))[1] in _POLYGON_TYPES:
                            self.polygon(patch, lod, kind, roof_edge, child_dim, reverse, gml_id)
            else:
                self.geometry_tree(child, lod, kind, roof_edge, child_dim, reverse)
                if local == "Tin" and len(records) == start:
                    self.tin_without_triangles += 1
            if gml_id is not None:
                self.index[gml_id] = (start, len(records))

    def geometry_member(self, elem: Any, lod: int, kind: str, roof_edge: bool, dim: int,
                        reverse: bool) -> None:
        """A property holding geometry inline or by reference."""
        if len(elem):
            self.geometry_tree(elem, lod, kind, roof_edge, dim, reverse)
        else:
            self.reference(elem, lod, kind, roof_edge, reverse)

    def polygon(self, elem: Any, lod: int, kind: str, roof_edge: bool, dim: int,
                reverse: bool, gml_id: str | None) -> None:
        """Record a gml:Polygon / Triangle / PolygonPatch with its ring sources."""
        exterior: RingSource | None = None
        interiors: list[RingSource | None] = []
        cache = _TAG_CACHE
        for boundary in elem:
            is_exterior = _BOUNDARIES.get((cache.get(boundary.tag) or _tag_info(boundary.tag))[1])
            if is_exterior:
                exterior = _ring_source(boundary, dim)
            elif is_exterior is not None:
                interiors.append(_ring_source(boundary, dim))
        records = self.records
        if gml_id is not None:
            self.index[gml_id] = (len(records), len(records) + 1)
        records.append(
            _Polygon(gml_id, elem.sourceline + self.line_offset, lod, kind, roof_edge, reverse,
                     exterior, interiors)
        )

    def appearance(self, elem: Any) -> None:
        """Collect X3D material diffuse colours by target id (the first material wins)."""
        for material in elem.iter("{*}X3DMaterial"):
            color = _X3D_DEFAULT_DIFFUSE
            targets = []
            for prop in material:
                if prop.tag.__class__ is not str:
                    continue
                local = _tag_info(prop.tag)[1]
                if local == "diffuseColor":
                    values = _text(prop).split()
                    try:
                        rgb = tuple(float(v) for v in values)
                    except ValueError:
                        continue
                    if len(rgb) == 3 and all(math.isfinite(v) for v in rgb):
                        color = (rgb[0], rgb[1], rgb[2])
                elif local == "target":
                    # 1.0/2.0 write the "#id" as text; 3.0 may use xlink:href.
                    target = prop.get(_XLINK_HREF) or _text(prop)
                    if target:
                        targets.append(target[1:] if target[:1] == "#" else target)
            for target in targets:
                self.colors.setdefault(target, color)

    # after the walk

    def resolve(self, target: str, reverse: bool,
                depth: int = 0) -> list[tuple[_Polygon, bool]] | None:
        """Polygons (with orientation) an href names; None if it names nothing in the object."""
        span = self.index.get(target)
        if span is None or depth > 16:
            return None
        found: list[tuple[_Polygon, bool]] = []
        for record in self.records[span[0]:span[1]]:
            if isinstance(record, _Polygon):
                found.append((record, reverse ^ record.reverse))
            else:
                nested = self.resolve(record.target, reverse ^ record.reverse, depth + 1)
                if nested:
                    found.extend(nested)
        return found

    def apply_colors(self) -> None:
        """Give polygons the colour of the material that targets them or their aggregate."""
        for target, color in self.colors.items():
            for polygon, _ in self.resolve(target, False) or ():
                if polygon.color is None:
                    polygon.color = color


def _flat_role(tag: Any) -> int:
    """Role of a tag in the flat geometry pass, by local name in a GML namespace (cached)."""
    family, local = _tag_info(tag)
    role = _FLAT_ROLES.get(local, _FLAT_OTHER) if family == _GML else _FLAT_OTHER
    if len(_FLAT_TAG_ROLES) < 10_000:
        _FLAT_TAG_ROLES[tag] = role
    return role


def _inherited_dimension(elem: Any, stop: Any) -> str | None:
    """srsDimension of the nearest ancestor of ``elem`` below ``stop`` that states one."""
    parent = elem.getparent()
    while parent is not None and parent is not stop:
        declared = parent.get("srsDimension")
        if declared is not None:
            return declared  # type: ignore[no-any-return]
        parent = parent.getparent()
    return None


def _flat_record_count(aggregate: Any) -> int:
    """Records the flat pass makes inside ``aggregate``: polygons and xlink:href members."""
    count = 0
    for elem in aggregate.iter():
        role = _FLAT_TAG_ROLES.get(elem.tag, _FLAT_OTHER)
        if role == _FLAT_POLYGON:
            count += 1
        elif (role == _FLAT_MEMBER or role == _FLAT_EXTERIOR) and not len(elem) and elem.get(
            _XLINK_HREF
        ):
            count += 1
    return count


def _dimension(text: str) -> int:
    """srsDimension as int; 0 when it is not a number (reported when the ring is used)."""
    dim = _DIMENSIONS.get(text)
    if dim is not None:
        return dim
    try:
        return int(text)
    except ValueError:
        return 0


def _ring_source(boundary: Any, dim: int) -> RingSource | None:
    """Numbers and dimension of the ring in gml:exterior/interior (posList, pos, coordinates)."""
    if not len(boundary):
        return None
    ring = boundary[0]
    declared = ring.get("srsDimension")
    if declared is not None:
        dim = _dimension(declared)
    if len(ring) == 1:  # the common case: LinearRing/posList
        pos_list = ring[0]
        if (_TAG_CACHE.get(pos_list.tag) or _tag_info(pos_list.tag))[1] == "posList":
            declared = pos_list.get("srsDimension")
            if declared is not None:
                dim = _dimension(declared)
            return (pos_list.text or "", dim or 3)
    texts: list[str] = []
    # LinearRing with gml:pos / gml:coordinates / pointProperty, or gml:Ring of curve members.
    for elem in ring.iter("{*}posList", "{*}pos", "{*}coordinates"):
        local = _tag_info(elem.tag)[1]
        declared = elem.get("srsDimension")
        if declared is not None:
            dim = _dimension(declared)
        if local == "coordinates":
            text, tuple_dim = _coordinates(elem)
            dim = dim or tuple_dim
        else:
            text = elem.text or ""
            if local == "pos" and not dim:
                dim = len(text.split())
        texts.append(text)
    return (" ".join(texts), dim or 3)


def _coordinates(elem: Any) -> tuple[str, int]:
    """GML 2 ``gml:coordinates`` ("x,y,z x,y,z") as space-separated numbers and dimension."""
    cs = elem.get("cs", ",")
    ts = elem.get("ts", " ")
    decimal = elem.get("decimal", ".")
    raw = elem.text or ""
    tuples = [t.strip() for t in (raw.split() if ts.isspace() else raw.split(ts)) if t.strip()]
    dim = len(tuples[0].split(cs)) if tuples else 3
    text = " ".join(t.replace(cs, " ") for t in tuples)
    if decimal != ".":
        text = text.replace(decimal, ".")
    return text, dim


# --- ring parsing and cleaning: pure functions on arrays ---------------------------------------

_RING_OK, _RING_DEGENERATE, _RING_TOO_FEW, _RING_NON_FINITE, _RING_UNREADABLE = 0, 1, 2, 3, 4

# Objects are walked one at a time, but their rings are parsed and cleaned in groups: numpy
# costs ~1 µs per call whatever the size, and an AdV building has only ~7 small rings. A group
# holds ring texts of at most this many objects / numbers, so memory stays bounded.
_GROUP_OBJECTS = 128
_GROUP_NUMBERS = 300_000


class _RingBatch:
    """Ring texts of a group of objects, parsed into one array and cleaned in one pass."""

    def __init__(self) -> None:
        self.sources: list[RingSource | None] = []
        self.numbers = 0

    def add_polygon(self, exterior: RingSource | None,
                    interiors: list[RingSource | None]) -> list[int]:
        """Queue a polygon's rings; returns their indices in the batch, exterior first."""
        sources = self.sources
        first = len(sources)
        sources.append(exterior)
        if exterior is not None:
            self.numbers += len(exterior[0]) >> 3  # a rough count, only to bound the group
        if not interiors:
            return [first]
        sources += interiors
        return list(range(first, len(sources)))

    def run(self, area_ratio: float) -> tuple[npt.NDArray[np.float64], list[int], list[int],
                                              dict[int, str]]:
        """Points of all kept rings, their offsets, a status per ring and unreadable reasons."""
        tokens: list[str] = []
        counts: list[int] = []
        problems: dict[int, str] = {}
        for index, source in enumerate(self.sources):
            if source is not None and source[1] == 3:  # the common case, inline
                ring_tokens = source[0].split()
                if not len(ring_tokens) % 3:
                    tokens += ring_tokens
                    counts.append(len(ring_tokens) // 3)
                    continue
            ring_tokens, problem = _ring_tokens(source)
            if problem is not None:
                problems[index] = problem
                counts.append(0)
                continue
            tokens += ring_tokens
            counts.append(len(ring_tokens) // 3)
        try:
            values = np.array(tokens, dtype=np.float64)
        except ValueError:
            values = self._parse_each(tokens, counts, problems)
        points, kept, status = _clean_rings(
            values.reshape(-1, 3), np.array(counts, dtype=np.intp), area_ratio
        )
        status_list = status.tolist()
        for index in problems:
            status_list[index] = _RING_UNREADABLE
        offsets = np.concatenate(([0], np.cumsum(kept))).tolist()
        return points, offsets, status_list, problems

    @staticmethod
    def _parse_each(tokens: list[str], counts: list[int],
                    problems: dict[int, str]) -> npt.NDArray[np.float64]:
        """Slow path when some number does not parse: find its ring, parse the rest."""
        parts = []
        start = 0
        for index, count in enumerate(counts):
            ring_tokens = tokens[start:start + 3 * count]
            start += 3 * count
            try:
                parts.append(np.array(ring_tokens, dtype=np.float64))
            except ValueError as exc:
                bad = str(exc).rpartition(": ")[2]
                problems[index] = f"has a coordinate that is not a number ({bad})"
                counts[index] = 0
        return np.concatenate(parts) if parts else np.zeros(0)


def _ring_tokens(source: RingSource | None) -> tuple[list[str], str | None]:
    """Number strings of a ring as x y z triples (2D gets z = 0), or why it cannot be read."""
    if source is None:
        return [], "has no coordinates"
    text, dim = source
    if dim not in (2, 3):
        return [], f"has srsDimension {dim or 'that is not a number'} (only 2 or 3)"
    tokens = text.split()
    if len(tokens) % dim:
        return [], f"has {len(tokens)} numbers, not a multiple of srsDimension {dim}"
    if dim == 2:
        tokens = [v for x, y in zip(tokens[0::2], tokens[1::2], strict=True) for v in (x, y, "0")]
    return tokens, None


def _clean_rings(
    points: npt.NDArray[np.float64], counts: npt.NDArray[np.intp], area_ratio: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp], npt.NDArray[np.int8]]:
    """Drop closing and repeated points of concatenated rings; classify each ring.

    Returns the kept points, points per ring and a status per ring: ok, degenerate ((near)
    zero area: area <= area_ratio * perimeter**2), too few (< 3 distinct points) or non-finite.
    Rings may be empty. Everything is a fixed number of array operations for the whole batch.
    """
    n_rings = len(counts)
    ring_of = np.repeat(np.arange(n_rings), counts)
    finite = np.isfinite(points).all(axis=1)
    non_finite = np.bincount(ring_of[~finite], minlength=n_rings) > 0

    # Repeated consecutive points, then the closing point that repeats the first one.
    repeated = np.zeros(len(points), dtype=bool)
    repeated[1:] = (points[1:] == points[:-1]).all(axis=1)
    repeated[np.cumsum(counts)[counts > 0] - counts[counts > 0]] = False  # ring starts
    points, ring_of = points[~repeated], ring_of[~repeated]
    counts, starts, _ = _ring_layout(ring_of, n_rings)
    rings = np.flatnonzero(counts > 1)
    first = starts[rings]
    last = first + counts[rings] - 1
    closing = np.zeros(len(points), dtype=bool)
    closing[last[(points[first] == points[last]).all(axis=1)]] = True
    points, ring_of = points[~closing], ring_of[~closing]
    counts, starts, following = _ring_layout(ring_of, n_rings)

    # Newell's normal, relative to each ring's first point: absolute UTM values (~6e6) would
    # cancel catastrophically in the cross products.
    relative = points - points[starts[ring_of]] if len(points) else points
    nxt = relative[following]
    x, y, z = relative[:, 0], relative[:, 1], relative[:, 2]
    xn, yn, zn = nxt[:, 0], nxt[:, 1], nxt[:, 2]
    normal_x = np.bincount(ring_of, weights=y * zn - z * yn, minlength=n_rings)
    normal_y = np.bincount(ring_of, weights=z * xn - x * zn, minlength=n_rings)
    normal_z = np.bincount(ring_of, weights=x * yn - y * xn, minlength=n_rings)
    area = 0.5 * np.sqrt(normal_x * normal_x + normal_y * normal_y + normal_z * normal_z)
    step = nxt - relative
    perimeter = np.bincount(ring_of, weights=np.sqrt((step * step).sum(axis=1)),
                            minlength=n_rings)

    status = np.zeros(n_rings, dtype=np.int8)
    status[area <= area_ratio * perimeter * perimeter] = _RING_DEGENERATE
    for ring in np.flatnonzero((status == _RING_DEGENERATE) & (counts >= 3)):
        ring_points = points[starts[ring]:starts[ring] + counts[ring]]
        if len(np.unique(ring_points, axis=0)) < 3:  # e.g. a b a b: a line, not a sliver
            status[ring] = _RING_TOO_FEW
    status[counts < 3] = _RING_TOO_FEW
    status[non_finite] = _RING_NON_FINITE
    return points, counts, status


def _ring_layout(
    ring_of: npt.NDArray[np.intp], n_rings: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Points per ring, first index per ring and each point's cyclic successor."""
    counts = np.bincount(ring_of, minlength=n_rings)
    starts = np.cumsum(counts) - counts
    following = np.arange(1, len(ring_of) + 1)
    nonempty = counts > 0
    following[(starts + counts - 1)[nonempty]] = starts[nonempty]
    return counts, starts, following


# --- the reader --------------------------------------------------------------------------------


class _WarningLog:
    """Keeps the first few warnings of each kind in the report, then counts the rest."""

    LIMIT = 5

    def __init__(self, report: ReadReport) -> None:
        self.report = report
        self.counts: dict[str, int] = {}

    def add(self, kind: str, message: str) -> None:
        """Record a warning of a kind (kept if among the first few of that kind)."""
        count = self.counts[kind] = self.counts.get(kind, 0) + 1
        log.debug("%s", message)
        if count <= self.LIMIT:
            self.report.warnings.append(message)

    def flush(self) -> None:
        """Append one "... and N more" line per kind that went over the limit."""
        for kind, count in self.counts.items():
            if count > self.LIMIT:
                self.report.warnings.append(f"... and {count - self.LIMIT} more: {kind}")
        self.counts.clear()


class _PendingObject:
    """A walked city object waiting for its group's rings to be parsed."""

    __slots__ = ("city_object", "walk", "lods", "chosen", "rings")

    def __init__(self, city_object: CityObject, walk: _ObjectWalk, lods: list[int]) -> None:
        self.city_object = city_object
        self.walk = walk
        self.lods = lods
        """LoDs to try, best first."""
        self.chosen: list[tuple[_Polygon, bool, str]] = []
        self.rings: list[list[int]] = []
        """Per chosen polygon: batch index of its exterior and interior rings."""


class CityGMLReader:
    """Streams the top-level city objects of a CityGML 1.0/2.0/3.0 file, one at a time."""

    def __init__(self, path: str | Path, *, skip_invalid: bool = False,
                 tolerances: RingTolerances = TOLERANCES,
                 fragment: tuple[int, int, int] | None = None) -> None:
        self.path = Path(path)
        self.fragment = fragment
        """(start byte, end byte, line at start) of whole members to read instead of the
        whole file (see ``plan_shards``)."""
        self.skip_invalid = skip_invalid
        self.tolerances = tolerances
        self.report = ReadReport()
        self._header: CityModelHeader | None = None
        self._warnings = _WarningLog(self.report)
        self._line_offset = 0
        """File line before the fragment being parsed (libxml2 counts from there)."""

    @property
    def header(self) -> CityModelHeader:
        """Version, srsName and envelope, read from the start of the file (cheap, cached)."""
        if self._header is None:
            self._header = self._read_header()
        return self._header

    def __iter__(self) -> Iterator[CityObject]:
        """Yield the top-level city objects in file order; fills ``report`` on the way."""
        header = self.header
        # Reset in place: callers may hold on to ``reader.report`` from before iterating.
        fresh = ReadReport()
        for report_field in dataclasses.fields(ReadReport):
            setattr(self.report, report_field.name, getattr(fresh, report_field.name))
        self._warnings = _WarningLog(self.report)
        gml_id_attr = _GML_ID[header.version]
        global_materials = 0
        group: list[_PendingObject] = []
        batch = _RingBatch()
        fragments = [self.fragment] if self.fragment else iter_shards(self.path, _WHOLE_FILE)
        try:
            for fragment in fragments:
                with self._open_members(fragment) as source:
                    for _, member in etree.iterparse(
                        source, events=("end",), tag=_MEMBER_TAGS, **_PARSER_OPTIONS
                    ):
                        root = member.getparent()
                        if root is None or root.getparent() is not None:
                            continue  # a member name nested deeper (an ADE): part of its object
                        if _tag_info(member.tag)[1] == "appearanceMember":
                            global_materials += sum(1 for _ in member.iter("{*}X3DMaterial"))
                        else:
                            self._read_member(member, header, gml_id_attr, group, batch)
                        # fast_iter: free this member and everything before it.
                        member.clear(keep_tail=False)
                        while member.getprevious() is not None:
                            del root[0]
                        if len(group) >= _GROUP_OBJECTS or batch.numbers >= _GROUP_NUMBERS:
                            yield from self._finish_group(group, batch)
                            group, batch = [], _RingBatch()
        except etree.XMLSyntaxError as exc:
            # Objects before the broken spot are still delivered, then the error.
            yield from self._finish_group(group, batch)
            raise self._syntax_error(exc) from exc
        else:
            yield from self._finish_group(group, batch)
        finally:
            if global_materials:
                self._warnings.add(
                    "global appearances",
                    f"{self.path}: {global_materials} X3D material(s) in global "
                    "app:appearanceMember ignored: they follow the objects they colour; "
                    "put appearances inside the city objects to keep colours",
                )
            self._warnings.flush()

    def _open_members(self, fragment: tuple[int, int, int]) -> IO[bytes]:
        """A fragment of the file as a document of its own: the file's root start tag, the
        fragment's bytes, the root end tag. Sets the line offset that makes libxml2's line
        numbers the file's own."""
        start, end, start_line = fragment
        if start == 0 and end >= self.path.stat().st_size:
            self._line_offset = 0
            return _FragmentStream(self.path, b"", start, end, b"")
        with open(self.path, "rb") as f:
            head = f.read(min(max(start, end), 1 << 20))
        match = _ROOT_START.search(head)
        if match is None:
            raise FormatError(f"{self.path}: no CityModel start tag before byte {start}")
        # The first shard holds the root start tag itself.
        prefix = head[: match.end()] if start else b""
        # The fragment's first byte is on the prefix's last line in the stream.
        self._line_offset = start_line - 1 - prefix.count(b"\n")
        closing = b"</" + match.group(1) + b">"
        return _FragmentStream(self.path, prefix, start, end, closing)

    # header and safety checks

    def _read_header(self) -> CityModelHeader:
        """Check the file, then parse up to the first city object for version, CRS, envelope."""
        self._check_prolog()
        version = ""
        srs_name: str | None = None
        root_srs: str | None = None
        envelope: tuple[tuple[float, ...], tuple[float, ...]] | None = None
        root = None
        in_member = False
        try:
            with open(self.path, "rb") as source:
                events = etree.iterparse(source, events=("start", "end"), **_PARSER_OPTIONS)
                for event, elem in events:
                    if root is None:
                        root = elem
                        version = self._check_root(elem)
                        continue
                    parent = elem.getparent()
                    local = _tag_info(elem.tag)[1] if elem.tag.__class__ is str else ""
                    if event == "start":
                        if srs_name is None:
                            srs_name = elem.get("srsName")
                        if parent is root and local in _MEMBER_NAMES:
                            if root_srs is not None or srs_name is not None:
                                break
                            in_member = True
                    elif local == "Envelope" and parent is not None and (
                        parent.getparent() is root and envelope is None
                    ):
                        root_srs = elem.get("srsName")
                        envelope = _envelope(elem)
                    elif in_member and parent is root:
                        break  # the first object had no srsName either: stop here
        except etree.XMLSyntaxError as exc:
            raise self._syntax_error(exc) from exc
        if root is None:
            raise FormatError(f"{self.path}: line 1: no XML root element: pass a CityGML file")
        return CityModelHeader(
            path=self.path, version=version, srs_name=root_srs or srs_name, envelope=envelope
        )

    def _check_prolog(self) -> None:
        """Refuse empty files, LAS files and any DOCTYPE before the root element."""
        with open(self.path, "rb") as source:
            head = source.read(65536)
            if not head.strip():
                raise FormatError(
                    f"{self.path} is empty: pass a CityGML file (an XML core:CityModel)"
                )
            if head.startswith(b"LASF"):
                raise FormatError(
                    f"{self.path}: byte 0: this is a LAS point cloud (signature 'LASF'), "
                    "not CityGML: use `twin build lidar` for point clouds"
                )
            if head.lstrip()[:1] in (b"{", b"["):
                raise FormatError(
                    f"{self.path}: line 1: this looks like JSON (CityJSON?), not CityGML XML: "
                    "convert it to CityGML first"
                )
            line = _doctype_line(head, source)
        if line is not None:
            raise UnsafeInputError(
                f"{self.path}: line {line}: DOCTYPE/entity declarations are not allowed in "
                "CityGML (XXE / entity expansion): remove the DOCTYPE"
            )

    def _check_root(self, root: Any) -> str:
        """CityGML version of a core:CityModel root; FormatError for any other root."""
        tag = root.tag if root.tag.__class__ is str else ""
        ns, _, local = tag[1:].partition("}") if tag[:1] == "{" else ("", "", tag)
        version = _CORE_VERSIONS.get(ns)
        if local != "CityModel" or version is None:
            raise FormatError(
                f"{self.path}: line {root.sourceline}: root element <{local}> "
                f"(namespace {ns or 'none'}) is not a CityGML 1.0/2.0/3.0 core:CityModel: "
                "pass a CityGML file"
            )
        return version

    def _syntax_error(self, exc: etree.XMLSyntaxError) -> FormatError:
        """One-line FormatError with file, line and column for an lxml syntax error."""
        line = exc.lineno or (exc.position[0] if exc.position else None)
        line = "?" if line is None else line + self._line_offset
        column = exc.position[1] if exc.position else None
        reason = re.sub(r",? line \d+, column \d+$", "", (exc.msg or str(exc)).strip())
        reason = " ".join(reason.split())
        where = f"line {line}" + (f", column {column}" if column else "")
        return FormatError(
            f"{self.path}: {where}: malformed XML ({reason}): fix or re-export the file "
            "(it may be truncated or not XML)"
        )

    # objects: walk now, rings later (per group)

    def _read_member(self, member: Any, header: CityModelHeader, gml_id_attr: str,
                     group: list[_PendingObject], batch: _RingBatch) -> None:
        """Walk the object(s) of one member into the current group."""
        found = False
        for elem in member:
            if elem.tag.__class__ is not str:
                continue
            found = True
            pending = self._walk_object(elem, header, gml_id_attr)
            if pending is not None:
                self._queue_rings(pending, pending.lods[0], batch)
                group.append(pending)
        if not found and member.get(_XLINK_HREF):
            line = member.sourceline + self._line_offset
            self._skip("xlink:href member", f"{self.path}: line {line}: "
                       f"member by reference {member.get(_XLINK_HREF)} not followed")

    def _skip(self, cls: str, message: str) -> None:
        """Count a skipped object by class and warn."""
        skipped = self.report.skipped_objects
        skipped[cls] = skipped.get(cls, 0) + 1
        self._warnings.add(f"skipped {cls}", message)

    def _no_geometry(self, city_object: CityObject) -> None:
        """Skip an object that has no usable surfaces."""
        self._skip(city_object.cls, f"{self.path}: line {city_object.line}: {city_object.cls} "
                   f"{city_object.gml_id} has no usable surface geometry (LoD0-4 polygons): "
                   "skipped")

    def _walk_object(self, elem: Any, header: CityModelHeader,
                     gml_id_attr: str) -> _PendingObject | None:
        """Attributes and geometry records of one city object; None if it has no geometry."""
        cls = _tag_info(elem.tag)[1]
        line = elem.sourceline + self._line_offset
        gml_id = elem.get(gml_id_attr) or f"{cls}-line{line}"
        relief = cls in _RELIEF_CLASSES
        walk = _ObjectWalk(gml_id_attr, _relief_lod(elem) if relief else 0, self._line_offset)
        kind = "terrain" if relief else "other"
        attributes: dict[str, AttributeValue] = {}
        generic: dict[str, AttributeValue] = {}
        feature_actions = _FEATURE_ACTIONS
        for child in elem:
            tag = child.tag
            attribute = _ATTRIBUTE_ACTIONS.get(tag)
            if attribute is None:
                attribute = _attribute_action(tag)
            if attribute == _NOT_ATTRIBUTE:
                action = feature_actions.get(tag) or _feature_action(tag)
                if action[0] != _SKIP:
                    walk.feature_child(child, action, kind)
                continue
            local = _tag_info(tag)[1]
            if attribute == _TEXT:
                _add_attribute(attributes, local, _text(child))
            elif attribute == _INT:
                _add_attribute(attributes, local, _typed(_text(child), int))
            elif attribute == _FLOAT:
                _add_attribute(attributes, local, _typed(_text(child), float))
            elif attribute == _NAME:
                _add_attribute(attributes, "name", _text(child))
            elif attribute == _GENERIC_2:
                _generic_attribute_v2(child, local, generic)
            elif attribute == _GENERIC_3:
                _generic_attribute_v3(child, generic)
            elif attribute == _ADDRESS:
                if "address" not in attributes:
                    _add_attribute(attributes, "address", _address(child))
            elif attribute == _HEIGHT:
                height = _measured_height_v3(child)
                if height is not None:
                    attributes.setdefault("measuredHeight", height)
        if generic:
            attributes = {**generic, **attributes}
        city_object = CityObject(
            gml_id=gml_id,
            cls=cls,
            lod=-1,
            attributes=attributes,
            part_ids=tuple(walk.part_ids),
            srs_name=walk.srs_name or header.srs_name,
            line=line,
        )
        if walk.tin_without_triangles:
            self._warnings.add(
                "gml:Tin without triangles",
                f"{self.path}: line {line}: {cls} {gml_id}: gml:Tin with control points only "
                "is not triangulated by the reader: its terrain is missing",
            )
        lods = {record.lod for record in walk.records}
        if not lods:
            self._no_geometry(city_object)
            return None
        if walk.colors:
            walk.apply_colors()
        # Highest LoD <= 2 first, then the LoD3/LoD4 ones from the lowest.
        order = sorted((lod for lod in lods if lod <= 2), reverse=True)
        order += sorted(lod for lod in lods if lod > 2)
        return _PendingObject(city_object, walk, order)

    def _queue_rings(self, pending: _PendingObject, lod: int, batch: _RingBatch) -> None:
        """Choose the polygons of one LoD (each once) and queue their rings in the batch."""
        pending.chosen = self._polygons_at(pending.walk, lod, pending.city_object)
        pending.rings = [
            batch.add_polygon(polygon.exterior, polygon.interiors)
            for polygon, _, _ in pending.chosen
        ]

    def _finish_group(self, group: list[_PendingObject],
                      batch: _RingBatch) -> Iterator[CityObject]:
        """Parse and clean the group's rings at once; yield its objects in file order."""
        if not group:
            return
        points, offsets, status, problems = batch.run(self.tolerances.degenerate_area_ratio)
        for pending in group:
            lods = pending.lods
            surfaces = self._surfaces(pending, points, offsets, status, problems)
            while not surfaces and len(lods) > 1:
                # Every polygon of this LoD was degenerate: fall back to the next LoD alone.
                lods = lods[1:]
                single = _RingBatch()
                self._queue_rings(pending, lods[0], single)
                surfaces = self._surfaces(
                    pending, *single.run(self.tolerances.degenerate_area_ratio)
                )
            city_object = pending.city_object
            if not surfaces:
                self._no_geometry(city_object)
                continue
            lod = lods[0]
            if lod > 2:
                self.report.converted_high_lod += 1
                self._warnings.add(
                    "LoD3/LoD4 geometry used",
                    f"{self.path}: line {city_object.line}: {city_object.cls} "
                    f"{city_object.gml_id} has only LoD{lod} geometry: taken as is "
                    "(openings and interiors included)",
                )
            city_object.lod = lod
            city_object.surfaces = surfaces
            city_object.srs_dimension = _walk_dimension(pending.walk, lod)
            self.report.count_object(city_object.cls, lod)
            self.report.surfaces += len(surfaces)
            yield city_object

    def _polygons_at(self, walk: _ObjectWalk, lod: int,
                     city_object: CityObject) -> list[tuple[_Polygon, bool, str]]:
        """Polygons of one LoD: inline ones in document order, then resolved references."""
        records = [record for record in walk.records if record.lod == lod]
        if lod == 0 and any(not record.roof_edge for record in records):
            records = [record for record in records if not record.roof_edge]
        chosen: list[tuple[_Polygon, bool, str]] = []
        emitted: set[int] = set()
        refs = []
        for record in records:
            if isinstance(record, _Polygon):
                chosen.append((record, record.reverse, record.kind))
                emitted.add(id(record))
            else:
                refs.append(record)
        unresolved = 0
        for ref in refs:
            resolved = walk.resolve(ref.target, ref.reverse)
            if resolved is None:
                unresolved += 1
                continue
            for polygon, reverse in resolved:
                if id(polygon) not in emitted:
                    emitted.add(id(polygon))
                    kind = polygon.kind if polygon.kind != "other" else ref.kind
                    chosen.append((polygon, reverse, kind))
        if unresolved:
            self.report.unresolved_xlinks += unresolved
            self._warnings.add(
                "unresolved xlink:href",
                f"{self.path}: line {city_object.line}: {city_object.cls} "
                f"{city_object.gml_id}: {unresolved} xlink:href geometry reference(s) point "
                "outside the object or nowhere: left out",
            )
        return chosen

    def _surfaces(self, pending: _PendingObject, points: npt.NDArray[np.float64],
                  offsets: list[int], status: list[int],
                  problems: dict[int, str]) -> list[Surface]:
        """Surfaces of a pending object from its group's parsed and cleaned rings."""
        city_object = pending.city_object
        surfaces: list[Surface] = []
        for (polygon, reverse, kind), ring_indices in zip(pending.chosen, pending.rings,
                                                         strict=True):
            rings: list[npt.NDArray[np.float64] | None] = []
            for position, index in enumerate(ring_indices):
                state = status[index]
                if state != _RING_OK:
                    self._bad_ring(polygon, position, state, problems.get(index), city_object)
                    rings.append(None)
                    continue
                ring = points[offsets[index]:offsets[index + 1]]
                rings.append(ring[::-1].copy() if reverse else ring)
            exterior = rings[0]
            if exterior is None:
                continue
            surfaces.append(Surface(
                exterior=exterior,
                interiors=tuple(r for r in rings[1:] if r is not None) if len(rings) > 1 else (),
                kind=kind,
                color=polygon.color,
                gml_id=polygon.gml_id,
                line=polygon.line,
            ))
        return surfaces

    def _bad_ring(self, polygon: _Polygon, position: int, state: int, problem: str | None,
                  city_object: CityObject) -> None:
        """Drop and count a degenerate ring; raise (or with skip_invalid drop) an invalid one."""
        where = (f"{self.path}: line {polygon.line}: {_ring_name(polygon, position)} of "
                 f"{city_object.cls} {city_object.gml_id}")
        if state == _RING_DEGENERATE:
            self.report.degenerate_rings += 1
            self._warnings.add("degenerate ring dropped", f"{where} has (near) zero area: dropped")
            return
        if state == _RING_TOO_FEW:
            problem = "has fewer than 3 distinct points"
        elif state == _RING_NON_FINITE:
            problem = "has non-finite coordinates (NaN/inf)"
        if not self.skip_invalid:
            raise GeometryError(
                f"{where} {problem}: fix the polygon or pass --skip-invalid to drop such polygons"
            )
        self.report.degenerate_rings += 1
        self._warnings.add("invalid ring dropped", f"{where} {problem}: dropped (--skip-invalid)")


def _walk_dimension(walk: _ObjectWalk, lod: int) -> int:
    """srsDimension of the first kept polygon's exterior (3 when not stated)."""
    for record in walk.records:
        if record.lod == lod and isinstance(record, _Polygon) and record.exterior is not None:
            return record.exterior[1] or 3
    return 3


def _ring_name(polygon: _Polygon, position: int) -> str:
    """Names a ring for messages: "exterior ring of polygon X"."""
    ring = "exterior ring" if position == 0 else f"interior ring {position}"
    name = f"polygon {polygon.gml_id}" if polygon.gml_id else "polygon (no gml:id)"
    return f"{ring} of {name}"


def _add_attribute(attributes: dict[str, AttributeValue], key: str,
                   value: AttributeValue) -> None:
    """Set an attribute; repeated values (two bldg:function) are joined with "; "."""
    if value == "":
        return
    if key in attributes:
        attributes[key] = f"{attributes[key]}; {value}"
    else:
        attributes[key] = value


def _generic_attribute_v2(elem: Any, local: str, out: dict[str, AttributeValue]) -> None:
    """CityGML 1.0/2.0 gen:*Attribute (name attribute + gen:value), sets flattened."""
    if local == "genericAttributeSet":
        for child in elem:
            if child.tag.__class__ is str:
                inner = _tag_info(child.tag)[1]
                if inner in _GENERIC_TYPES or inner == "genericAttributeSet":
                    _generic_attribute_v2(child, inner, out)
        return
    name = elem.get("name")
    if not name:
        return
    for child in elem:
        if child.tag.__class__ is str and _tag_info(child.tag)[1] == "value":
            out.setdefault(name, _typed(_text(child), _GENERIC_TYPES[local]))
            return


def _generic_attribute_v3(prop: Any, out: dict[str, AttributeValue]) -> None:
    """CityGML 3.0 core:genericAttribute/gen:*Attribute (gen:name + gen:value), sets flattened."""
    for attribute in prop:
        if attribute.tag.__class__ is not str:
            continue
        local = _tag_info(attribute.tag)[1]
        name = value = None
        nested = []
        for child in attribute:
            if child.tag.__class__ is not str:
                continue
            child_local = _tag_info(child.tag)[1]
            if child_local == "name":
                name = _text(child)
            elif child_local == "value":
                if local == "GenericAttributeSet":
                    nested.append(child)
                else:
                    value = _text(child)
        for wrapped in nested:  # a set's gen:value wraps further attributes
            _generic_attribute_v3(wrapped, out)
        if local in _GENERIC_TYPES and name and value is not None:
            out.setdefault(name, _typed(value, _GENERIC_TYPES[local]))


def _measured_height_v3(prop: Any) -> float | None:
    """The value of a CityGML 3.0 con:height/con:Height whose status is "measured"."""
    status = value = None
    for elem in prop.iter():
        if elem.tag.__class__ is not str:
            continue
        local = _tag_info(elem.tag)[1]
        if local == "status":
            status = _text(elem)
        elif local == "value":
            value = _text(elem)
    if value is None or status not in (None, "measured"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _address(prop: Any) -> str:
    """xAL 2 (CityGML 1.0/2.0) or xAL 3 (CityGML 3.0) address as "street number, code town"."""
    parts: dict[str, str] = {}
    for elem in prop.iter():
        if elem.tag.__class__ is not str:
            continue
        local = _tag_info(elem.tag)[1]
        key = None
        if local in ("ThoroughfareName", "ThoroughfareNumber", "PostalCodeNumber", "LocalityName"):
            key = local
        elif local in ("NameElement", "Number", "Identifier"):
            parent = _tag_info(elem.getparent().tag)[1]
            key = {
                ("Thoroughfare", "NameElement"): "ThoroughfareName",
                ("Thoroughfare", "Number"): "ThoroughfareNumber",
                ("PostCode", "Identifier"): "PostalCodeNumber",
                ("Locality", "NameElement"): "LocalityName",
            }.get((parent, local))
        if key and key not in parts and _text(elem):
            parts[key] = _text(elem)
    street = " ".join(
        p for p in (parts.get("ThoroughfareName"), parts.get("ThoroughfareNumber")) if p
    )
    town = " ".join(p for p in (parts.get("PostalCodeNumber"), parts.get("LocalityName")) if p)
    return ", ".join(p for p in (street, town) if p)


def _relief_lod(elem: Any) -> int:
    """The relief feature's dem:lod (mandatory; 1, a plain terrain model, if a file omits it)."""
    for child in elem:
        if child.tag.__class__ is str and _tag_info(child.tag)[1] == "lod":
            try:
                return int(_text(child))
            except ValueError:
                break
    return 1


def _envelope(elem: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(lower, upper) corner of a gml:Envelope (lowerCorner/upperCorner or two gml:pos)."""
    corners: list[tuple[float, ...]] = []
    for child in elem:
        if child.tag.__class__ is str and _tag_info(child.tag)[1] in (
            "lowerCorner", "upperCorner", "pos"
        ):
            try:
                corners.append(tuple(float(v) for v in _text(child).split()))
            except ValueError:
                return None
    if len(corners) != 2:
        return None
    return corners[0], corners[1]


def _doctype_line(head: bytes, source: IO[bytes]) -> int | None:
    """Line of a ``<!DOCTYPE`` before the root element, or None; reads on as far as needed."""
    encoding = "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    text = decoder.decode(head)
    position = 0

    def find(marker: str, start: int) -> int:
        nonlocal text
        while (found := text.find(marker, start)) < 0:
            more = source.read(65536)
            if not more:
                return -1
            text += decoder.decode(more)
        return found

    while True:
        while position < len(text) and (text[position].isspace() or text[position] == "\ufeff"):
            position += 1
        if position >= len(text) - 9:
            more = source.read(65536)
            if not more:
                return None
            text += decoder.decode(more)
            continue
        if text.startswith("<?", position):
            marker = "?>"
        elif text.startswith("<!--", position):
            marker = "-->"
        elif text[position:position + 9].upper() == "<!DOCTYPE" or text.startswith(
            "<!ENTITY", position
        ):
            return text.count("\n", 0, position) + 1
        else:
            return None  # the root element (or garbage, which lxml reports)
        end = find(marker, position + 2)
        if end < 0:
            return None
        position = end + len(marker)


_ROOT_START = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?CityModel)\b[^>]*>")
_MEMBER_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:cityObjectMember|featureMember)[\s>]")
_ROOT_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?CityModel\s*>")


class _FragmentStream:
    """A read()-able stream: prefix bytes, a byte range of a file, then suffix bytes."""

    def __init__(self, path: Path, prefix: bytes, start: int, end: int, suffix: bytes) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        self._file.seek(start)
        self._prefix = memoryview(prefix)
        self._remaining = end - start
        self._suffix = suffix

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 20
        if self._prefix:
            part, self._prefix = self._prefix[:size], self._prefix[size:]
            return part.tobytes()
        if self._remaining > 0:
            block = self._file.read(min(size, self._remaining))
            self._remaining -= len(block)
            if block:
                return block
            self._remaining = 0
        suffix, self._suffix = self._suffix, b""
        return suffix

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _FragmentStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SHARD_LINES = 60_000
"""At most this many lines a shard: libxml2 keeps an element's line number in 16 bits (beyond
65,535 it reports a nearby text's line), so within a shard every number stays exact and the
reader adds the lines before it."""

_WHOLE_FILE = 1 << 62
"""A byte target no file reaches: shards bounded by lines alone."""


def plan_shards(path: str | Path, target_bytes: int) -> list[tuple[int, int, int]]:
    """(start byte, end byte, line at start) of ranges of whole top-level members, about
    ``target_bytes`` and at most ``_SHARD_LINES`` lines each, covering every member of the
    file: the unit of parallel reading. One range (0, size, 1) when the file is small or its
    members cannot be found by their start tags."""
    return list(iter_shards(path, target_bytes))


def iter_shards(path: str | Path, target_bytes: int) -> Iterator[tuple[int, int, int]]:
    """``plan_shards`` lazily: each range as soon as it is found, reading the file in windows
    of at most ``_SCAN_BYTES`` (memory stays bounded however large the file)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        yield (0, 0, 1)
        return
    with open(path, "rb") as f:
        f.seek(max(0, size - 65536))
        tail = f.read()
        tail_at = tail.rfind(b"</")
        first = _next_member(f, 0, size)
        if first is None or tail_at < 0 or _ROOT_END.match(tail, tail_at) is None:
            yield (0, size, 1)
            return
        end = size - len(tail) + tail_at
        # The first shard starts at the file's start: what precedes the first member (names,
        # envelope, global appearances) is read too.
        position, line = 0, 1
        while True:
            stop = min(position + target_bytes, position + _SCAN_BYTES, end)
            limit, lines = _line_limit(f, position, stop)
            if limit >= end:
                yield (0, size, 1) if position == 0 else (position, end, line)
                return
            # The last member that starts within the limits, else (one member longer than
            # them) the first one after.
            cut = _last_member(f, max(position, first) + 1, limit) or _next_member(
                f, limit, end
            )
            if cut is None:
                yield (position, end, line)
                return
            yield (position, cut, line)
            if cut <= limit:
                line += lines - _newlines(f, cut, limit)
            else:
                line += lines + _newlines(f, limit, cut)
            position = cut


_SCAN_BYTES = 16 << 20
"""The most bytes a shard planned by ``iter_shards`` holds."""

_NEWLINE = np.uint8(ord("\n"))
_BLOCK = 1 << 20


def _line_limit(f: IO[bytes], start: int, stop: int) -> tuple[int, int]:
    """Where the ``_SHARD_LINES``-th line after ``start`` ends, if before ``stop``, else stop;
    and the newlines before that."""
    position, lines = start, 0
    while position < stop:
        f.seek(position)
        data = f.read(min(_BLOCK, stop - position))
        if not data:
            break
        count = data.count(b"\n")
        if lines + count >= _SHARD_LINES:
            breaks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE)
            return position + int(breaks[_SHARD_LINES - lines - 1]), _SHARD_LINES - 1
        lines += count
        position += len(data)
    return stop, lines


def _last_member(f: IO[bytes], start: int, end: int) -> int | None:
    """Byte position of the last member start tag that lies whole in [start, end), or None."""
    back = 1 << 16
    while start < end:
        low = max(start, end - back)
        f.seek(low)
        data = f.read(end - low)
        found = None
        for found in _MEMBER_START.finditer(data):  # noqa: B007 - the last one is wanted
            pass
        if found is not None:
            return low + found.start()
        if low == start:
            break
        back *= 4
    return None


def _next_member(f: IO[bytes], start: int, end: int) -> int | None:
    """Byte position of the first member start tag in [start, end), or None."""
    overlap = 256  # a start tag cut by a block boundary is found in the next block
    position = start
    while position < end:
        f.seek(position)
        data = f.read(min(_BLOCK, end - position))
        found = _MEMBER_START.search(data)
        if found is not None:
            return position + found.start()
        if position + len(data) >= end or not data:
            return None
        position += max(len(data) - overlap, 1)
    return None


def _newlines(f: IO[bytes], start: int, end: int) -> int:
    """Newlines in bytes [start, end) of ``f``."""
    f.seek(start)
    count = 0
    remaining = end - start
    while remaining > 0:
        data = f.read(min(remaining, 1 << 24))
        if not data:
            break
        count += data.count(b"\n")
        remaining -= len(data)
    return count


def read_citygml(path: str | Path, *, skip_invalid: bool = False) -> CityGMLReader:
    """Open a CityGML file for streaming (see :class:`CityGMLReader`)."""
    return CityGMLReader(path, skip_invalid=skip_invalid)
