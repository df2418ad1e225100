"""The sample world: every place, the Warnow, the terrain, and what stands on it.

One table per kind of thing, each position marked ``approximate`` unless it comes from a
source (docs/scenes.md, ../shared/CONTEXT.md). Correct a position here and everything
generated from it (CityGML, LiDAR, world.json) follows.

Coordinates are EPSG:25833 (ETRS89 / UTM 33N) metres; heights DHHN2016 normal heights
(EPSG:7837). The world is deterministic: the places, the river and the base terrain are fixed;
the seed only varies the buildings' and trees' details (sizes, roofs, positions within their
plots), and the terrain follows the buildings (their plots are graded flat).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from scipy import ndimage

from twin.errors import InputError

FloatArray = npt.NDArray[np.float64]

FORMAT = "rostock-virtuell-sample-world/1"
"""``format`` of world.json."""

# --------------------------------------------------------------------------------------------
# Extent and places
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Extent:
    """An axis-parallel rectangle in EPSG:25833."""

    e_min: float
    n_min: float
    e_max: float
    n_max: float

    def contains(self, e: FloatArray, n: FloatArray) -> npt.NDArray[np.bool_]:
        """True where (e, n) lies inside (edges included)."""
        return (e >= self.e_min) & (e <= self.e_max) & (n >= self.n_min) & (n <= self.n_max)

    @property
    def polygon(self) -> shapely.Polygon:
        """The rectangle as a polygon."""
        return shapely.box(self.e_min, self.n_min, self.e_max, self.n_max)


EXTENT = Extent(311300.0, 5997050.0, 314000.0, 5999200.0)
"""Generation extent: the union of the three scenes' areas (docs/scenes.md)."""


@dataclass(frozen=True, slots=True)
class Place:
    """A named point of the world."""

    id: str
    name: str
    e: float
    n: float
    source: str
    """Where the position comes from; "approximate" when it is an estimate."""


_CONTRACT = "docs/scenes.md"
_APPROX = "approximate"
PLACES: tuple[Place, ...] = (
    Place("kroepeliner-tor", "Kröpeliner Tor", 312244.0, 5997168.0, _CONTRACT),
    Place("oval-centre", "Rostocker Oval (Mitte)", 312330.0, 5998011.0, _CONTRACT),
    Place("warnowbruecke-sued", "Warnowbrücke Südende (Schnickmannstraße)", 312543.0,
          5997613.0, _CONTRACT),
    Place("warnowbruecke-nord", "Warnowbrücke Nordende (Fährberg)", 312795.0, 5998160.0,
          _CONTRACT),
    Place("gehlsdorf", "Gehlsdorf (Mitte)", 311884.0, 5998631.0, _CONTRACT),
    Place("primelberg", "Primelberg (Infotafel)", 313656.0, 5998403.0, _CONTRACT),
    Place("marienkirche", "Marienkirche", 312935.0, 5997215.0, _APPROX),
    Place("petrikirche", "Petrikirche", 313486.0, 5997430.0, _APPROX),
    Place("kabutzenhof", "Kabutzenhof", 311616.0, 5997820.0, _APPROX),
    Place("christinenhafen", "Christinenhafen", 311900.0, 5997735.0, _APPROX),
    Place("haedgehalbinsel", "Haedgehalbinsel", 312215.0, 5997770.0, _APPROX),
    Place("silohalbinsel", "Silohalbinsel", 312715.0, 5997740.0, _APPROX),
    Place("holzhalbinsel", "Holzhalbinsel", 313170.0, 5997730.0, _APPROX),
    Place("osthafen", "Osthafen", 313560.0, 5997600.0, _APPROX),
    Place("petribruecke", "Petribrücke", 313830.0, 5997470.0, _APPROX),
    Place("faehre-gehlsdorf", "Fähre Gehlsdorf", 312740.0, 5998095.0, _APPROX),
    Place("neurologie", "Universitätsmedizin, Zentrum für Nervenheilkunde", 312080.0,
          5998900.0, _APPROX),
    Place("deponie", "ehemalige Deponie Dierkow", 313780.0, 5998900.0, _APPROX),
    Place("warnowquartier", "WarnowQuartier (geplant)", 313170.0, 5998420.0, _APPROX),
)
PLACE = {p.id: p for p in PLACES}

# --------------------------------------------------------------------------------------------
# The Warnow (approximate): the water body as one outline minus the harbour peninsulas
# --------------------------------------------------------------------------------------------

# Counter-clockwise; reaches beyond the extent so that clipping to it leaves clean edges.
# South (city) bank from the west along the Stadthafen quay, the Osthafen, the reach south
# past the Petribrücke; back north along the Dierkow meadows, the Primelberg shore, the
# Gehlsdorf shore (ferry at Fährberg) and Gehlsdorf's west shore, where the Unterwarnow
# turns north towards Warnemünde. All approximate.
RIVER_OUTLINE: tuple[tuple[float, float], ...] = (
    (311150.0, 5998010.0),
    (311350.0, 5997935.0),
    (311500.0, 5997885.0),
    (311620.0, 5997858.0),   # Kabutzenhof marina
    (311760.0, 5997805.0),
    (311900.0, 5997762.0),   # Christinenhafen
    (312050.0, 5997736.0),
    (312200.0, 5997716.0),   # Haedgehalbinsel
    (312400.0, 5997700.0),
    (312560.0, 5997690.0),   # quay at Schnickmannstraße
    (312800.0, 5997685.0),
    (313000.0, 5997676.0),
    (313300.0, 5997666.0),   # Holzhalbinsel
    (313500.0, 5997650.0),   # Osthafen
    (313640.0, 5997600.0),
    (313715.0, 5997480.0),   # the river turns south (Petribrücke reach)
    (313735.0, 5997300.0),
    (313745.0, 5996950.0),
    (313900.0, 5996950.0),
    (313905.0, 5997300.0),
    (313930.0, 5997560.0),   # Dierkower Damm side
    (313960.0, 5997750.0),
    (313900.0, 5997950.0),
    (313780.0, 5998080.0),
    (313600.0, 5998160.0),   # Primelberg meadows
    (313400.0, 5998175.0),
    (313200.0, 5998150.0),
    (313000.0, 5998100.0),
    (312800.0, 5998050.0),   # Fährberg, ferry landing
    (312600.0, 5998052.0),
    (312400.0, 5998080.0),
    (312200.0, 5998095.0),
    (312000.0, 5998110.0),
    (311850.0, 5998130.0),
    (311740.0, 5998170.0),   # Gehlsdorf's south-west corner
    (311680.0, 5998260.0),
    (311640.0, 5998450.0),
    (311610.0, 5998700.0),
    (311580.0, 5998950.0),
    (311560.0, 5999350.0),
    (311150.0, 5999350.0),
)

# Piers of the Stadthafen (land reaching into the river), approximate.
PENINSULAS: dict[str, tuple[tuple[float, float], ...]] = {
    "Haedgehalbinsel": ((312165.0, 5997690.0), (312265.0, 5997690.0), (312265.0, 5997835.0),
                        (312165.0, 5997835.0)),
    "Silohalbinsel": ((312680.0, 5997660.0), (312750.0, 5997660.0), (312750.0, 5997810.0),
                      (312680.0, 5997810.0)),
    "Holzhalbinsel": ((313075.0, 5997650.0), (313265.0, 5997650.0), (313265.0, 5997795.0),
                      (313075.0, 5997795.0)),
}

WATER_LEVEL = 0.0

# --------------------------------------------------------------------------------------------
# Streets and districts (approximate; the street names are real Rostock names placed on a
# simplified grid, for addresses and the look of the ground only)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Street:
    """A street, path or promenade: centre line, width and surface."""

    name: str
    line: tuple[tuple[float, float], ...]
    width: float
    surface: str = "asphalt"
    """Ground material name: asphalt, paving or path."""

    @property
    def polygon(self) -> shapely.Polygon:
        """The street's area."""
        return shapely.LineString(self.line).buffer(self.width / 2.0, cap_style="square")


@dataclass(frozen=True, slots=True)
class Grid:
    """A district laid out in blocks between straight streets."""

    name: str
    columns: tuple[tuple[float, str, float], ...]
    """North-south streets: (easting of the centre line, name, width), west to east."""
    rows: tuple[tuple[float, str, float], ...]
    """East-west streets: (northing, name, width), south to north."""
    e_range: tuple[float, float]
    n_range: tuple[float, float]


OLD_TOWN = Grid(
    "Altstadt",
    columns=((312300.0, "Burgwall", 10.0), (312420.0, "Koßfelder Straße", 10.0),
             (312543.0, "Schnickmannstraße", 10.0), (312665.0, "Grubenstraße", 10.0),
             (312790.0, "Wokrenterstraße", 10.0), (313030.0, "Große Mönchenstraße", 10.0),
             (313150.0, "Kleine Mönchenstraße", 10.0), (313270.0, "Krämerstraße", 10.0),
             (313390.0, "Fischbank", 10.0), (313520.0, "Beginenberg", 10.0),
             (313650.0, "Petridamm", 10.0)),
    rows=((5997045.0, "Wallstraße", 10.0), (5997170.0, "Kröpeliner Straße", 14.0),
          (5997300.0, "Pädagogienstraße", 10.0), (5997440.0, "Lange Straße", 30.0),
          (5997600.0, "Strandstraße", 12.0)),
    e_range=(312300.0, 313650.0),
    n_range=(5997045.0, 5997600.0),
)
OLD_TOWN_LANE = (312910.0, "Große Wasserstraße", 8.0)
"""A lane halving the wide blocks north of the Marienkirche."""

KTV = Grid(
    "Kröpeliner-Tor-Vorstadt",
    columns=((311310.0, "Barnstorfer Weg", 12.0), (311450.0, "Leonhardstraße", 12.0),
             (311580.0, "Wismarsche Straße", 12.0), (311710.0, "Waldemarstraße", 12.0),
             (311840.0, "Gerberbruch", 12.0), (311970.0, "Lange Lohe", 12.0),
             (312100.0, "Wallanlagen", 12.0)),
    rows=((5997045.0, "Friedhofsweg", 10.0), (5997170.0, "Doberaner Straße", 20.0),
          (5997290.0, "Budapester Straße", 12.0), (5997410.0, "Margaretenstraße", 12.0),
          (5997530.0, "Gerhart-Hauptmann-Straße", 12.0), (5997650.0, "Fischerbruch", 12.0),
          (5997770.0, "Holzstraße", 12.0)),
    e_range=(311310.0, 312100.0),
    n_range=(5997045.0, 5997770.0),
)

GEHLSDORF = Grid(
    "Gehlsdorf",
    columns=((311760.0, "Am Ufer", 8.0), (311910.0, "Pressentinstraße", 8.0),
             (312060.0, "Lindenweg", 8.0), (312210.0, "Kirchenweg", 8.0),
             (312360.0, "Ahornweg", 8.0), (312510.0, "Birkenweg", 8.0),
             (312660.0, "Eichenweg", 8.0), (312785.0, "Fährberg", 9.0),
             (312895.0, "Am Wiesenrand", 8.0)),
    rows=((5998190.0, "Uferstraße", 8.0), (5998310.0, "Dorfstraße", 8.0),
          (5998430.0, "Schulstraße", 8.0), (5998550.0, "Gartenstraße", 8.0),
          (5998670.0, "Bergstraße", 8.0), (5998790.0, "Feldstraße", 8.0),
          (5998910.0, "Am Klinikum", 8.0), (5999030.0, "Wiesenweg", 8.0),
          (5999150.0, "Nordstraße", 8.0)),
    e_range=(311600.0, 312895.0),
    n_range=(5998100.0, 5999200.0),
)

PARKS: dict[str, tuple[float, float, float, float]] = {
    "Wallanlagen": (312106.0, 5997052.0, 312294.0, 5997594.0),
}
SQUARES: dict[str, tuple[float, float, float, float]] = {
    "Neuer Markt": (312795.0, 5997052.0, 313025.0, 5997163.0),
    "Marienkirchplatz": (312795.0, 5997177.0, 313025.0, 5997295.0),
    "Alter Markt": (313395.0, 5997305.0, 313640.0, 5997594.0),
}
CAMPUS = (311950.0, 5998835.0, 312250.0, 5999000.0)
"""Universitätsmedizin, Zentrum für Nervenheilkunde (approximate)."""
ALLOTMENTS = (312950.0, 5998740.0, 313300.0, 5998985.0)
"""Kleingartenanlage north of the WarnowQuartier site (approximate)."""
WARNOWQUARTIER = (312900.0, 5998200.0, 313450.0, 5998650.0)
"""The planned district's area (approximate): meadow and cleared site today."""
CLEARED_SITE = (313000.0, 5998260.0, 313360.0, 5998560.0)

OTHER_STREETS: tuple[Street, ...] = (
    Street("Am Kabutzenhof", ((311150.0, 5997990.0), (311350.0, 5997915.0),
                              (311500.0, 5997865.0), (311620.0, 5997838.0),
                              (311760.0, 5997786.0), (311880.0, 5997745.0)), 12.0),
    Street("Am Strande", ((311880.0, 5997745.0), (312050.0, 5997718.0), (312200.0, 5997698.0),
                          (312400.0, 5997682.0), (312560.0, 5997672.0), (312800.0, 5997667.0),
                          (313000.0, 5997658.0), (313300.0, 5997648.0), (313500.0, 5997632.0),
                          (313600.0, 5997600.0)), 12.0),
    Street("Uferpromenade Gehlsdorf", ((311690.0, 5998320.0), (311725.0, 5998200.0),
                                       (311850.0, 5998148.0), (312000.0, 5998126.0),
                                       (312200.0, 5998111.0), (312400.0, 5998096.0),
                                       (312600.0, 5998066.0), (312800.0, 5998064.0),
                                       (313000.0, 5998114.0), (313200.0, 5998164.0),
                                       (313400.0, 5998189.0)), 4.0, "path"),
    Street("Dierkower Damm", ((313950.0, 5997470.0), (314060.0, 5997720.0)), 16.0),
    Street("Petribrücke", ((313690.0, 5997470.0), (313950.0, 5997470.0)), 16.0),
    Street("Weg zum Primelberg", ((313990.0, 5998640.0), (313656.0, 5998395.0),
                                  (313480.0, 5998215.0)), 3.0, "path"),
)
"""Mean water level of the Unterwarnow (DHHN2016)."""

# --------------------------------------------------------------------------------------------
# Terrain (DHHN2016 normal heights), analytic base + graded building plots
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bump:
    """A Gaussian rise ``height`` * exp(-((e-e0)²/se² + (n-n0)²/sn²)/2)."""

    name: str
    e: float
    n: float
    sigma_e: float
    sigma_n: float
    height: float

    def __call__(self, e: FloatArray, n: FloatArray) -> FloatArray:
        q = ((e - self.e) / self.sigma_e) ** 2 + ((n - self.n) / self.sigma_n) ** 2
        return self.height * np.exp(-0.5 * q)


@dataclass(frozen=True)
class TerrainParameters:
    """The base terrain: profiles by distance from the water, plus named rises.

    City bank: a quay zone flat at ``quay_height`` up to ``quay_zone`` m from the water, a
    bank rising to ``bank_height`` over ``bank_width`` m, then the rise to the inland height
    (``city_inland`` plus the bumps) over ``city_rise`` m. North bank (Gehlsdorf, Dierkow):
    ``shore_height`` at the waterline rising to the promenade height within ~20 m, then
    towards the inland height (Gehlsdorf's, falling east of ``meadow_east`` to the meadows')
    with an e-folding distance of ``north_rise`` m.
    """

    quay_height: float = 2.8
    quay_zone: float = 30.0
    bank_height: float = 6.3
    bank_width: float = 60.0
    city_inland: float = 9.5
    city_rise: float = 550.0
    city_bumps: tuple[Bump, ...] = (
        Bump("Marienkirche", 312950.0, 5997230.0, 354.0, 198.0, 6.5),
        Bump("Kröpeliner Tor", 312250.0, 5997150.0, 247.0, 177.0, 1.6),
        Bump("Petrikirche", 313480.0, 5997400.0, 106.0, 106.0, 3.0),
    )
    shore_height: float = 0.6
    promenade_height: float = 3.0
    promenade_rise: float = 8.0
    gehlsdorf_inland: float = 10.5
    meadow_height: float = 2.2
    meadow_promenade: float = 1.6
    meadow_east: float = 312700.0
    meadow_blend: float = 600.0
    north_rise: float = 140.0
    north_bumps: tuple[Bump, ...] = (
        Bump("Primelberg", 313656.0, 5998403.0, 110.0, 110.0, 3.8),
        Bump("ehemalige Deponie", 313780.0, 5998900.0, 110.0, 90.0, 12.0),
    )
    plot_margin: float = 3.0
    """Building plots are graded flat this far around each footprint..."""
    plot_blend: float = 9.0
    """...and blend into the natural terrain over this distance beyond."""
    plot_smoothing: float = 1.0
    """Gaussian sigma (m) of the grading, so terrace edges between plots are slopes."""
    cell: float = 1.0
    """Terrain grid spacing (m)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = [_bump_dict(b) for b in value]
            out[name] = value
        return out


def _bump_dict(bump: Bump) -> dict[str, Any]:
    return {"name": bump.name, "e": bump.e, "n": bump.n, "sigma_e": bump.sigma_e,
            "sigma_n": bump.sigma_n, "height": bump.height}


TERRAIN = TerrainParameters()


def _smoothstep(x: FloatArray) -> FloatArray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def city_base_height(e: FloatArray, n: FloatArray, d: FloatArray,
                     p: TerrainParameters = TERRAIN) -> FloatArray:
    """Base terrain on the city (south/west) bank at distance ``d`` from the water."""
    inland = p.city_inland + sum(b(e, n) for b in p.city_bumps)
    bank = p.quay_height + (p.bank_height - p.quay_height) * _smoothstep(
        (d - p.quay_zone) / p.bank_width)
    rise = _smoothstep((d - p.quay_zone - p.bank_width) / p.city_rise)
    return bank + (np.maximum(inland, p.bank_height) - p.bank_height) * rise


def north_base_height(e: FloatArray, n: FloatArray, d: FloatArray,
                      p: TerrainParameters = TERRAIN) -> FloatArray:
    """Base terrain on the north/east bank (Gehlsdorf, Dierkow) at distance ``d``."""
    east = _smoothstep((e - p.meadow_east) / p.meadow_blend)
    inland = p.gehlsdorf_inland * (1.0 - east) + p.meadow_height * east
    promenade = p.promenade_height * (1.0 - east) + p.meadow_promenade * east
    shore = p.shore_height + (promenade - p.shore_height) * (1.0 - np.exp(-d / p.promenade_rise))
    rise = 1.0 - np.exp(-np.maximum(d - 15.0, 0.0) / p.north_rise)
    return shore + (inland - promenade) * rise + sum(b(e, n) for b in p.north_bumps)


@dataclass
class TerrainGrid:
    """Heights on a regular grid of nodes (rows south → north), bilinearly interpolated."""

    e0: float
    n0: float
    cell: float
    heights: FloatArray

    def height(self, e: npt.ArrayLike, n: npt.ArrayLike) -> FloatArray:
        """Terrain height at (e, n), vectorised; clamped to the grid's edge outside it."""
        e = np.asarray(e, dtype=np.float64)
        n = np.asarray(n, dtype=np.float64)
        rows, cols = self.heights.shape
        fx = np.clip((e - self.e0) / self.cell, 0.0, cols - 1.000001)
        fy = np.clip((n - self.n0) / self.cell, 0.0, rows - 1.000001)
        ix = fx.astype(np.int64)
        iy = fy.astype(np.int64)
        tx = fx - ix
        ty = fy - iy
        h = self.heights
        return ((h[iy, ix] * (1 - tx) + h[iy, ix + 1] * tx) * (1 - ty)
                + (h[iy + 1, ix] * (1 - tx) + h[iy + 1, ix + 1] * tx) * ty)


def river_polygon() -> shapely.Polygon:
    """The Warnow's water surface: the outline minus the harbour peninsulas."""
    outline = shapely.Polygon(RIVER_OUTLINE)
    piers = shapely.union_all([shapely.Polygon(p) for p in PENINSULAS.values()])
    water = shapely.difference(outline, piers)
    if not isinstance(water, shapely.Polygon) or not water.is_valid:
        raise InputError("tools/sample_data/world.py: RIVER_OUTLINE minus PENINSULAS is not "
                         "one valid polygon: check the vertex tables")
    return shapely.normalize(water)


@dataclass
class LandSides:
    """Per grid node: water, distance to the water, and which bank it belongs to."""

    water: npt.NDArray[np.bool_]
    distance: FloatArray
    north: npt.NDArray[np.bool_]
    """True on the north/east bank (Gehlsdorf, Dierkow), False on the city bank."""
    nearest_land: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]


def grid_nodes(extent: Extent, cell: float) -> tuple[FloatArray, FloatArray]:
    """Node coordinates (1-D) of the terrain grid over ``extent``."""
    cols = int(round((extent.e_max - extent.e_min) / cell)) + 1
    rows = int(round((extent.n_max - extent.n_min) / cell)) + 1
    return extent.e_min + cell * np.arange(cols), extent.n_min + cell * np.arange(rows)


def rasterize(polygon: shapely.Polygon, xs: FloatArray, ys: FloatArray
              ) -> npt.NDArray[np.bool_]:
    """Grid nodes (rows ``ys``, columns ``xs``, both increasing and evenly spaced) inside
    ``polygon`` (holes excluded), by even-odd scanlines: exact, and much faster than
    testing each node."""
    rings = [polygon.exterior, *polygon.interiors]
    edges = np.concatenate([
        np.column_stack([np.asarray(r.coords)[:-1], np.asarray(r.coords)[1:]]) for r in rings])
    x1, y1, x2, y2 = edges.T
    step_y, step_x = ys[1] - ys[0], xs[1] - xs[0]
    rows, cols = len(ys), len(xs)
    mask_diff = np.zeros((rows, cols + 1), dtype=np.int32)
    lo, hi = np.minimum(y1, y2), np.maximum(y1, y2)
    r0 = np.clip(np.ceil((lo - ys[0]) / step_y), 0, rows).astype(np.int64)
    r1 = np.clip(np.ceil((hi - ys[0]) / step_y), 0, rows).astype(np.int64)  # half-open
    counts = np.maximum(r1 - r0, 0)
    edge = np.repeat(np.arange(len(edges)), counts)
    row = np.repeat(r0, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts,
                                                                       counts))
    y = ys[0] + row * step_y
    t = (y - y1[edge]) / (y2[edge] - y1[edge])
    x = x1[edge] + t * (x2[edge] - x1[edge])
    col = np.clip(np.ceil((x - xs[0]) / step_x), 0, cols).astype(np.int64)
    # Each crossing toggles inside/outside from its column on: parity of the running sum.
    np.add.at(mask_diff, (row, col), 1)
    return (np.cumsum(mask_diff, axis=1)[:, :cols] % 2).astype(bool)


def land_sides(river: shapely.Polygon, extent: Extent, cell: float) -> LandSides:
    """Rasterise the river on the grid and label the two banks."""
    xs, ys = grid_nodes(extent, cell)
    water = rasterize(river, xs, ys)
    distance = ndimage.distance_transform_edt(~water, sampling=cell)
    nearest = ndimage.distance_transform_edt(water, return_distances=False, return_indices=True)
    labels, _ = ndimage.label(~water)
    north_seed = PLACE["gehlsdorf"]
    ix = int(round((north_seed.e - extent.e_min) / cell))
    iy = int(round((north_seed.n - extent.n_min) / cell))
    north_label = labels[iy, ix]
    north = labels == north_label
    # Water nodes take the side of the nearest land node (for the extended terrain).
    north = north[nearest[0], nearest[1]]
    return LandSides(water, distance, north, (nearest[0], nearest[1]))


def base_terrain(sides: LandSides, extent: Extent, cell: float,
                 p: TerrainParameters = TERRAIN) -> FloatArray:
    """The natural terrain on the grid (before building plots are graded)."""
    xs, ys = grid_nodes(extent, cell)
    ee, nn = np.meshgrid(xs, ys)
    d = sides.distance
    north = sides.north
    heights = np.empty_like(d)
    heights[north] = north_base_height(ee[north], nn[north], d[north], p)
    south = ~north
    heights[south] = city_base_height(ee[south], nn[south], d[south], p)
    # Under water the terrain continues the nearest bank (the water surface is separate):
    # quay walls stay sharp and interpolation near the shore never dips.
    iy, ix = sides.nearest_land
    return heights[iy, ix]


def graded_terrain(base: FloatArray, plots: list[tuple[shapely.Polygon, float]],
                   extent: Extent, cell: float, p: TerrainParameters = TERRAIN) -> FloatArray:
    """Grade every building plot flat at its building's ground height.

    Each grid node takes the height of the nearest footprint within ``plot_margin`` and
    blends back into the base terrain over ``plot_blend`` metres; the change is smoothed
    slightly so that neighbouring plots at different heights meet in a slope, not a wall.
    """
    rows, cols = base.shape
    plot_height = np.zeros_like(base)
    inside = np.zeros(base.shape, dtype=bool)
    # All footprints' bounding-box nodes in one vectorised containment test.
    index_r, index_c, owner = [], [], []
    for k, (footprint, _) in enumerate(plots):
        x0, y0, x1, y1 = footprint.bounds
        c0 = max(0, int(np.ceil((x0 - extent.e_min) / cell)))
        c1 = min(cols - 1, int(np.floor((x1 - extent.e_min) / cell)))
        r0 = max(0, int(np.ceil((y0 - extent.n_min) / cell)))
        r1 = min(rows - 1, int(np.floor((y1 - extent.n_min) / cell)))
        if c1 < c0 or r1 < r0:
            # A footprint smaller than a cell grades the node nearest its centre.
            c = footprint.centroid
            index_r.append(np.array([int(round((c.y - extent.n_min) / cell))]))
            index_c.append(np.array([int(round((c.x - extent.e_min) / cell))]))
            owner.append(np.array([-1 - k]))
            continue
        rr, cc = np.meshgrid(np.arange(r0, r1 + 1), np.arange(c0, c1 + 1), indexing="ij")
        index_r.append(rr.ravel())
        index_c.append(cc.ravel())
        owner.append(np.full(rr.size, k))
    if index_r:
        r = np.concatenate(index_r)
        c = np.concatenate(index_c)
        k = np.concatenate(owner)
        forced = k < 0
        k = np.where(forced, -1 - k, k)
        geoms = np.array([f for f, _ in plots], dtype=object)
        shapely.prepare(geoms)
        hit = forced | shapely.contains_xy(geoms[k], extent.e_min + cell * c,
                                           extent.n_min + cell * r)
        heights = np.array([z for _, z in plots])
        plot_height[r[hit], c[hit]] = heights[k[hit]]
        inside[r[hit], c[hit]] = True
    if not inside.any():
        return base.copy()
    distance, (iy, ix) = ndimage.distance_transform_edt(~inside, sampling=cell,
                                                        return_indices=True)
    nearest = plot_height[iy, ix]
    weight = 1.0 - _smoothstep((distance - p.plot_margin) / p.plot_blend)
    change = ndimage.gaussian_filter(weight * (nearest - base), p.plot_smoothing / cell,
                                     mode="nearest")
    # Inside footprints (and their margin) the grade is exact: smoothing only shapes slopes.
    exact = distance <= p.plot_margin - 2.0 * p.plot_smoothing
    change[exact] = (nearest - base)[exact]
    return base + change


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


@dataclass
class World:
    """The whole sample world for one seed: river, terrain, buildings, trees, bridges.

    ``World(seed)`` builds everything (a few seconds); ``terrain_height`` and ``river`` are
    what tests and the generator use; ``to_json`` is world.json.
    """

    seed: int = 1
    extent: Extent = EXTENT
    terrain_parameters: TerrainParameters = field(default_factory=TerrainParameters)

    def __post_init__(self) -> None:
        from tools.sample_data import bridge, layout

        p = self.terrain_parameters
        self.river: shapely.Polygon = river_polygon()
        shapely.prepare(self.river)
        self.sides = land_sides(self.river, self.extent, p.cell)
        base = base_terrain(self.sides, self.extent, p.cell, p)
        self.base_terrain = TerrainGrid(self.extent.e_min, self.extent.n_min, p.cell, base)
        self.streets = layout.streets()
        self.buildings = layout.existing_buildings(self)
        self.planned_buildings = layout.warnowquartier(self)
        plots = [(b.footprint, b.ground_z) for b in self.buildings + self.planned_buildings]
        graded = graded_terrain(base, plots, self.extent, p.cell, p)
        self.terrain = TerrainGrid(self.extent.e_min, self.extent.n_min, p.cell, graded)
        self.existing_bridges = bridge.existing_bridges(self)
        self.vegetation = layout.vegetation(self)
        self.planned_bridge = bridge.warnowbruecke(self)

    def terrain_height(self, e: npt.ArrayLike, n: npt.ArrayLike) -> FloatArray:
        """Ground height (DHHN2016) at (e, n), vectorised; under water the nearest bank's."""
        return self.terrain.height(e, n)

    def is_water(self, e: npt.ArrayLike, n: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """True where (e, n) lies in the Warnow."""
        return shapely.contains_xy(self.river, np.asarray(e, np.float64),
                                   np.asarray(n, np.float64))

    @cached_property
    def water_distance(self) -> TerrainGrid:
        """Distance (m) from the water on the grid (0 in the water)."""
        return TerrainGrid(self.extent.e_min, self.extent.n_min, self.terrain_parameters.cell,
                           self.sides.distance)

    def to_json(self, options: dict[str, Any], files: list[str]) -> dict[str, Any]:
        """The content of world.json: seed, options, river, terrain parameters, places."""
        river = shapely.geometry.mapping(self.river)
        bridge = self.planned_bridge
        return {
            "format": FORMAT,
            "note": "Synthetic sample data at real coordinates; not LAiV M-V data. Positions "
                    "marked approximate are estimates.",
            "seed": self.seed,
            "options": options,
            "crs": "EPSG:25833+7837",
            "extent": [self.extent.e_min, self.extent.n_min, self.extent.e_max,
                       self.extent.n_max],
            "water_level": WATER_LEVEL,
            "river": {"type": "Polygon", "coordinates": _rounded(river["coordinates"])},
            "peninsulas": {k: [list(v) for v in pts] for k, pts in PENINSULAS.items()},
            "terrain": self.terrain_parameters.to_dict(),
            "places": [_place_dict(self, p) for p in PLACES],
            "streets": [{"name": s.name, "width": s.width,
                         "line": [[round(x, 3), round(y, 3)] for x, y in s.line]}
                        for s in self.streets],
            "buildings": {"existing": len(self.buildings),
                          "planned": len(self.planned_buildings)},
            "vegetation": {"trees": int(np.count_nonzero(self.vegetation.kind == 5)),
                           "shrubs": int(np.count_nonzero(self.vegetation.kind == 4))},
            "existing_bridges": [{"name": b.name, "deck_height": b.deck_height,
                                  "outline": _rounded(list(b.outline.exterior.coords))}
                                 for b in self.existing_bridges],
            "warnowbruecke": bridge.summary(),
            "files": files,
        }


def _place_dict(world: World, p: Place) -> dict[str, Any]:
    water = bool(world.is_water(p.e, p.n))
    height = WATER_LEVEL if water else round(float(world.terrain_height(p.e, p.n)), 3)
    return {"id": p.id, "name": p.name, "e": p.e, "n": p.n, "height": height,
            "water": water, "source": p.source}


def _rounded(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    return value


def dumps(document: dict[str, Any]) -> str:
    """world.json text: stable key order and formatting."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"
