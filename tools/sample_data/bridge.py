"""The planned Warnowbrücke as LoD2 solids, and the existing bridges the LiDAR sees.

The design facts (length, widths, clearance, gradients, the bascule span) come from the
city's and the designers' public statements (../shared/CONTEXT.md); the alignment is an
S-curve from Schnickmannstraße to Fährberg whose length is exactly the tendered 541.16 m.

Height profile. The deck rises at 3.8 % from its south end (on the slope of Schnickmannstraße,
at the terrain height there), passes over the street Am Strande on its own short bridge, and
reaches its crest over the harbour; it falls at 1.8 % to the Gehlsdorf end (at the terrain
height on Fährberg). The crest is the fixed high part: there the deck's underside is at least
8.5 m above the water, and the 70 m bascule span sits in its middle over the shipping lane.
With these gradients a 541 m bridge cannot keep 8.5 m over the whole river (the ramps alone
would need ~600 m), so towards the banks the clearance falls, as with the real design.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import shapely

from twin.errors import InputError

if TYPE_CHECKING:
    from tools.sample_data.world import World

FloatArray = npt.NDArray[np.float64]

_HERE = "tools/sample_data/bridge.py"


@dataclass(frozen=True, slots=True)
class BridgeDesign:
    """The Warnowbrücke's published dimensions and this model's structural choices."""

    length: float = 541.16
    """Total length along the axis (tender: 541.16 m)."""
    usable_width: float = 6.0
    cycle_lane: float = 3.0
    footway: float = 2.5
    edge_beam: float = 0.3
    """Each side: the edge beam carrying the railing (outside the usable width)."""
    clearance: float = 8.5
    gradient_city: float = 0.038
    gradient_gehlsdorf: float = 0.018
    bascule_length: float = 70.0
    crest_height: float = 9.6
    """Deck top over the fixed high part (underside 8.6 m above the water)."""
    deck_depth: float = 1.0
    """Steel box with the concrete deck, over the water."""
    ramp_depth: float = 0.6
    """Concrete slab of the land ramps and of the bridge over Am Strande."""
    railing_height: float = 1.3
    railing_thickness: float = 0.06
    s_curve_amplitude: float = 22.0
    """Sideways swing of the S-curve from its chord (m)."""
    am_strande_half_span: float = 12.0
    street_clearance: float = 4.5
    max_span: float = 40.0
    pier_length: float = 1.6
    pier_width: float = 4.0
    bascule_pier_length: float = 8.0
    bascule_pier_width: float = 9.0
    river_bed: float = -4.0
    pile_radius: float = 0.6
    pile_top: float = 3.0
    station_step: float = 3.0
    cost_eur: float = 62_850_000.0
    cost_date: str = "2024-12"
    opening_year: int = 2030

    @property
    def deck_width(self) -> float:
        """Usable width plus the edge beams."""
        return self.usable_width + 2.0 * self.edge_beam


DESIGN = BridgeDesign()


@dataclass
class Alignment:
    """The bridge axis: positions and tangents by arc length ``s`` from the south end."""

    s: FloatArray
    xy: FloatArray

    @property
    def length(self) -> float:
        """Arc length of the axis."""
        return float(self.s[-1])

    def position(self, s: npt.ArrayLike) -> FloatArray:
        """(k, 2) axis points at stations ``s``."""
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        return np.column_stack([np.interp(s, self.s, self.xy[:, 0]),
                                np.interp(s, self.s, self.xy[:, 1])])

    def tangent(self, s: npt.ArrayLike) -> FloatArray:
        """(k, 2) unit tangents at stations ``s``."""
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        d = np.gradient(self.xy, self.s, axis=0)
        t = np.column_stack([np.interp(s, self.s, d[:, 0]), np.interp(s, self.s, d[:, 1])])
        return t / np.linalg.norm(t, axis=1)[:, None]

    def normal(self, s: npt.ArrayLike) -> FloatArray:
        """(k, 2) unit normals pointing left of the direction of travel (south → north)."""
        t = self.tangent(s)
        return np.column_stack([-t[:, 1], t[:, 0]])

    @cached_property
    def line(self) -> shapely.LineString:
        """The axis as a line."""
        return shapely.LineString(self.xy[:: max(1, len(self.xy) // 2000)].tolist()
                                  + [self.xy[-1].tolist()])

    def station_of(self, point: shapely.Point) -> float:
        """Arc length of the axis point nearest ``point``."""
        return float(self.line.project(point))


@functools.lru_cache(maxsize=4)
def alignment(design: BridgeDesign = DESIGN) -> Alignment:
    """The S-curve from the south end towards Fährberg whose length is ``design.length``."""
    from tools.sample_data.world import PLACE

    south = np.array([PLACE["warnowbruecke-sued"].e, PLACE["warnowbruecke-sued"].n])
    target = np.array([PLACE["warnowbruecke-nord"].e, PLACE["warnowbruecke-nord"].n])
    u = (target - south) / np.linalg.norm(target - south)
    left = np.array([-u[1], u[0]])
    t = np.linspace(0.0, 1.0, 10001)

    def curve(chord: float) -> FloatArray:
        return (south + np.outer(t * chord, u)
                + np.outer(design.s_curve_amplitude * np.sin(2.0 * np.pi * t), left))

    def arc(points: FloatArray) -> FloatArray:
        return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])

    lo, hi = 0.5 * design.length, design.length
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if arc(curve(mid))[-1] < design.length:
            lo = mid
        else:
            hi = mid
    points = curve(0.5 * (lo + hi))
    s = arc(points)
    s *= design.length / s[-1]  # remove the last micrometres of bisection error
    return Alignment(s, points)


# --------------------------------------------------------------------------------------------
# Solids
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Polygon3:
    """One planar ring (k, 3), counter-clockwise seen from outside."""

    ring: FloatArray


@dataclass(slots=True)
class SurfaceGroup:
    """A CityGML 2.0 bridge boundary surface: its class and its polygons."""

    cls: str
    """OuterFloorSurface, OuterCeilingSurface, WallSurface, ClosureSurface."""
    polygons: list[FloatArray]
    color: tuple[float, float, float]


@dataclass(slots=True)
class Element:
    """A BridgeConstructionElement or BridgeInstallation: closed solids, one colour."""

    cls: str
    """"BridgeConstructionElement" or "BridgeInstallation"."""
    key: str
    name: str
    function: str
    solids: list[list[FloatArray]]
    color: tuple[float, float, float]


@dataclass(slots=True)
class Part:
    """A BridgePart: a deck section swept along the axis, with its elements."""

    key: str
    name: str
    function: str
    s0: float
    s1: float
    movable: bool
    surfaces: list[SurfaceGroup]
    elements: list[Element] = field(default_factory=list)


CONCRETE = (0.72, 0.71, 0.68)
DECK = (0.55, 0.55, 0.53)
STEEL = (0.82, 0.83, 0.84)
BASCULE_STEEL = (0.74, 0.18, 0.14)
RAILING = (0.30, 0.32, 0.35)
TIMBER = (0.33, 0.27, 0.20)


@dataclass
class PlannedBridge:
    """The Warnowbrücke: alignment, height profile, parts and elements."""

    design: BridgeDesign
    alignment: Alignment
    z_south: float
    z_north: float
    s_street: float
    street_height: float
    parts: list[Part]
    elements: list[Element]
    piers: list[tuple[float, bool]]
    """(station, is a bascule pier) of every pier."""

    @property
    def crest(self) -> tuple[float, float]:
        """Stations where the deck reaches and leaves its crest height."""
        d = self.design
        return ((d.crest_height - self.z_south) / d.gradient_city,
                d.length - (d.crest_height - self.z_north) / d.gradient_gehlsdorf)

    @property
    def bascule(self) -> tuple[float, float]:
        """Stations of the bascule span's ends."""
        part = next(p for p in self.parts if p.movable)
        return part.s0, part.s1

    def deck_top(self, s: npt.ArrayLike) -> FloatArray:
        """Deck top height (DHHN2016) on the axis at stations ``s``."""
        return deck_top(self.design, self.z_south, self.z_north, np.asarray(s, np.float64))

    def depth(self, s: npt.ArrayLike) -> FloatArray:
        """Structural depth of the deck at stations ``s``."""
        return deck_depth(self.design, self.s_street, np.asarray(s, np.float64))

    def summary(self) -> dict[str, Any]:
        """Key numbers for world.json."""
        south, north = self.alignment.position([0.0, self.design.length])
        c0, c1 = self.crest
        b0, b1 = self.bascule
        return {
            "length": self.design.length,
            "south_end": [round(float(south[0]), 3), round(float(south[1]), 3),
                          round(self.z_south, 3)],
            "north_end": [round(float(north[0]), 3), round(float(north[1]), 3),
                          round(self.z_north, 3)],
            "crest": [round(c0, 3), round(c1, 3), self.design.crest_height],
            "bascule": [round(b0, 3), round(b1, 3)],
            "am_strande_station": round(self.s_street, 3),
            "piers": [round(s, 3) for s, _ in self.piers],
            "axis": [[round(float(x), 3), round(float(y), 3)]
                     for x, y in self.alignment.position(np.linspace(0, self.design.length, 55))],
        }


def deck_top(d: BridgeDesign, z_south: float, z_north: float, s: FloatArray) -> FloatArray:
    """Rise at the city gradient, level crest, fall at the Gehlsdorf gradient."""
    return np.minimum.reduce([z_south + d.gradient_city * s,
                              np.full_like(s, d.crest_height),
                              z_north + d.gradient_gehlsdorf * (d.length - s)])


def deck_depth(d: BridgeDesign, s_street: float, s: FloatArray) -> FloatArray:
    """The slab near the south end and over Am Strande; the box girder beyond; the slab
    again on the last metres at Gehlsdorf (tapering)."""
    ramp_end = s_street + d.am_strande_half_span
    taper = np.clip((d.length - s) / 40.0, 0.0, 1.0)
    box = d.ramp_depth + (d.deck_depth - d.ramp_depth) * taper
    return np.where(s <= ramp_end + 1e-9, d.ramp_depth, box)


def _stations(s0: float, s1: float, step: float) -> FloatArray:
    n = max(1, int(math.ceil((s1 - s0) / step - 1e-9)))
    return np.linspace(s0, s1, n + 1)


def _sweep(al: Alignment, stations: FloatArray, offsets: tuple[float, float],
           bottom: FloatArray, top: FloatArray) -> list[tuple[str, list[FloatArray]]]:
    """A closed solid swept along the axis between lateral offsets (left positive) and
    heights ``bottom``..``top`` per station: (face, polygons) for top, bottom, left, right,
    start, end. Top and bottom are triangles (the axis curves and climbs: quads would not
    be planar); the sides are vertical quads."""
    pos = al.position(stations)
    nrm = al.normal(stations)
    left = pos + nrm * offsets[0]
    right = pos + nrm * offsets[1]

    def p(xy: FloatArray, z: FloatArray) -> FloatArray:
        return np.column_stack([xy, z])

    tl, tr = p(left, top), p(right, top)
    bl, br = p(left, bottom), p(right, bottom)
    tops, bottoms, lefts, rights = [], [], [], []
    for k in range(len(stations) - 1):
        tops += [np.array([tl[k], tr[k], tr[k + 1]]), np.array([tl[k], tr[k + 1], tl[k + 1]])]
        bottoms += [np.array([bl[k], br[k + 1], br[k]]), np.array([bl[k], bl[k + 1], br[k + 1]])]
        rights.append(np.array([br[k], br[k + 1], tr[k + 1], tr[k]]))
        lefts.append(np.array([bl[k + 1], bl[k], tl[k], tl[k + 1]]))
    start = [np.array([br[0], tr[0], tl[0], bl[0]])]
    end = [np.array([bl[-1], tl[-1], tr[-1], br[-1]])]
    return [("top", tops), ("bottom", bottoms), ("left", lefts), ("right", rights),
            ("start", start), ("end", end)]


def _box(centre: FloatArray, along: FloatArray, length: float, width: float,
         z0: float, z1: float) -> list[FloatArray]:
    """A closed box: ``length`` along the unit vector ``along``, ``width`` across it."""
    across = np.array([-along[1], along[0]])
    a, b = along * length / 2.0, across * width / 2.0
    corners = [centre - a - b, centre + a - b, centre + a + b, centre - a + b]  # CCW
    return _prism(corners, z0, z1)


def _prism(corners: list[FloatArray], z0: float, z1: float) -> list[FloatArray]:
    """A vertical prism over a counter-clockwise base polygon."""
    n = len(corners)
    bottom = np.array([[c[0], c[1], z0] for c in corners[::-1]])
    top = np.array([[c[0], c[1], z1] for c in corners])
    sides = [np.array([[corners[i][0], corners[i][1], z0],
                       [corners[(i + 1) % n][0], corners[(i + 1) % n][1], z0],
                       [corners[(i + 1) % n][0], corners[(i + 1) % n][1], z1],
                       [corners[i][0], corners[i][1], z1]]) for i in range(n)]
    return [bottom, top, *sides]


def _pile(centre: FloatArray, radius: float, z0: float, z1: float) -> list[FloatArray]:
    """An octagonal pile."""
    angles = np.arange(8) * (np.pi / 4.0) + np.pi / 8.0
    corners = [centre + radius * np.array([math.cos(a), math.sin(a)]) for a in angles]
    return _prism(corners, z0, z1)


def warnowbruecke(world: World, design: BridgeDesign = DESIGN) -> PlannedBridge:
    """The planned bridge on the world's terrain; InputError if the world breaks the design
    (an end in the water, too little room for the bascule, the deck cutting the ground)."""
    al = alignment(design)
    L = design.length
    ends = al.position([0.0, L])
    for (e, n), which in zip(ends, ("south", "north"), strict=True):
        if world.is_water(e, n):
            raise InputError(f"{_HERE}: the Warnowbrücke's {which} end ({e:.1f}, {n:.1f}) is "
                             "in the river: move PLACES warnowbruecke-* or the river outline")
    z_south = round(float(world.terrain_height(*ends[0])), 3)
    z_north = round(float(world.terrain_height(*ends[1])), 3)
    street = next(s for s in world.streets if s.name == "Am Strande")
    crossing = al.line.intersection(shapely.LineString(street.line))
    if crossing.is_empty:
        raise InputError(f"{_HERE}: the bridge axis does not cross the street Am Strande")
    s_street = al.station_of(shapely.Point(crossing.coords[0]))
    street_height = float(world.terrain_height(*al.position(s_street)[0]))
    top = lambda s: deck_top(design, z_south, z_north, np.asarray(s, np.float64))  # noqa: E731
    depth = lambda s: deck_depth(design, s_street, np.asarray(s, np.float64))  # noqa: E731
    half_street = street.width / 2.0
    street_edges = np.array([s_street - half_street, s_street + half_street])
    under = top(street_edges) - depth(street_edges)
    if np.any(under - street_height < design.street_clearance):
        raise InputError(f"{_HERE}: the deck clears Am Strande by only "
                         f"{float(np.min(under - street_height)):.2f} m (needs "
                         f"{design.street_clearance} m): raise the south end or move the street")
    c0 = (design.crest_height - z_south) / design.gradient_city
    c1 = L - (design.crest_height - z_north) / design.gradient_gehlsdorf
    middle = 0.5 * (c0 + c1)
    b0, b1 = middle - design.bascule_length / 2.0, middle + design.bascule_length / 2.0
    if b0 - c0 < 15.0 or c1 - b1 < 15.0:
        raise InputError(f"{_HERE}: the crest ({c0:.1f}-{c1:.1f} m) has no room for the "
                         f"{design.bascule_length} m bascule with fixed spans on both sides")
    lane = al.position(np.linspace(b0, b1, 15))
    if not np.all(world.is_water(lane[:, 0], lane[:, 1])):
        raise InputError(f"{_HERE}: the bascule span ({b0:.1f}-{b1:.1f} m) is not over water")
    check = np.linspace(0.0, L, 1083)
    axis = al.position(check)
    on_land = ~world.is_water(axis[:, 0], axis[:, 1])
    ground = world.terrain_height(axis[:, 0], axis[:, 1])
    if np.any((top(check) < ground - 0.02) & on_land):
        raise InputError(f"{_HERE}: the deck would cut into the ground: check the terrain "
                         "near the bridge ends")

    sa0, sa1 = s_street - design.am_strande_half_span, s_street + design.am_strande_half_span
    half = design.deck_width / 2.0
    specs = [
        ("rampe-sued", "Rampe Schnickmannstraße", "Rampe", 0.0, sa0, False),
        ("am-strande", "Brücke über die Straße Am Strande", "Straßenüberführung", sa0, sa1,
         False),
        ("fest-sued", "Festbrücke Süd", "Überbau", sa1, b0, False),
        ("klappbruecke", "Klappbrücke (Hubklappe, 70 m)", "Klappbrücke", b0, b1, True),
        ("fest-nord", "Festbrücke Nord", "Überbau", b1, L, False),
    ]
    parts = []
    for key, name, function, s0, s1, movable in specs:
        stations = _stations(s0, s1, design.station_step)
        z_top = top(stations)
        faces = dict(_sweep(al, stations, (half, -half), z_top - depth(stations), z_top))
        side = BASCULE_STEEL if movable else STEEL
        surfaces = [
            SurfaceGroup("OuterFloorSurface", faces["top"], DECK),
            SurfaceGroup("OuterCeilingSurface", faces["bottom"], side),
            SurfaceGroup("WallSurface", faces["left"] + faces["right"], side),
            SurfaceGroup("WallSurface" if s0 == 0.0 else "ClosureSurface", faces["start"], side),
            SurfaceGroup("WallSurface" if s1 == L else "ClosureSurface", faces["end"], side),
        ]
        part = Part(key, name, function, s0, s1, movable, surfaces)
        inner = half - design.edge_beam / 2.0
        for side_key, side_name, offsets in (
            ("west", "Geländer West", (inner + design.railing_thickness / 2.0,
                                       inner - design.railing_thickness / 2.0)),
            ("ost", "Geländer Ost", (-inner + design.railing_thickness / 2.0,
                                     -inner - design.railing_thickness / 2.0)),
        ):
            rail = dict(_sweep(al, stations, offsets, z_top, z_top + design.railing_height))
            solid = [p for k in ("top", "bottom", "left", "right", "start", "end")
                     for p in rail[k]]
            part.elements.append(Element("BridgeInstallation", f"gelaender-{side_key}",
                                         side_name, "Geländer", [solid], RAILING))
        parts.append(part)

    # Piers: evenly spaced within each section, at most max_span apart; the bascule's two
    # piers are large (machinery) and guarded by protective piles against ship collision.
    piers: list[tuple[float, bool]] = []
    for s0, s1 in ((0.0, sa0), (sa0, sa1), (sa1, b0), (b1, L)):
        n = max(1, int(math.ceil((s1 - s0) / design.max_span - 1e-9)))
        for k in range(1, n + 1):
            s = s0 + (s1 - s0) * k / n
            if s1 == b0 and k == n:
                continue  # the bascule pier stands there
            if s1 == L and k == n:
                continue  # the north end rests on its abutment
            piers.append((s, False))
    piers += [(b0, True), (b1, True)]
    piers.sort()
    elements = []
    for number, (s, bascule) in enumerate(piers, start=1):
        along = al.tangent(s)[0]
        centre = al.position(s)[0]
        length = design.bascule_pier_length if bascule else design.pier_length
        width = design.bascule_pier_width if bascule else design.pier_width
        reach = np.linspace(s - length / 2.0, s + length / 2.0, 5)
        z1 = float(np.min(top(reach) - depth(reach)))
        wet = bool(world.is_water(*centre))
        z0 = design.river_bed if wet else float(world.terrain_height(*centre)) - 1.0
        name = f"Klappenpfeiler {'Süd' if s == b0 else 'Nord'}" if bascule else f"Pfeiler {number}"
        elements.append(Element("BridgeConstructionElement", f"pfeiler-{number:02d}", name,
                                "Pfeiler", [_box(centre, along, length, width, z0, z1)],
                                CONCRETE))
        if bascule or (wet and min(abs(s - b0), abs(s - b1)) < design.max_span + 1.0):
            across = np.array([-along[1], along[0]])
            for side, sign in (("West", 1.0), ("Ost", -1.0)):
                base = centre + across * sign * (width / 2.0 + 6.0)
                solids = [_pile(base + along * off, design.pile_radius, design.river_bed,
                                design.pile_top) for off in (-3.0, 0.0, 3.0)]
                elements.append(Element(
                    "BridgeConstructionElement", f"dalben-{number:02d}-{side.lower()}",
                    f"Schutzdalben {side} an {name}", "Anfahrschutz", solids, TIMBER))
    return PlannedBridge(design, al, z_south, z_north, s_street, street_height, parts,
                         elements, piers)


# --------------------------------------------------------------------------------------------
# Existing bridges (in today's LiDAR as class 17)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExistingBridge:
    """A bridge the LiDAR sees: its deck outline and a deck height that rises from both
    ends (at the terrain) to ``deck_height`` in the middle."""

    name: str
    outline: shapely.Polygon
    axis: tuple[tuple[float, float], tuple[float, float]]
    end_heights: tuple[float, float]
    deck_height: float

    def height(self, e: FloatArray, n: FloatArray) -> FloatArray:
        """Deck height at points on the deck."""
        (x0, y0), (x1, y1) = self.axis
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((e - x0) * dx + (n - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        rise = np.sin(np.pi * t)
        ends = self.end_heights[0] * (1.0 - t) + self.end_heights[1] * t
        return ends + (self.deck_height - ends) * rise


# Approximate: the Petribrücke carries the Dierkower Damm over the Warnow east of the
# Petrikirche.
PETRIBRUECKE_AXIS = ((313690.0, 5997470.0), (313950.0, 5997470.0))
PETRIBRUECKE_WIDTH = 22.0


def existing_bridges(world: World) -> list[ExistingBridge]:
    """The Petribrücke (approximate), for the LiDAR's class 17."""
    axis = PETRIBRUECKE_AXIS
    line = shapely.LineString(axis)
    outline = shapely.normalize(line.buffer(PETRIBRUECKE_WIDTH / 2.0, cap_style="flat"))
    ends = tuple(round(float(world.terrain_height(x, y)) + 0.3, 3) for x, y in axis)
    return [ExistingBridge("Petribrücke", outline, axis, (ends[0], ends[1]), 4.8)]
