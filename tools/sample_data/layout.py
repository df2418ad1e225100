"""What stands in the sample world: buildings district by district, and the vegetation.

Districts follow the tables in :mod:`tools.sample_data.world`: the old town's perimeter
blocks (3–5 storeys, gable roofs with the eaves along the streets, the Marienkirche and the
Petrikirche), the Kröpeliner-Tor-Vorstadt's larger blocks, the Stadthafen's Speicher on the
piers and along Am Strande, the Osthafen's halls, Gehlsdorf's houses and villas in gardens,
the neurology centre, an allotment colony, and (planned, separate) the WarnowQuartier.
Nothing stands in the river, on the Primelberg meadows or on the bridge's line.

Randomness comes from ``random.Random`` streams named by seed and district, so one district's
change leaves the others as they were.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import shapely

from tools.sample_data import shapes
from tools.sample_data.shapes import FLAT, GABLE, HIP, PYRAMID, SHED, TOWER, Body, Placement
from tools.sample_data.world import (
    ALLOTMENTS,
    CAMPUS,
    CLEARED_SITE,
    GEHLSDORF,
    KTV,
    OLD_TOWN,
    OLD_TOWN_LANE,
    OTHER_STREETS,
    PARKS,
    PENINSULAS,
    PLACE,
    SQUARES,
    WARNOWQUARTIER,
    Grid,
    Street,
)

if TYPE_CHECKING:
    from tools.sample_data.world import World

FloatArray = npt.NDArray[np.float64]

# AdV Gebäudefunktion codes used here
RESIDENTIAL = "31001_1000"
HOUSE = "31001_1010"
MIXED = "31001_1100"
SHOPS_FLATS = "31001_1120"
COMMERCIAL = "31001_2000"
OFFICE = "31001_2020"
SHOP = "31001_2050"
STORAGE = "31001_2140"
HALL = "31001_2143"
GARAGE = "31001_2463"
PUBLIC = "31001_3000"
EDUCATION = "31001_3020"
CULTURE = "31001_3030"
CHURCH = "31001_3041"
HOSPITAL = "31001_3051"
DAYCARE = "31001_3065"
GARDEN_HOUSE = "31001_1313"

POSTCODES = {"Altstadt": "18055", "Kröpeliner-Tor-Vorstadt": "18057", "Stadthafen": "18055",
             "Gehlsdorf": "18147", "WarnowQuartier": "18147"}

ROOF_COLOURS = {
    "tile": (158, 62, 44), "dark tile": (120, 46, 38), "slate": (72, 74, 80),
    "grey": (118, 118, 122), "gravel": (150, 146, 136), "copper": (92, 140, 118),
    "bitumen": (64, 64, 66), "green": (96, 120, 70),
}


@dataclass(slots=True)
class BuildingSolid:
    """One closed body as written: the Building itself or one of its BuildingParts."""

    function: str
    roof_type: str
    storeys: int
    measured_height: float
    surfaces: list[tuple[str, FloatArray]]
    """(CityGML boundary surface class, world ring (k, 3) without the closing point)."""


@dataclass(slots=True)
class Building:
    """A building of the sample world."""

    gml_id: str
    district: str
    main: BuildingSolid
    parts: list[BuildingSolid]
    ground_z: float
    footprint: shapely.Polygon
    roof_colour: tuple[int, int, int]
    name: str | None = None
    address: tuple[str, str, str] | None = None
    """(street, house number, postcode)."""

    @property
    def solids(self) -> list[BuildingSolid]:
        """The main body and its parts."""
        return [self.main, *self.parts]

    def roof_rings(self) -> list[FloatArray]:
        """Every roof polygon of the building and its parts."""
        return [r for s in self.solids for kind, r in s.surfaces if kind == "RoofSurface"]

    def tile(self) -> tuple[int, int]:
        """South-west corner (km, even) of the 2 km M-V tile holding the footprint centroid."""
        c = self.footprint.centroid
        return (int(c.x // 2000) * 2, int(c.y // 2000) * 2)


@dataclass(slots=True)
class Vegetation:
    """Trees and shrubs as crowns: trunk position, ground, crown radius, crown bottom and
    top above the ground, ASPRS class (5 high, 4 medium vegetation), crown colour."""

    e: FloatArray
    n: FloatArray
    ground: FloatArray
    radius: FloatArray
    bottom: FloatArray
    top: FloatArray
    kind: npt.NDArray[np.uint8]
    colour: npt.NDArray[np.uint8]


def streets() -> list[Street]:
    """Every street: the districts' grids, the lane, the harbour and shore streets."""
    out: list[Street] = []
    for grid in (OLD_TOWN, KTV, GEHLSDORF):
        for x, name, width in grid.columns:
            out.append(Street(name, ((x, grid.n_range[0]), (x, grid.n_range[1])), width))
        for y, name, width in grid.rows:
            surface = "paving" if name == "Kröpeliner Straße" else "asphalt"
            out.append(Street(name, ((grid.e_range[0], y), (grid.e_range[1], y)), width,
                              surface))
    x, name, width = OLD_TOWN_LANE
    out.append(Street(name, ((x, 5997300.0), (x, 5997600.0)), width, "paving"))
    out.extend(OTHER_STREETS)
    return out


# --------------------------------------------------------------------------------------------
# Placing buildings
# --------------------------------------------------------------------------------------------


class Site:
    """The placed footprints; refuses overlaps, water, the bridge line and the outside."""

    CELL = 25.0

    def __init__(self, world: World, keep_clear: list[shapely.Geometry]) -> None:
        from tools.sample_data import bridge

        self.world = world
        self.bridge_line = bridge.alignment().line.buffer(14.0)
        shapely.prepare(self.bridge_line)
        self.inner = world.extent.polygon.buffer(-4.0)
        self.keep_clear = shapely.union_all(keep_clear)
        shapely.prepare(self.keep_clear)
        self.cells: dict[tuple[int, int], list[int]] = defaultdict(list)
        self.footprints: list[shapely.Polygon] = []

    def _cells(self, geom: shapely.Geometry) -> list[tuple[int, int]]:
        x0, y0, x1, y1 = geom.bounds
        c = self.CELL
        return [(i, j) for i in range(int(x0 // c), int(x1 // c) + 1)
                for j in range(int(y0 // c), int(y1 // c) + 1)]

    def free(self, footprint: shapely.Polygon, min_water_distance: float = 2.0,
             landmark: bool = False) -> bool:
        """True if the footprint may be built: inside the extent, away from the water and the
        bridge line, overlapping no other footprint (touching is fine: row houses). Landmarks
        may stand on squares and in parks."""
        if not footprint.is_valid or not self.inner.contains(footprint):
            return False
        xy = np.asarray(footprint.exterior.coords)
        if self.world.water_distance.height(xy[:, 0], xy[:, 1]).min() < min_water_distance:
            return False
        if shapely.distance(self.world.river, footprint) < min(2.0, min_water_distance):
            return False
        if (self.bridge_line.intersects(footprint)
                or (not landmark and self.keep_clear.intersects(footprint))):
            return False
        seen: set[int] = set()
        for cell in self._cells(footprint):
            for k in self.cells.get(cell, ()):
                if k in seen:
                    continue
                seen.add(k)
                other = self.footprints[k]
                if other.intersects(footprint) and other.intersection(footprint).area > 0.01:
                    return False
        return True

    def add(self, footprint: shapely.Polygon) -> None:
        """Register a placed footprint."""
        k = len(self.footprints)
        self.footprints.append(footprint)
        for cell in self._cells(footprint):
            self.cells[cell].append(k)


_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass
class Builder:
    """Turns bodies into buildings with M-V-style ids and attributes."""

    world: World
    site: Site
    prefix: str
    rnd: random.Random
    buildings: list[Building] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def new_id(self) -> str:
        """DEMVAL-style id: prefix, two random characters, the running number in base 62."""
        i = len(self.buildings)
        tail = "".join(_ID_CHARS[(i // 62 ** k) % 62] for k in range(7, -1, -1))
        head = "".join(self.rnd.choice(_ID_CHARS[:36]) for _ in range(2))
        return f"{self.prefix}{head}{tail}"

    def address(self, street: str | None, district: str) -> tuple[str, str, str] | None:
        """The next house number on ``street`` (None without a street)."""
        if street is None:
            return None
        self.numbers[street] += 1
        number = str(self.numbers[street])
        if self.rnd.random() < 0.08:
            number += self.rnd.choice("ab")
        return (street, number, POSTCODES.get(district, "18055"))

    def place(self, district: str, bodies: list[tuple[Body, Placement, str, int]],
              roof_colour: str, *, name: str | None = None, street: str | None = None,
              min_water_distance: float = 2.0, landmark: bool = False) -> Building | None:
        """Place one building (the first body is the Building, the rest BuildingParts);
        None if the site refuses it. ``bodies``: (body, placement without z, function,
        storeys). A landmark may stand on a square or in a park."""
        footprints = [shapely.Polygon(p.xy(np.asarray(b.footprint))) for b, p, _, _ in bodies]
        footprint = shapely.union_all(footprints) if len(footprints) > 1 else footprints[0]
        if not isinstance(footprint, shapely.Polygon):
            return None
        footprint = shapely.normalize(footprint)
        if not self.site.free(footprint, min_water_distance, landmark):
            return None
        xy = np.asarray(footprint.exterior.coords)
        c = footprint.centroid
        samples = self.world.base_terrain.height(np.append(xy[:, 0], c.x),
                                                 np.append(xy[:, 1], c.y))
        ground_z = round(float(np.mean(samples)), 3)
        solids = []
        for body, placement, function, storeys in bodies:
            placed = Placement(placement.e, placement.n, ground_z, placement.angle)
            faces = shapes.surfaces(body)
            rings = list(zip([kind for kind, _ in faces],
                             placed.rings([ring for _, ring in faces]), strict=True))
            solids.append(BuildingSolid(function, body.roof_type, storeys,
                                        round(body.top, 3), rings))
        building = Building(self.new_id(), district, solids[0], solids[1:], ground_z,
                            footprint, ROOF_COLOURS[roof_colour], name,
                            self.address(street, district))
        self.site.add(footprint)
        self.buildings.append(building)
        return building


def _eaves(storeys: int, rnd: random.Random, storey_height: float = 3.1) -> float:
    return storeys * storey_height + rnd.uniform(0.3, 0.9)


def _weighted(rnd: random.Random, items: list[tuple[object, float]]) -> object:
    total = sum(w for _, w in items)
    r = rnd.random() * total
    for value, w in items:
        r -= w
        if r < 0:
            return value
    return items[-1][0]


def _frame(origin: tuple[float, float], angle: float, u: float, v: float) -> tuple[float, float]:
    c, s = math.cos(angle), math.sin(angle)
    return origin[0] + u * c - v * s, origin[1] + u * s + v * c


def _split(length: float, lo: float, hi: float, rnd: random.Random) -> list[float]:
    """Widths in [lo, hi] (roughly) that add up to ``length``."""
    widths: list[float] = []
    left = length
    while left > hi:
        w = rnd.uniform(lo, hi)
        if left - w < lo:
            w = left / 2.0
        widths.append(w)
        left -= w
    if left >= lo * 0.6:
        widths.append(left)
    elif widths:
        widths[-1] += left
    return widths


# --------------------------------------------------------------------------------------------
# Perimeter blocks (old town, Kröpeliner-Tor-Vorstadt)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockStyle:
    """How a district's perimeter blocks look."""

    district: str
    frontage: tuple[float, float]
    depth: tuple[float, float]
    storeys: list[tuple[object, float]]
    roofs: list[tuple[object, float]]
    pitch: tuple[float, float]
    gable_to_street: float
    gap: float
    functions: list[tuple[object, float]]
    colours: list[tuple[object, float]]
    min_water_distance: float = 92.0


OLD_TOWN_STYLE = BlockStyle(
    "Altstadt", frontage=(8.5, 17.0), depth=(10.0, 13.0),
    storeys=[(3, 35), (4, 40), (5, 25)],
    roofs=[(GABLE, 72), (HIP, 8), (FLAT, 20)], pitch=(42.0, 55.0), gable_to_street=0.18,
    gap=0.05,
    functions=[(RESIDENTIAL, 40), (SHOPS_FLATS, 30), (MIXED, 12), (SHOP, 8), (OFFICE, 6),
               (PUBLIC, 4)],
    colours=[("tile", 55), ("dark tile", 25), ("slate", 12), ("grey", 8)],
)
KTV_STYLE = BlockStyle(
    "Kröpeliner-Tor-Vorstadt", frontage=(16.0, 26.0), depth=(12.0, 15.0),
    storeys=[(4, 55), (5, 40), (3, 5)],
    roofs=[(GABLE, 45), (HIP, 20), (FLAT, 35)], pitch=(35.0, 45.0), gable_to_street=0.0,
    gap=0.06,
    functions=[(RESIDENTIAL, 60), (SHOPS_FLATS, 20), (MIXED, 10), (OFFICE, 5),
               (EDUCATION, 5)],
    colours=[("tile", 40), ("slate", 25), ("grey", 20), ("gravel", 15)],
)


def _row_building(b: Builder, style: BlockStyle, origin: tuple[float, float], angle: float,
                  width: float, depth: float, street: str) -> Building | None:
    """One row house: footprint [0, width] along the street × [0, depth] into the block."""
    rnd = b.rnd
    storeys = int(_weighted(rnd, style.storeys))  # type: ignore[call-overload]
    roof = str(_weighted(rnd, style.roofs))
    pitch = rnd.uniform(*style.pitch)
    eaves = _eaves(storeys, rnd, 3.2 if style.district == "Altstadt" else 3.3)
    if roof == GABLE and rnd.random() < style.gable_to_street and width < depth:
        # Hanseatic gable house: the ridge runs into the block, the gable faces the street.
        body = shapes.rectangle(depth, width, eaves, GABLE, pitch)
        placement = Placement(*_frame(origin, angle, width, 0.0), 0.0, angle + math.pi / 2.0)
    else:
        if roof == HIP and width <= depth + 1.0:
            roof = GABLE
        body = shapes.rectangle(width, depth, eaves, roof, pitch)
        placement = Placement(origin[0], origin[1], 0.0, angle)
    function = str(_weighted(rnd, style.functions))
    colour = "gravel" if roof == FLAT else str(_weighted(rnd, style.colours))
    return b.place(style.district, [(body, placement, function, storeys)], colour,
                   street=street, min_water_distance=style.min_water_distance)


def perimeter_block(b: Builder, style: BlockStyle, box: tuple[float, float, float, float],
                    names: tuple[str, str, str, str]) -> list[Building]:
    """Row houses around a block (south, east, north, west sides; the south and north rows
    take the corners), a few rear buildings in the courtyard."""
    rnd = b.rnd
    x0, y0, x1, y1 = box
    if x1 - x0 < 30.0 or y1 - y0 < 30.0:
        return []
    d_s, d_n = rnd.uniform(*style.depth), rnd.uniform(*style.depth)
    d_e, d_w = rnd.uniform(*style.depth), rnd.uniform(*style.depth)
    sides = [
        ((x0, y0), 0.0, x1 - x0, d_s, names[0]),                 # south row, west → east
        ((x1, y0 + d_s), math.pi / 2.0, (y1 - d_n) - (y0 + d_s), d_e, names[1]),
        ((x1, y1), math.pi, x1 - x0, d_n, names[2]),             # north row, east → west
        ((x0, y1 - d_n), -math.pi / 2.0, (y1 - d_n) - (y0 + d_s), d_w, names[3]),
    ]
    placed = []
    for origin, angle, length, depth, street in sides:
        if length < style.frontage[0]:
            continue
        u = 0.0
        for width in _split(length, *style.frontage, rnd):
            if rnd.random() >= style.gap:
                building = _row_building(b, style, _frame(origin, angle, u, 0.0), angle, width,
                                         depth, street)
                if building is not None:
                    placed.append(building)
            u += width
    # Rear buildings (workshops, garages) in the courtyard, free-standing.
    inner = (x0 + d_w + 3.0, y0 + d_s + 3.0, x1 - d_e - 3.0, y1 - d_n - 3.0)
    for _ in range(rnd.choice((0, 1, 1, 2))):
        a, c = rnd.uniform(6.0, 14.0), rnd.uniform(5.0, 9.0)
        if inner[2] - inner[0] < a + 2 or inner[3] - inner[1] < c + 2:
            break
        e = rnd.uniform(inner[0], inner[2] - a)
        n = rnd.uniform(inner[1], inner[3] - c)
        roof = FLAT if rnd.random() < 0.7 else SHED
        storeys = rnd.choice((1, 1, 2))
        body = shapes.rectangle(a, c, _eaves(storeys, rnd, 3.0), roof, 8.0)
        building = b.place(style.district, [(body, Placement(e, n, 0.0, 0.0),
                                             rnd.choice((COMMERCIAL, GARAGE, RESIDENTIAL)),
                                             storeys)], "bitumen",
                           min_water_distance=style.min_water_distance)
        if building is not None:
            placed.append(building)
    return placed


def _grid_blocks(grid: Grid) -> list[tuple[tuple[float, float, float, float],
                                           tuple[str, str, str, str]]]:
    """Blocks between a grid's streets: (box, street names south/east/north/west)."""
    out = []
    for (ya, sa, wa), (yb, sb, wb) in zip(grid.rows, grid.rows[1:], strict=False):
        for (xa, ea, va), (xb, eb, vb) in zip(grid.columns, grid.columns[1:], strict=False):
            box = (xa + va / 2.0 + 1.0, ya + wa / 2.0 + 1.0, xb - vb / 2.0 - 1.0,
                   yb - wb / 2.0 - 1.0)
            out.append((box, (sa, eb, sb, ea)))
    return out


def _inside(box: tuple[float, float, float, float], rect: tuple[float, float, float, float]
            ) -> bool:
    return box[0] >= rect[0] - 1 and box[1] >= rect[1] - 1 and box[2] <= rect[2] + 1 \
        and box[3] <= rect[3] + 1


def old_town(b: Builder) -> None:
    """Perimeter blocks, the Marienkirche and the Petrikirche."""
    lane_x, lane_name, lane_w = OLD_TOWN_LANE
    for box, names in _grid_blocks(OLD_TOWN):
        if any(_inside(box, sq) for sq in SQUARES.values()):
            continue
        if box[0] < lane_x < box[2] and box[1] > 5997300.0:
            perimeter_block(b, OLD_TOWN_STYLE, (box[0], box[1], lane_x - lane_w / 2 - 1, box[3]),
                            (names[0], lane_name, names[2], names[3]))
            perimeter_block(b, OLD_TOWN_STYLE, (lane_x + lane_w / 2 + 1, box[1], box[2], box[3]),
                            (names[0], names[1], names[2], lane_name))
        else:
            perimeter_block(b, OLD_TOWN_STYLE, box, names)
    _church(b, "Marienkirche", PLACE["marienkirche"].e, PLACE["marienkirche"].n,
            nave=(78.0, 27.0, 21.0, 33.5), transept=(17.0, 16.0), tower=(18.0, 15.0, 58.0, 86.0))
    _church(b, "Petrikirche", PLACE["petrikirche"].e, PLACE["petrikirche"].n,
            nave=(62.0, 24.0, 18.0, 29.0), transept=None, tower=(14.0, 14.0, 48.0, 117.0))


def _church(b: Builder, name: str, ce: float, cn: float,
            nave: tuple[float, float, float, float], transept: tuple[float, float] | None,
            tower: tuple[float, float, float, float]) -> None:
    """A church as one building: the nave (gable roof) with the west tower and the transept
    wings as BuildingParts. nave = (length, width, eaves, ridge); tower = (length, width,
    eaves, spire top); transept = (wing length out of the nave, wing width)."""
    length, width, eaves, ridge = nave
    pitch = math.degrees(math.atan((ridge - eaves) / (width / 2.0)))
    t_len, t_wid, t_eaves, t_top = tower
    # Local frame: x east along the nave, the tower at the west end, centred on (ce, cn).
    x0 = -(length + t_len) / 2.0 + t_len
    nave_body = shapes.rectangle(length, width, eaves, GABLE, pitch)
    bodies = [(nave_body, Placement(ce + x0, cn - width / 2.0, 0.0, 0.0), CHURCH, 1)]
    tower_pitch = math.degrees(math.atan((t_top - t_eaves) / (min(t_len, t_wid) / 2.0)))
    tower_body = shapes.rectangle(t_len, t_wid, t_eaves, TOWER, tower_pitch)
    bodies.append((tower_body, Placement(ce + x0 - t_len, cn - t_wid / 2.0, 0.0, 0.0),
                   CHURCH, 1))
    if transept is not None:
        out, wid = transept
        tx = ce + x0 + length * 0.62
        wing_pitch = pitch
        for sign in (1.0, -1.0):
            # A gable wing with its ridge pointing away from the nave (across x).
            wing = shapes.rectangle(out, wid, eaves * 0.92, GABLE, wing_pitch)
            if sign > 0:
                placement = Placement(tx + wid, cn + width / 2.0, 0.0, math.pi / 2.0)
            else:
                placement = Placement(tx, cn - width / 2.0, 0.0, -math.pi / 2.0)
            bodies.append((wing, placement, CHURCH, 1))
    b.place("Altstadt", bodies, "copper" if name == "Marienkirche" else "dark tile", name=name,
            street="Bei der Marienkirche" if name == "Marienkirche" else "Alter Markt",
            landmark=True)


def ktv(b: Builder) -> None:
    """The Kröpeliner-Tor-Vorstadt's blocks west of the Wallanlagen, and the gate."""
    for box, names in _grid_blocks(KTV):
        perimeter_block(b, KTV_STYLE, box, names)
    gate = PLACE["kroepeliner-tor"]
    body = shapes.rectangle(11.0, 13.0, 32.0, GABLE, 75.0)
    b.place("Altstadt", [(body, Placement(gate.e - 5.5, gate.n - 6.5, 0.0, 0.0), CULTURE, 6)],
            "dark tile", name="Kröpeliner Tor", street="Kröpeliner Straße", landmark=True)


def harbour(b: Builder) -> None:
    """Speicher on the piers and along Am Strande's landward side."""
    rnd = b.rnd
    # Speicher on the piers: gables to the water (ridge north-south), steep roofs.
    for name, pts in PENINSULAS.items():
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        e0, e1, n0, n1 = min(xs), max(xs), min(ys), max(ys)
        e = e0 + 8.0
        while e < e1 - 20.0:
            w = rnd.uniform(16.0, 22.0)
            if e + w > e1 - 6.0:
                break
            length = rnd.uniform(36.0, min(58.0, n1 - n0 - 30.0))
            n = rnd.uniform(n0 + 22.0, n1 - 8.0 - length)
            if name == "Silohalbinsel" and e - e0 < 20.0:
                storeys, roof, fn = 9, FLAT, OFFICE  # the silo, converted to offices
            else:
                storeys = rnd.choice((5, 6, 6, 7))
                roof, fn = GABLE, rnd.choice((STORAGE, MIXED, RESIDENTIAL, OFFICE))
            body = shapes.rectangle(length, w, _eaves(storeys, rnd, 3.0), roof,
                                    rnd.uniform(52.0, 58.0))
            b.place("Stadthafen", [(body, Placement(e + w, n, 0.0, math.pi / 2.0), fn,
                                    storeys)], "gravel" if roof == FLAT else "tile",
                    name=f"Speicher {name}" if roof == GABLE else f"Silo {name}",
                    street=name, min_water_distance=3.0)
            e += w + rnd.uniform(10.0, 16.0)
    # Along Am Strande's landward side (on the bank, graded plots): Speicher with their
    # gables east and west, modern office and flat blocks between, gaps for the streets down.
    street = next(s for s in OTHER_STREETS if s.name == "Am Strande")
    line = shapely.LineString(street.line)
    u = 40.0
    while u < line.length - 40.0:
        p = np.array(line.interpolate(u).coords[0])
        q = np.array(line.interpolate(u + 1.0).coords[0])
        angle = math.atan2(q[1] - p[1], q[0] - p[0])
        speicher = rnd.random() < 0.45
        if speicher:
            w, depth, storeys = rnd.uniform(28.0, 48.0), rnd.uniform(14.0, 18.0), rnd.choice(
                (5, 6, 6, 7))
            body = shapes.rectangle(w, depth, _eaves(storeys, rnd, 3.0), GABLE,
                                    rnd.uniform(50.0, 56.0))
            fn, colour = rnd.choice((STORAGE, MIXED, RESIDENTIAL)), "tile"
        else:
            w, depth, storeys = rnd.uniform(16.0, 30.0), rnd.uniform(12.0, 16.0), rnd.choice(
                (3, 4, 5))
            body = shapes.rectangle(w, depth, _eaves(storeys, rnd, 3.2), FLAT, 0.0)
            fn, colour = rnd.choice((OFFICE, COMMERCIAL, SHOPS_FLATS)), "gravel"
        # The building's front stands 16 m south of the street's centre line.
        origin = _frame((float(p[0]), float(p[1])), angle, w, -16.0)
        b.place("Stadthafen", [(body, Placement(origin[0], origin[1], 0.0, angle + math.pi),
                                fn, storeys)], colour,
                name="Speicher am Strande" if speicher else None, street="Am Strande",
                min_water_distance=32.0)
        u += w + rnd.uniform(8.0, 20.0)


def gehlsdorf(b: Builder) -> None:
    """Houses and villas in gardens along Gehlsdorf's streets, the neurology centre."""
    rnd = b.rnd
    campus = shapely.box(*CAMPUS)
    grid = GEHLSDORF
    crossings = [x for x, _, _ in grid.columns]
    for y, street, width in grid.rows:
        for side in (1.0, -1.0):
            e = grid.e_range[0]
            while e < grid.e_range[1] - 10.0:
                plot = rnd.uniform(28.0, 40.0)
                if any(abs(e + plot / 2.0 - x) < plot / 2.0 + 6.0 for x in crossings):
                    e += 8.0
                    continue
                if rnd.random() > 0.12:  # some plots are only gardens
                    _house(b, rnd, e, y, side, plot, width, street, campus)
                e += plot
    # Villas between the shore promenade and Uferstraße.
    promenade = next(s for s in OTHER_STREETS if s.name == "Uferpromenade Gehlsdorf")
    line = shapely.LineString(promenade.line)
    u = 30.0
    while u < line.length:
        p = np.array(line.interpolate(u).coords[0])
        if p[0] > grid.e_range[1] - 20.0:
            break
        q = np.array(line.interpolate(u + 1.0).coords[0])
        angle = math.atan2(q[1] - p[1], q[0] - p[0])
        villa = rnd.random() < 0.8
        a, c = (rnd.uniform(13.0, 19.0), rnd.uniform(10.0, 13.0)) if villa else (
            rnd.uniform(10.0, 16.0), rnd.uniform(8.0, 10.0))
        storeys = rnd.choice((2, 2, 3)) if villa else 1
        roof = HIP if villa and a > c + 1.0 else GABLE
        body = shapes.rectangle(a, c, _eaves(storeys, rnd, 3.2), roof, rnd.uniform(30.0, 42.0))
        origin = _frame((float(p[0]), float(p[1])), angle, 0.0, rnd.uniform(16.0, 24.0))
        b.place("Gehlsdorf", [(body, Placement(origin[0], origin[1], 0.0, angle),
                               RESIDENTIAL if villa else CULTURE, storeys)],
                rnd.choice(("slate", "tile", "dark tile")),
                name=None if villa else "Vereinshaus Segelclub", street="Uferpromenade",
                min_water_distance=20.0)
        u += rnd.uniform(40.0, 65.0)
    # Universitätsmedizin Rostock, Zentrum für Nervenheilkunde (approximate).
    x0, y0, x1, y1 = CAMPUS
    wings = [(x0 + 20, y0 + 20, 80.0, 16.0, 0.0, 4, HIP), (x0 + 20, y0 + 70, 60.0, 15.0, 0.0, 3,
                                                            HIP),
             (x0 + 130, y0 + 20, 16.0, 90.0, 0.0, 4, FLAT), (x0 + 170, y0 + 30, 70.0, 18.0, 0.0,
                                                             3, FLAT),
             (x0 + 170, y0 + 90, 60.0, 16.0, 0.0, 3, HIP), (x0 + 30, y0 + 115, 50.0, 14.0, 0.0,
                                                            2, GABLE)]
    for e, n, a, c, angle, storeys, roof in wings:
        if roof == HIP and a <= c:
            roof = GABLE
        body = shapes.rectangle(a, c, _eaves(storeys, rnd, 3.6), roof, 32.0)
        b.place("Gehlsdorf", [(body, Placement(e, n, 0.0, angle), HOSPITAL, storeys)],
                "slate" if roof != FLAT else "gravel",
                name="Universitätsmedizin Rostock, Zentrum für Nervenheilkunde",
                street="Gehlsdorfer Straße")
    # Allotment colony: garden houses in a grid of plots.
    ax0, ay0, ax1, ay1 = ALLOTMENTS
    n = ay0 + 4.0
    while n < ay1 - 20.0:
        e = ax0 + 4.0
        while e < ax1 - 16.0:
            if rnd.random() < 0.55:
                a, c = rnd.uniform(3.0, 5.0), rnd.uniform(3.0, 4.5)
                roof = rnd.choice((SHED, GABLE, FLAT))
                body = shapes.rectangle(a, c, rnd.uniform(2.2, 2.7), roof, rnd.uniform(10, 30))
                b.place("Gehlsdorf", [(body, Placement(e + rnd.uniform(2.0, 8.0),
                                                       n + rnd.uniform(10.0, 15.0), 0.0, 0.0),
                                       GARDEN_HOUSE, 1)],
                        rnd.choice(("bitumen", "green", "tile")), street=None)
            e += 16.0
        n += 22.0


def _house(b: Builder, rnd: random.Random, e: float, y: float, side: float, plot: float,
           street_width: float, street: str, campus: shapely.Polygon) -> None:
    """A detached house (sometimes L-shaped, sometimes with a garage) on one plot."""
    if campus.contains(shapely.Point(e + plot / 2.0, y)) or campus.distance(
            shapely.Point(e + plot / 2.0, y)) < 20.0:
        return
    setback = street_width / 2.0 + rnd.uniform(5.0, 9.0)
    shape = rnd.random()
    storeys = int(_weighted(rnd, [(1, 45), (2, 45), (3, 10)]))
    eaves = _eaves(storeys, rnd, 3.0)
    if shape < 0.14:
        w = rnd.uniform(7.0, 9.5)
        body = shapes.l_shape(rnd.uniform(w + 4.0, 15.0), rnd.uniform(w + 4.0, 14.0), w, eaves,
                              rnd.choice((GABLE, HIP, FLAT)), rnd.uniform(30.0, 42.0))
    else:
        a, c = rnd.uniform(9.0, 14.0), rnd.uniform(8.0, 11.5)
        roof = str(_weighted(rnd, [(HIP, 35), (GABLE, 45), (PYRAMID, 8), (FLAT, 12)]))
        if roof == HIP and a <= c + 1.0:
            a = c + 1.5
        if roof == PYRAMID:
            c = a
        body = shapes.rectangle(a, c, eaves, roof, rnd.uniform(28.0, 42.0))
    xs = [p[0] for p in body.footprint]
    ys = [p[1] for p in body.footprint]
    a, c = max(xs) - min(xs), max(ys) - min(ys)
    offset = rnd.uniform(2.0, max(2.5, plot - a - 2.0))
    if side > 0:  # north of the street: the house's front faces south
        placement = Placement(e + offset, y + setback, 0.0, 0.0)
    else:          # south of the street: rotated half a turn, front faces north
        placement = Placement(e + offset + a, y - setback, 0.0, math.pi)
    roof_type = body.roof_type
    colour = "gravel" if roof_type == FLAT else rnd.choice(("tile", "dark tile", "slate",
                                                            "tile"))
    function = HOUSE if storeys < 3 else RESIDENTIAL
    house = b.place("Gehlsdorf", [(body, placement, function, storeys)], colour,
                    street=street, min_water_distance=22.0)
    if house is not None and rnd.random() < 0.3 and plot - a - offset > 5.0:
        garage = shapes.rectangle(3.2, 6.0, 2.6, FLAT, 0.0)
        ge = e + offset + a + 1.0 if side > 0 else e + offset - 1.0 - 3.2
        gp = Placement(ge, y + setback if side > 0 else y - setback - 6.0, 0.0, 0.0)
        b.place("Gehlsdorf", [(garage, gp, GARAGE, 1)], "bitumen", street=None,
                min_water_distance=22.0)


def _keep_clear(world: World) -> list[shapely.Geometry]:
    """Areas where nothing is built: the bridge line, squares, parks, the meadows."""
    from tools.sample_data import bridge

    clear: list[shapely.Geometry] = [shapely.box(*sq).buffer(-1.0) for sq in SQUARES.values()]
    clear += [shapely.box(*p) for p in PARKS.values()]
    clear.append(shapely.box(*WARNOWQUARTIER))
    clear.append(shapely.Point(PLACE["primelberg"].e, PLACE["primelberg"].n).buffer(250.0))
    clear.append(shapely.LineString(bridge.PETRIBRUECKE_AXIS).buffer(18.0))
    return clear


def existing_buildings(world: World) -> list[Building]:
    """Every existing building, district by district."""
    site = Site(world, _keep_clear(world))
    out: list[Building] = []
    for district, fill in (("Altstadt", old_town), ("Stadthafen", harbour),
                           ("Kröpeliner-Tor-Vorstadt", ktv), ("Gehlsdorf", gehlsdorf)):
        rnd = random.Random(f"{world.seed}:{district}")
        b = Builder(world, site, "DEMVAL", rnd)
        b.buildings = out  # one id sequence across districts
        fill(b)
    _unique_ids(out)
    return out


def warnowquartier(world: World) -> list[Building]:
    """The planned WarnowQuartier: open blocks of 4–6 storeys, flat and gable roofs."""
    keep = [b.footprint for b in world.buildings]
    site = Site(world, [shapely.Point(PLACE["primelberg"].e, PLACE["primelberg"].n)
                        .buffer(250.0)])
    for footprint in keep:
        site.add(footprint)
    rnd = random.Random(f"{world.seed}:WarnowQuartier")
    b = Builder(world, site, "DERSWQ", rnd)
    x0, y0, x1, y1 = WARNOWQUARTIER
    streets_e = [x0 + 10.0, x0 + 150.0, x0 + 290.0, x0 + 430.0, x1 - 5.0]
    streets_n = [y0 + 40.0, y0 + 180.0, y0 + 320.0, y1 - 5.0]
    for ya, yb in zip(streets_n, streets_n[1:], strict=False):
        for xa, xb in zip(streets_e, streets_e[1:], strict=False):
            box = (xa + 8.0, ya + 8.0, xb - 8.0, yb - 8.0)
            _open_block(b, rnd, box)
    _unique_ids(b.buildings)
    return b.buildings


def _open_block(b: Builder, rnd: random.Random, box: tuple[float, float, float, float]) -> None:
    """Slabs along the block's south and north edges, point houses between."""
    x0, y0, x1, y1 = box
    for edge, y, angle in (("south", y0, 0.0), ("north", y1, math.pi)):
        e = x0
        while e < x1 - 20.0:
            length = min(rnd.uniform(36.0, 56.0), x1 - e)
            if length < 20.0:
                break
            storeys = rnd.choice((4, 5, 5, 6))
            roof = FLAT if rnd.random() < 0.6 else GABLE
            depth = rnd.uniform(12.0, 14.0)
            body = shapes.rectangle(length, depth, _eaves(storeys, rnd, 3.0), roof, 35.0)
            placement = (Placement(e, y, 0.0, angle) if edge == "south"
                         else Placement(e + length, y, 0.0, angle))
            b.place("WarnowQuartier", [(body, placement, rnd.choice(
                (RESIDENTIAL, RESIDENTIAL, SHOPS_FLATS)), storeys)],
                "gravel" if roof == FLAT else "slate", street="WarnowQuartier",
                min_water_distance=30.0)
            e += length + rnd.uniform(10.0, 16.0)
    for _ in range(2):
        a = rnd.uniform(16.0, 22.0)
        e = rnd.uniform(x0 + 5.0, x1 - a - 5.0)
        n = (y0 + y1) / 2.0 - a / 2.0 + rnd.uniform(-6.0, 6.0)
        storeys = rnd.choice((4, 5, 6))
        roof = FLAT if rnd.random() < 0.6 else PYRAMID
        body = shapes.rectangle(a, a, _eaves(storeys, rnd, 3.0), roof, 25.0)
        function = DAYCARE if rnd.random() < 0.1 else RESIDENTIAL
        b.place("WarnowQuartier", [(body, Placement(e, n, 0.0, 0.0), function, storeys)],
                "gravel" if roof == FLAT else "slate", street="WarnowQuartier",
                min_water_distance=30.0)


def _unique_ids(buildings: list[Building]) -> None:
    ids = [b.gml_id for b in buildings]
    if len(set(ids)) != len(ids):
        raise AssertionError("duplicate building ids")


# --------------------------------------------------------------------------------------------
# Vegetation
# --------------------------------------------------------------------------------------------


@dataclass
class _Plants:
    e: list[float] = field(default_factory=list)
    n: list[float] = field(default_factory=list)
    radius: list[float] = field(default_factory=list)
    bottom: list[float] = field(default_factory=list)
    top: list[float] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)

    def tree(self, rnd: random.Random, e: float, n: float, size: float = 1.0) -> None:
        r = rnd.uniform(2.5, 5.5) * size
        self.e.append(e)
        self.n.append(n)
        self.radius.append(r)
        top = rnd.uniform(8.0, 20.0) * size
        self.top.append(max(top, 2.0 * r + 3.0))
        self.bottom.append(rnd.uniform(2.2, 4.0))
        self.kind.append(5)

    def shrub(self, rnd: random.Random, e: float, n: float, height: tuple[float, float] = (
            0.8, 2.0)) -> None:
        self.e.append(e)
        self.n.append(n)
        self.radius.append(rnd.uniform(0.9, 2.0))
        self.top.append(rnd.uniform(*height))
        self.bottom.append(0.0)
        self.kind.append(4)


def vegetation(world: World) -> Vegetation:
    """Trees in gardens, parks and along streets and the shore; shrubs, hedges and reed."""
    rnd = random.Random(f"{world.seed}:vegetation")
    plants = _Plants()
    ext = world.extent
    # Street trees along the main streets and the promenades.
    for street in world.streets:
        if street.name not in ("Lange Straße", "Doberaner Straße", "Am Strande",
                               "Uferpromenade Gehlsdorf", "Dierkower Damm", "Uferstraße",
                               "Fährberg"):
            continue
        line = shapely.LineString(street.line)
        step = 14.0
        for k in range(int(line.length // step)):
            p = line.interpolate(k * step + 5.0)
            q = line.interpolate(min(line.length, k * step + 6.0))
            angle = math.atan2(q.y - p.y, q.x - p.x)
            for side in (1.0, -1.0):
                off = street.width / 2.0 + 2.0
                e = p.x - math.sin(angle) * off * side + rnd.uniform(-1.0, 1.0)
                n = p.y + math.cos(angle) * off * side + rnd.uniform(-1.0, 1.0)
                if rnd.random() < 0.85:
                    plants.tree(rnd, e, n, 0.9)
    # Parks: dense trees.
    for x0, y0, x1, y1 in PARKS.values():
        for _ in range(int((x1 - x0) * (y1 - y0) / 70.0)):
            plants.tree(rnd, rnd.uniform(x0, x1), rnd.uniform(y0, y1), 1.1)
    # Gardens: behind each Gehlsdorf house, and in the courtyards.
    for building in world.buildings:
        c = building.footprint.centroid
        if building.district == "Gehlsdorf" and building.main.function in (HOUSE, RESIDENTIAL):
            for _ in range(rnd.choice((1, 2, 2, 3))):
                plants.tree(rnd, c.x + rnd.uniform(-16, 16), c.y + rnd.uniform(-18, 18), 0.8)
            for _ in range(rnd.choice((2, 3, 4))):
                plants.shrub(rnd, c.x + rnd.uniform(-14, 14), c.y + rnd.uniform(-14, 14))
        elif building.district in ("Altstadt", "Kröpeliner-Tor-Vorstadt") and rnd.random() < 0.05:
            plants.tree(rnd, c.x + rnd.uniform(-20, 20), c.y + rnd.uniform(-20, 20), 0.8)
    # The bank above Am Strande, the meadows, the former landfill, the reed along the shore.
    for _ in range(9000):
        e, n = rnd.uniform(ext.e_min, ext.e_max), rnd.uniform(ext.n_min, ext.n_max)
        d = float(world.water_distance.height(e, n))
        north = e > 312900.0 and n > 5997950.0
        if not north and 32.0 < d < 88.0 and rnd.random() < 0.35:
            plants.tree(rnd, e, n)
        elif north and d > 10.0 and not shapely.box(*CLEARED_SITE).contains(shapely.Point(e, n)):
            deponie = PLACE["deponie"]
            if math.hypot(e - deponie.e, n - deponie.n) < 180.0:
                if rnd.random() < 0.6:
                    plants.shrub(rnd, e, n, (1.5, 4.0))
                else:
                    plants.tree(rnd, e, n, 0.7)
            elif rnd.random() < 0.05:
                plants.tree(rnd, e, n, 0.9)
            elif rnd.random() < 0.04:
                plants.shrub(rnd, e, n)
    reed = shapely.LineString(next(s for s in OTHER_STREETS
                                   if s.name == "Uferpromenade Gehlsdorf").line)
    for k in range(int(reed.length // 3.0)):
        p = reed.interpolate(k * 3.0)
        if p.x > 312950.0:
            plants.shrub(rnd, p.x + rnd.uniform(-3, 3), p.y - rnd.uniform(4.0, 9.0), (1.4, 2.4))
    return _filter(world, plants)


def _filter(world: World, plants: _Plants) -> Vegetation:
    """Drop plants in the water, on buildings, on roads or outside the extent."""
    e = np.asarray(plants.e)
    n = np.asarray(plants.n)
    radius = np.asarray(plants.radius)
    keep = world.extent.contains(e, n)
    keep &= world.water_distance.height(e, n) > np.maximum(1.0, 0.3 * radius)
    footprints = [b.footprint for b in world.buildings]
    tree = shapely.STRtree(footprints)
    circles = shapely.buffer(shapely.points(e, n), radius + 0.5, quad_segs=4)
    hit = tree.query(circles, predicate="intersects")
    keep[np.unique(hit[0])] = False
    roads = shapely.union_all([s.polygon for s in world.streets if s.surface != "path"])
    shapely.prepare(roads)
    keep &= ~shapely.contains_xy(roads, e, n)
    for bridge in world.existing_bridges:
        keep &= ~shapely.contains_xy(bridge.outline.buffer(4.0), e, n)
    kind = np.asarray(plants.kind, dtype=np.uint8)[keep]
    rng = np.random.default_rng([world.seed, 0x7EE5])
    shade = rng.uniform(0.75, 1.2, (int(keep.sum()), 1))
    base = np.where((kind == 5)[:, None], np.array([[58, 104, 46]]), np.array([[86, 112, 58]]))
    colour = np.clip(base * shade, 0, 255).astype(np.uint8)
    e, n = e[keep], n[keep]
    return Vegetation(e, n, world.terrain_height(e, n), radius[keep],
                      np.asarray(plants.bottom)[keep], np.asarray(plants.top)[keep], kind,
                      colour)
