"""Placement: parse the CRS a file declares, transform its coordinates to ECEF, ENU frames.

Conventions, because wrong placement is the most common failure in this field:

- The CRS comes from the file (CityGML ``srsName``, LAS WKT/GeoTIFF records) or from an
  explicit ``--crs``; anything unknown or missing is a :class:`~twin.errors.CRSError`.
- Coordinates are taken *as written in the file*: geographic CRSs in their EPSG axis order
  (latitude first for EPSG:4326/4258/4979/4937), projected CRSs always easting first, even
  where EPSG says northing first (EPSG:31468, EPSG:3068): files write easting first.
- Normal/orthometric heights (DHHN2016, DHHN92, ...) become ellipsoidal heights through an
  explicit geoid/quasigeoid grid, never through PROJ's silent "ballpark" fallback (which
  keeps h = H, about 38 m wrong at Rostock). The model used and its expected error are
  reported as a :class:`VerticalModel`.
- ETRS89 and WGS 84 are taken as equal at the ellipsoid, as is standard for 3D Tiles. The
  true difference is the drift of the Eurasian plate since 1989 (about 2.5 cm a year, close
  to 0.9 m by 2025) and it is the same for every feature, so relative placement is exact and
  the absolute offset is below what global base maps resolve. Other datums (DHDN, RGF93, ...)
  are transformed properly, with ``allow_ballpark=False``.
"""

from __future__ import annotations

import functools
import os
import re
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyproj
import pyproj.datadir
from pyproj.crs import CompoundCRS
from pyproj.datadir import get_user_data_dir  # type: ignore[attr-defined]  # documented API
from pyproj.exceptions import CRSError as PyprojCRSError
from pyproj.exceptions import ProjError
from pyproj.transformer import TransformerGroup

from twin.errors import CRSError, GeoidError, GeometryError

FloatArray = npt.NDArray[np.float64]

CRS_HINT = "pass --crs EPSG:XXXX (e.g. --crs EPSG:25833+7837)"
"""The way out named by every message about an unknown or missing CRS."""

# Debian's proj-data package: the only geoid grid (EGM96) and the DHDN grid (BETA2007)
# available offline. pyproj's wheel has its own data dir with proj.db; this one is *appended*
# to PROJ's search path so pyproj's proj.db keeps precedence.
DEBIAN_PROJ_DATA = Path("/usr/share/proj")
EGM96_GRID_NAMES = ("us_nga_egm96_15.tif", "egm96_15.gtx")
GCG2016_GRID_NAMES = ("de_bkg_gcg2016.tif", "GCG2016.tif", "GCG2016.gtx", "gcg2016.gtx")
GERMANY_LON_LAT_BOUNDS = (5.5, 47.0, 15.5, 55.5)
"""West, south, east, north: where a GCG2016 found on the system may serve undeclared heights."""


@dataclass(frozen=True, slots=True)
class VerticalErrorBounds:
    """Expected errors (m) of the ellipsoidal heights each vertical model gives."""

    ellipsoidal: float = 0.0
    """Heights already ellipsoidal: no geoid involved."""
    gcg2016: float = 0.02
    """GCG2016, BKG's quasigeoid for DHHN2016: about 1 cm in the lowlands, 2 cm in the
    mountains and at the coast (EPSG:10294 states 0.02 m)."""
    user_grid: float = 0.02
    """A grid the user names is taken to be the official model of the data's heights, as
    GCG2016 is for DHHN2016."""
    egm96_for_normal_heights: float = 1.0
    """EGM96 stands in for the German quasigeoid. EPSG states 1 m for EGM96 itself
    (EPSG:10084). EGM96 resolves only about 55 km (degree 360); published comparisons with
    GPS/levelling in Europe show a few decimetres RMS plus a systematic offset of some
    decimetres between its zero level and the Amsterdam-based DHHN, growing in the
    mountains. Geoid (orthometric) against quasigeoid (normal heights) adds under a centimetre
    in the lowlands. 1.0 m is a defensible bound for Germany; at Rostock (flat, near the
    coast) the error is likely a few decimetres. Not checked against GCG2016 here: that grid
    is not available offline."""
    egm96_for_egm96_heights: float = 0.01
    """EGM96 heights through NGA's own 15' grid: only its bilinear interpolation, well under
    1 cm in flat terrain."""
    unstated_accuracy: float = 1.0
    """A PROJ operation whose accuracy the EPSG database does not state."""


VERTICAL_ERRORS = VerticalErrorBounds()


@dataclass(frozen=True, slots=True)
class NormalHeightSystem:
    """A height system whose heights lie within ``offset_m`` of DHHN2016 normal heights."""

    name: str
    offset_m: float


# Height systems that a quasigeoid for DHHN2016 (or EGM96 in its place) serves, keyed by EPSG
# code, with how far their heights may lie from DHHN2016 (added to the expected error).
NORMAL_HEIGHT_SYSTEMS: dict[int, NormalHeightSystem] = {
    7837: NormalHeightSystem("DHHN2016", 0.0),
    # DHHN92 -> DHHN2016: a few centimetres almost everywhere (BKG).
    5783: NormalHeightSystem("DHHN92", 0.05),
    # DHHN85 (NN, normal-orthometric, West Germany): centimetres to about a decimetre.
    5784: NormalHeightSystem("DHHN85", 0.2),
    # SNN76 (HN, Kronstadt datum, GDR): of the order of 0.15 m from NHN.
    5785: NormalHeightSystem("SNN76", 0.2),
    # DHHN12 (old NN, 1912): up to a few decimetres.
    7699: NormalHeightSystem("DHHN12", 0.3),
    # EVRS realisations agree with DHHN2016 in Germany to a few centimetres (DHHN2016 is
    # part of EVRF2019).
    5730: NormalHeightSystem("EVRF2000", 0.05),
    5621: NormalHeightSystem("EVRF2007", 0.05),
    9389: NormalHeightSystem("EVRF2019", 0.05),
}
EGM96_HEIGHT = 5773

# AdV (German surveying authorities) CRS identifiers, as in urn:adv:crs:HORIZONTAL*VERTICAL
# (GeoInfoDok / ALKIS / the states' LoD1/LoD2 CityGML). Keys are matched case-insensitively.
# State-specific realisations such as DE_DHDN_3GK3_BW100 or DE_DHDN_3GK2_NW177 differ in
# false easting or local datum and are deliberately absent: they need an explicit --crs.
ADV_HORIZONTAL: dict[str, int] = {
    "ETRS89_UTM31": 25831,
    "ETRS89_UTM32": 25832,
    "ETRS89_UTM33": 25833,
    "ETRS89_Lat-Lon": 4258,
    "ETRS89_Lat-Lon-h": 4937,
    "ETRS89_X-Y-Z": 4936,
    "WGS84_Lat-Lon": 4326,
    "DE_DHDN_Lat-Lon": 4314,
    "DE_DHDN_3GK2": 31466,
    "DE_DHDN_3GK3": 31467,
    "DE_DHDN_3GK4": 31468,
    "DE_DHDN_3GK5": 31469,
}
ADV_VERTICAL: dict[str, int] = {
    "DE_DHHN2016_NH": 7837,
    "DE_DHHN92_NH": 5783,
    "DE_DHHN85_NOH": 5784,
    "DE_DHHN12_NOH": 7699,
    "DE_SNN76_NH": 5785,
}
ADV_ELLIPSOIDAL_HEIGHT = "ETRS89_h"
"""AdV's ellipsoidal height: makes the horizontal CRS three-dimensional."""

_ADV_HORIZONTAL_KEYS = {k.casefold(): v for k, v in ADV_HORIZONTAL.items()}
_ADV_VERTICAL_KEYS = {k.casefold(): v for k, v in ADV_VERTICAL.items()}

# "EPSG:25833", "EPSG:6.12:25833", "EPSG::25833", "urn:ogc:def:crs:EPSG::25833",
# "urn:x-ogc:def:crs:EPSG:6.12:25833", "OGC:CRS84", "EPSG:25833+7837"
_AUTHORITY_CODE = re.compile(
    r"^(?:urn:(?:x-)?ogc:def:crs:)?(?P<auth>EPSG|OGC)(?::(?P<version>[\d.]*))?"
    r":(?P<code>[A-Za-z0-9]+(?:\+[0-9]+)?)$",
    re.IGNORECASE,
)
# "http(s)://www.opengis.net/def/crs/EPSG/0/25833"
_OPENGIS_URL = re.compile(
    r"^https?://www\.opengis\.net/def/crs/(?P<auth>EPSG|OGC)/(?P<version>[^/]*)/"
    r"(?P<code>[A-Za-z0-9]+)/?$",
    re.IGNORECASE,
)
# "http://www.opengis.net/gml/srs/epsg.xml#25833"
_GML_SRS_URL = re.compile(
    r"^https?://www\.opengis\.net/gml/srs/epsg\.xml#(?P<code>[0-9]+)$", re.IGNORECASE
)
_COMPOUND_URN_PREFIX = re.compile(r"^urn:(?:x-)?ogc:def:crs,", re.IGNORECASE)
_COMPOUND_URL = re.compile(r"^https?://www\.opengis\.net/def/crs-compound\?", re.IGNORECASE)
_ADV_URN = re.compile(r"^urn:adv:crs:(?P<name>.+)$", re.IGNORECASE)
_WKT_START = re.compile(r"^\s*[A-Z][A-Z0-9_]*\s*\[", re.IGNORECASE)


@dataclass(frozen=True)
class SourceCRS:
    """The CRS of a file's coordinates: horizontal (x/y) and vertical (z) parts."""

    horizontal: pyproj.CRS = field(compare=False)
    """2D, geographic, or 3D (ellipsoidal height, geocentric) CRS of x/y."""
    vertical: pyproj.CRS | None = field(compare=False)
    """Vertical CRS of z, None if the source does not declare one."""
    text: str
    """What the file or the user said, for messages."""
    xy_order: bool = False
    """True if x/y are written longitude/easting first whatever the CRS says (LAS does)."""
    _key: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # pyproj hashes a CRS by exporting WKT on every call; cache one key so that
        # ecef_transformer() stays cheap when callers ask per city object.
        vertical = self.vertical.to_wkt() if self.vertical is not None else ""
        object.__setattr__(self, "_key", f"{self.horizontal.to_wkt()}\n{vertical}")

    @property
    def is_geographic(self) -> bool:
        """True if x/y are latitude/longitude."""
        return bool(_unbound(self.horizontal).is_geographic)

    @property
    def label(self) -> str:
        """The CRS as the file or user named it, else its name."""
        if self.text:
            return self.text
        if self.vertical is not None:
            return f"{self.horizontal.name} + {self.vertical.name}"
        return str(self.horizontal.name)

    @property
    def lat_first(self) -> bool:
        """True if coordinates are written latitude first (EPSG order of geographic CRSs)."""
        if self.xy_order or not self.is_geographic:
            return False
        crs = _unbound(self.horizontal)
        return bool(crs.axis_info) and crs.axis_info[0].direction.lower() == "north"


def parse_srs_name(srs_name: str) -> SourceCRS:
    """The SourceCRS of an srsName in any common spelling (EPSG, OGC URN/URL, AdV URN)."""
    text = srs_name.strip()
    if not text:
        raise CRSError(f"missing CRS (empty srsName): {CRS_HINT}")
    if (match := _ADV_URN.match(text)) is not None:
        return _parse_adv(match["name"], srs_name)
    if _COMPOUND_URN_PREFIX.match(text):
        parts = [p.strip() for p in text.split(",")[1:]]
        if not parts or any(not p.lower().startswith("crs:") for p in parts):
            raise _unknown(srs_name)
        components = [_parse_single(f"urn:ogc:def:{p}", srs_name) for p in parts]
        return _from_components(components, srs_name)
    if _COMPOUND_URL.match(text):
        query = urllib.parse.urlsplit(text).query
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if not pairs or any(not key.isdigit() for key, _ in pairs):
            raise _unknown(srs_name)
        ordered = [value for _, value in sorted(pairs, key=lambda kv: int(kv[0]))]
        return _from_components([_parse_single(v, srs_name) for v in ordered], srs_name)
    return _from_components([_parse_single(text, srs_name)], srs_name)


def parse_crs_option(text: str) -> SourceCRS:
    """The SourceCRS of a --crs value: anything parse_srs_name accepts, WKT or PROJJSON."""
    stripped = text.strip()
    if stripped.startswith("{") or _WKT_START.match(stripped):
        try:
            crs = pyproj.CRS.from_user_input(stripped)
        except PyprojCRSError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else "not a CRS"
            raise CRSError(
                f"cannot read --crs {_shorten(text)!r} ({first_line}): {CRS_HINT}"
            ) from None
        return source_crs_from_pyproj(crs, _shorten(stripped))
    return parse_srs_name(text)


def source_crs_from_pyproj(crs: pyproj.CRS, text: str = "", *, xy_order: bool = False) -> SourceCRS:
    """Split a pyproj CRS (e.g. from a LAS file) into horizontal and vertical parts."""
    return _from_components([crs], text, xy_order=xy_order)


def resolve_source_crs(
    declared: str | pyproj.CRS | None, override: str | None = None, where: str = ""
) -> SourceCRS:
    """The CRS to use: the --crs override, else the file's own, else a CRSError."""
    prefix = f"{where}: " if where else ""
    if override:
        return parse_crs_option(override)
    if declared is None or (isinstance(declared, str) and not declared.strip()):
        raise CRSError(f"{prefix}the file declares no CRS: {CRS_HINT}")
    try:
        if isinstance(declared, pyproj.CRS):
            return source_crs_from_pyproj(declared)
        return parse_srs_name(declared)
    except CRSError as exc:
        raise CRSError(f"{prefix}{exc}") from None


@dataclass(frozen=True)
class VerticalModel:
    """How heights become ellipsoidal heights, and how wrong they may be."""

    name: str
    expected_error_m: float
    grid: Path | None


class EcefTransformer:
    """Source CRS coordinates (as written in the file) -> EPSG:4978 ECEF, float64."""

    def __init__(self, source: SourceCRS, *, geoid: Path | str | None = None) -> None:
        self.source = source
        self.geoid = Path(geoid) if geoid is not None else None
        _use_debian_proj_data()
        horizontal = _unbound(source.horizontal)
        self._geocentric = bool(horizontal.is_geocentric)
        self._lat_first = source.lat_first
        self._horizontal: pyproj.Transformer | None = None
        if not self._geocentric:
            self._horizontal = _horizontal_transformer(source)
        self._height: pyproj.Transformer | None
        self.vertical_model: VerticalModel
        self._height, self.vertical_model = _height_model(source, self.geoid)

    def __repr__(self) -> str:
        return f"EcefTransformer({self.source.label!r}, {self.vertical_model.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # pyproj transformers do not pickle; a worker rebuilds (and caches) its own.
        return (ecef_transformer, (self.source, self.geoid))

    def to_ecef(self, xyz: npt.ArrayLike) -> FloatArray:
        """(n, 3) source coordinates as written -> (n, 3) ECEF metres."""
        points = _points(xyz, 3)
        if self._geocentric:
            return points.copy()
        lon, lat = self._to_lonlat(points)
        heights = self._ellipsoidal_heights(lon, lat, points)
        return geodetic_to_ecef(lon, lat, heights)

    def from_ecef(self, ecef: npt.ArrayLike) -> FloatArray:
        """(n, 3) ECEF metres -> (n, 3) source coordinates as written in the file."""
        points = _points(ecef, 3)
        if self._geocentric:
            return points.copy()
        lon, lat, heights = ecef_to_geodetic(points)
        if self._height is not None:
            _, _, heights = self._height.transform(lon, lat, heights, direction="INVERSE")
        assert self._horizontal is not None
        x, y = self._horizontal.transform(lon, lat, direction="INVERSE")
        if self._lat_first:
            x, y = y, x
        out = np.column_stack([x, y, heights]).astype(np.float64, copy=False)
        if not np.isfinite(out).all():
            raise CRSError(
                f"cannot transform ECEF coordinates back to {self.source.label!r}: "
                "outside the CRS's area of use or its grids"
            )
        return out

    def to_lonlat(self, xyz: npt.ArrayLike) -> FloatArray:
        """(n, 2) or (n, 3) source coordinates -> (n, 2) longitude, latitude in degrees."""
        if self._geocentric:
            lon, lat, _ = ecef_to_geodetic(_points(xyz, 3))
        else:
            lon, lat = self._to_lonlat(_points(xyz, 2))
        return np.column_stack([lon, lat])

    def _to_lonlat(self, points: FloatArray) -> tuple[FloatArray, FloatArray]:
        x, y = (points[:, 1], points[:, 0]) if self._lat_first else (points[:, 0], points[:, 1])
        assert self._horizontal is not None
        lon, lat = self._horizontal.transform(np.ascontiguousarray(x), np.ascontiguousarray(y))
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        bad = ~(np.isfinite(lon) & np.isfinite(lat))
        if bad.any():
            raise CRSError(
                f"cannot transform ({_format_point(points[bad][0])}) from {self.source.label!r}: "
                f"outside the CRS's area of use; check the CRS or {CRS_HINT}"
            )
        return lon, lat

    def _ellipsoidal_heights(
        self, lon: FloatArray, lat: FloatArray, points: FloatArray
    ) -> FloatArray:
        heights = np.ascontiguousarray(points[:, 2])
        if self._height is None:
            return heights
        _, _, shifted = self._height.transform(lon, lat, heights)
        shifted = np.asarray(shifted, dtype=np.float64)
        bad = ~np.isfinite(shifted)
        if bad.any():
            model = self.vertical_model
            raise GeoidError(
                f"no geoid value at ({_format_point(points[bad][0])}) of {self.source.label!r} "
                f"in {model.grid or model.name}: pass --geoid GRID covering the data"
            )
        return shifted


def ecef_transformer(source: SourceCRS, geoid: Path | str | None = None) -> EcefTransformer:
    """A cached EcefTransformer: cheap to ask for per object, and built anew per process."""
    return _cached_transformer(source, Path(geoid) if geoid is not None else None)


@functools.lru_cache(maxsize=64)
def _cached_transformer(source: SourceCRS, geoid: Path | None) -> EcefTransformer:
    # One positional signature, so f(s) and f(s, None) share a cache entry.
    return EcefTransformer(source, geoid=geoid)


# --- WGS84 ellipsoid helpers --------------------------------------------------------------

WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_B = WGS84_A * (1.0 - WGS84_F)
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
WGS84_EP2 = WGS84_E2 / (1.0 - WGS84_E2)


def geodetic_to_ecef(
    lon_deg: npt.ArrayLike, lat_deg: npt.ArrayLike, h: npt.ArrayLike
) -> FloatArray:
    """Longitude, latitude (degrees) and ellipsoidal height (m) -> (..., 3) WGS84 ECEF."""
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    height = np.asarray(h, dtype=np.float64)
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    x = (n + height) * cos_lat * np.cos(lon)
    y = (n + height) * cos_lat * np.sin(lon)
    z = (n * (1.0 - WGS84_E2) + height) * sin_lat
    return np.stack(np.broadcast_arrays(x, y, z), axis=-1)


def ecef_to_geodetic(ecef: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(..., 3) WGS84 ECEF -> longitude, latitude (degrees) and ellipsoidal height (m)."""
    points = np.asarray(ecef, dtype=np.float64)
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    p = np.hypot(x, y)
    lon = np.arctan2(y, x)
    # Bowring's iteration on the parametric latitude: three rounds reach well below a
    # micrometre for any point near the Earth's surface, and it is stable at the poles.
    beta = np.arctan2(z, (1.0 - WGS84_F) * p)
    for _ in range(3):
        sin_b, cos_b = np.sin(beta), np.cos(beta)
        lat = np.arctan2(z + WGS84_EP2 * WGS84_B * sin_b**3, p - WGS84_E2 * WGS84_A * cos_b**3)
        beta = np.arctan2((1.0 - WGS84_F) * np.sin(lat), np.cos(lat))
    sin_lat = np.sin(lat)
    h = p * np.cos(lat) + z * sin_lat - WGS84_A * np.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    return np.degrees(lon), np.degrees(lat), h


def enu_to_ecef_matrix(origin_ecef: npt.ArrayLike) -> FloatArray:
    """4x4 M with M @ [e, n, u, 1] = ECEF, east-north-up at the origin's geodetic lon/lat."""
    origin = np.asarray(origin_ecef, dtype=np.float64).reshape(3)
    lon_deg, lat_deg, _ = ecef_to_geodetic(origin)
    lon, lat = np.radians(float(lon_deg)), np.radians(float(lat_deg))
    sin_lon, cos_lon = np.sin(lon), np.cos(lon)
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    matrix = np.eye(4)
    matrix[:3, 0] = (-sin_lon, cos_lon, 0.0)
    matrix[:3, 1] = (-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat)
    matrix[:3, 2] = (cos_lat * cos_lon, cos_lat * sin_lon, sin_lat)
    matrix[:3, 3] = origin
    return matrix


def ecef_to_enu_matrix(origin_ecef: npt.ArrayLike) -> FloatArray:
    """4x4 inverse of enu_to_ecef_matrix: ECEF -> east-north-up at the origin."""
    forward = enu_to_ecef_matrix(origin_ecef)
    rotation = forward[:3, :3].T
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = -rotation @ forward[:3, 3]
    return matrix


# --- geoid grids ---------------------------------------------------------------------------


def proj_search_dirs() -> list[Path]:
    """Directories PROJ searches for grids: pyproj's data dirs, the user dir, Debian's."""
    dirs = [Path(d) for d in pyproj.datadir.get_data_dir().split(os.pathsep) if d]
    dirs.append(Path(get_user_data_dir()))
    dirs.append(DEBIAN_PROJ_DATA)
    return list(dict.fromkeys(dirs))


def find_grid(names: tuple[str, ...]) -> Path | None:
    """The first grid file of these names in PROJ's search path, or None."""
    for directory in proj_search_dirs():
        for name in names:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    return None


def geoid_pipeline(grid: Path) -> pyproj.Transformer:
    """A transformer (lon, lat deg, H) -> (lon, lat, h = H + N) adding the grid's undulation N."""
    if not grid.is_file():
        raise GeoidError(f"geoid grid '{grid}' not found: pass an existing grid file with --geoid")
    # vgridshift with multiplier 1 adds the grid value going forward (H -> h).
    definition = (
        "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
        f"+step +proj=vgridshift +grids={grid.resolve()} +multiplier=1 "
        "+step +proj=unitconvert +xy_in=rad +xy_out=deg"
    )
    try:
        return pyproj.Transformer.from_pipeline(definition)
    except ProjError as exc:
        raise GeoidError(
            f"cannot read geoid grid '{grid}' ({exc}): pass a GTX or GeoTIFF grid with --geoid"
        ) from None


# --- internals ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _use_debian_proj_data() -> None:
    # Appended, not prepended: pyproj's own proj.db stays the one PROJ opens.
    current = pyproj.datadir.get_data_dir().split(os.pathsep)
    if DEBIAN_PROJ_DATA.is_dir() and str(DEBIAN_PROJ_DATA) not in current:
        pyproj.datadir.append_data_dir(str(DEBIAN_PROJ_DATA))


def _unknown(text: str) -> CRSError:
    return CRSError(f"unknown CRS {_shorten(text)!r}: {CRS_HINT}")


def _shorten(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _unbound(crs: pyproj.CRS) -> pyproj.CRS:
    return crs.source_crs if crs.is_bound and crs.source_crs is not None else crs


def _crs_from_code(auth: str, code: str, original: str) -> pyproj.CRS:
    try:
        return pyproj.CRS.from_user_input(f"{auth.upper()}:{code}")
    except PyprojCRSError:
        raise _unknown(original) from None


def _parse_single(text: str, original: str) -> pyproj.CRS:
    text = text.strip()
    for pattern in (_AUTHORITY_CODE, _OPENGIS_URL):
        if (match := pattern.match(text)) is not None:
            return _crs_from_code(match["auth"], match["code"], original)
    if (match := _GML_SRS_URL.match(text)) is not None:
        return _crs_from_code("EPSG", match["code"], original)
    raise _unknown(original)


def _parse_adv(name: str, original: str) -> SourceCRS:
    horizontal_name, _, vertical_name = name.strip().partition("*")
    horizontal_code = _ADV_HORIZONTAL_KEYS.get(horizontal_name.casefold())
    if horizontal_code is None:
        if horizontal_name.casefold() in _ADV_VERTICAL_KEYS and not vertical_name:
            raise _vertical_only(original)
        raise _unknown(original)
    horizontal = pyproj.CRS.from_epsg(horizontal_code)
    vertical: pyproj.CRS | None = None
    if vertical_name:
        if vertical_name.casefold() == ADV_ELLIPSOIDAL_HEIGHT.casefold():
            if not horizontal.is_geocentric and len(horizontal.axis_info) == 2:
                horizontal = horizontal.to_3d()
        elif (vertical_code := _ADV_VERTICAL_KEYS.get(vertical_name.casefold())) is not None:
            vertical = pyproj.CRS.from_epsg(vertical_code)
        else:
            raise _unknown(original)
    return _from_components([horizontal] if vertical is None else [horizontal, vertical], original)


def _vertical_only(text: str) -> CRSError:
    return CRSError(
        f"CRS {_shorten(text)!r} is a height system only and cannot place x/y: "
        "pass --crs with both parts (e.g. --crs EPSG:25833+7837)"
    )


def _from_components(crss: list[pyproj.CRS], text: str, *, xy_order: bool = False) -> SourceCRS:
    flat: list[pyproj.CRS] = []
    for crs in crss:
        inner = _unbound(crs)
        flat.extend(inner.sub_crs_list if inner.is_compound else [crs])
    horizontals = [c for c in flat if not _unbound(c).is_vertical]
    verticals = [c for c in flat if _unbound(c).is_vertical]
    if not horizontals and verticals:
        raise _vertical_only(text or str(verticals[0].name))
    if len(horizontals) != 1 or len(verticals) > 1:
        raise CRSError(
            f"CRS {_shorten(text or ' + '.join(c.name for c in flat))!r} is not one horizontal "
            f"and at most one vertical CRS: {CRS_HINT}"
        )
    horizontal = horizontals[0]
    if verticals and (len(_unbound(horizontal).axis_info) == 3):
        raise CRSError(
            f"CRS {_shorten(text)!r} has two heights (a 3D CRS and a vertical CRS): {CRS_HINT}"
        )
    return SourceCRS(horizontal, verticals[0] if verticals else None, text, xy_order)


def _format_point(point: FloatArray) -> str:
    return ", ".join(f"{v:.3f}" for v in point)


def _points(values: npt.ArrayLike, min_columns: int) -> FloatArray:
    points = np.asarray(values, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < min_columns or points.shape[1] > 3:
        raise GeometryError(
            f"expected an (n, {min_columns}) array of coordinates, got shape {points.shape}"
        )
    if not np.isfinite(points).all():
        bad = points[~np.isfinite(points).all(axis=1)][0]
        raise GeometryError(f"non-finite input coordinate {bad.tolist()}: fix or drop the point")
    return points


def _same_ellipsoid_datum(crs: pyproj.CRS) -> bool:
    # ETRS89, WGS 84 and the ITRF realisations are one datum here (see module docstring).
    geodetic = _unbound(crs).geodetic_crs
    datum = geodetic.datum if geodetic is not None else None
    name = datum.name if datum is not None else ""
    return name.startswith(
        (
            "European Terrestrial Reference",
            "ETRS89",
            "World Geodetic System 1984",
            "International Terrestrial Reference",
        )
    )


def _horizontal_transformer(source: SourceCRS) -> pyproj.Transformer:
    """(x, y) in the source CRS (easting/longitude first) -> ETRS89/WGS84 lon, lat degrees."""
    horizontal = source.horizontal
    plain = _unbound(horizontal)
    if len(plain.axis_info) == 3 and not horizontal.is_bound:
        horizontal = horizontal.to_2d()
    if _same_ellipsoid_datum(horizontal):
        geodetic = _unbound(horizontal).geodetic_crs
        assert geodetic is not None
        target = geodetic.to_2d() if len(geodetic.axis_info) == 3 else geodetic
        return _exact_transformer(horizontal, target, source)
    # Other datums: to ETRS89 where PROJ knows a way (DHDN, RGF93, ...), else to WGS 84
    # (NAD83 and its realisations have registered transformations only to WGS 84).
    try:
        return _exact_transformer(horizontal, pyproj.CRS.from_epsg(4258), source)
    except CRSError:
        return _exact_transformer(horizontal, pyproj.CRS.from_epsg(4326), source)


def _exact_transformer(
    horizontal: pyproj.CRS, target: pyproj.CRS, source: SourceCRS
) -> pyproj.Transformer:
    """A transformer that is not PROJ's ballpark guess, or CRSError."""
    try:
        transformer = pyproj.Transformer.from_crs(
            horizontal, target, always_xy=True, allow_ballpark=False
        )
    except ProjError:
        raise CRSError(
            f"no exact transformation from {source.label!r} to ETRS89/WGS 84 (PROJ has none "
            f"without a ballpark guess): {CRS_HINT}"
        ) from None
    if "ballpark" in transformer.description.lower():
        raise CRSError(f"only a ballpark transformation exists for {source.label!r}: {CRS_HINT}")
    return transformer


def _is_ellipsoidal(source: SourceCRS) -> bool:
    horizontal = _unbound(source.horizontal)
    return bool(horizontal.is_geocentric) or len(horizontal.axis_info) == 3


def _vertical_code(vertical: pyproj.CRS) -> int | None:
    code = _unbound(vertical).to_epsg()
    return int(code) if code is not None else None


def _in_germany(crs: pyproj.CRS) -> bool:
    area = _unbound(crs).area_of_use
    if area is None:
        return False
    west, south, east, north = area.bounds
    de_west, de_south, de_east, de_north = GERMANY_LON_LAT_BOUNDS
    return west < de_east and east > de_west and south < de_north and north > de_south


def _height_model(
    source: SourceCRS, geoid: Path | None
) -> tuple[pyproj.Transformer | None, VerticalModel]:
    """The transformer (lon, lat, H) -> (lon, lat, h) for the source's heights, and its model."""
    if _is_ellipsoidal(source):
        if geoid is not None:
            raise GeoidError(
                f"{source.label!r} already has ellipsoidal heights; a geoid grid does not "
                "apply: drop --geoid"
            )
        kind = (
            "geocentric coordinates"
            if _unbound(source.horizontal).is_geocentric
            else "ellipsoidal heights"
        )
        return None, VerticalModel(
            f"{kind} ({source.label}); no geoid needed", VERTICAL_ERRORS.ellipsoidal, None
        )

    vertical = source.vertical
    code = _vertical_code(vertical) if vertical is not None else None
    # How the model's name goes on after the grid, e.g. "EGM96 geoid (egm96_15.gtx) for ...".
    if vertical is None:
        heights = "; vertical datum not declared; assumed normal heights"
        offset = 0.0
    elif code in NORMAL_HEIGHT_SYSTEMS:
        system = NORMAL_HEIGHT_SYSTEMS[code]
        heights = f" for {system.name} normal heights"
        offset = system.offset_m
    else:
        heights = f" for {vertical.name}"
        offset = 0.0

    if geoid is not None:
        return geoid_pipeline(geoid), _user_grid_model(geoid, heights, offset)

    if vertical is not None and code == EGM96_HEIGHT:
        grid = _require_egm96(source)
        return geoid_pipeline(grid), VerticalModel(
            f"EGM96 geoid ({grid.name}) for EGM96 heights",
            VERTICAL_ERRORS.egm96_for_egm96_heights,
            grid,
        )

    if vertical is None or code in NORMAL_HEIGHT_SYSTEMS:
        gcg2016 = find_grid(GCG2016_GRID_NAMES)
        if gcg2016 is not None and (vertical is not None or _in_germany(source.horizontal)):
            return geoid_pipeline(gcg2016), VerticalModel(
                f"GCG2016 quasigeoid ({gcg2016.name}){heights}",
                round(VERTICAL_ERRORS.gcg2016 + offset, 3),
                gcg2016,
            )
        grid = _require_egm96(source)
        return geoid_pipeline(grid), VerticalModel(
            f"EGM96 geoid ({grid.name}){heights}",
            round(VERTICAL_ERRORS.egm96_for_normal_heights + offset, 3),
            grid,
        )

    assert vertical is not None
    return _pyproj_height_model(source, vertical)


def _user_grid_model(geoid: Path, heights: str, offset: float) -> VerticalModel:
    name = geoid.name.lower()
    if "egm96" in name:
        error = VERTICAL_ERRORS.egm96_for_normal_heights + offset
        label = f"EGM96 geoid ({geoid.name}, user-supplied){heights}"
    elif "gcg2016" in name:
        error = VERTICAL_ERRORS.gcg2016 + offset
        label = f"GCG2016 quasigeoid ({geoid.name}, user-supplied){heights}"
    else:
        error = VERTICAL_ERRORS.user_grid
        label = f"user-supplied geoid grid ({geoid.name}){heights}, taken as their official model"
    return VerticalModel(label, round(error, 3), geoid)


def _require_egm96(source: SourceCRS) -> Path:
    grid = find_grid(EGM96_GRID_NAMES)
    if grid is None:
        raise GeoidError(
            f"heights of {source.label!r} need a geoid model and none is installed: "
            "install Debian's proj-data (egm96_15.gtx) or pass --geoid GRID (e.g. GCG2016)"
        )
    return grid


def _pyproj_height_model(
    source: SourceCRS, vertical: pyproj.CRS
) -> tuple[pyproj.Transformer, VerticalModel]:
    """A height system we do not know by name: only an exact PROJ operation will do."""
    etrs89 = pyproj.CRS.from_epsg(4258)
    try:
        compound = CompoundCRS(f"ETRS89 + {vertical.name}", [etrs89, _unbound(vertical)])
        target = pyproj.CRS.from_epsg(4937)
        with warnings.catch_warnings():
            # pyproj warns when the best operation's grid is missing; that case is an error here.
            warnings.simplefilter("ignore", UserWarning)
            group = TransformerGroup(compound, target, always_xy=True, allow_ballpark=False)
        usable = [t for t in group.transformers if "ballpark" not in t.description.lower()]
        transformer = (
            pyproj.Transformer.from_crs(compound, target, always_xy=True, allow_ballpark=False)
            if usable
            else None
        )
    except (ProjError, PyprojCRSError):
        usable, transformer = [], None
    if transformer is None:
        raise GeoidError(
            f"no geoid grid for the heights of {source.label!r} ({vertical.name}): "
            "pass --geoid GRID for them, or --crs with a known height system "
            "(e.g. --crs EPSG:25833+7837)"
        )
    accuracies = [t.accuracy for t in usable if t.accuracy >= 0]
    error = max(accuracies) if accuracies else VERTICAL_ERRORS.unstated_accuracy
    return transformer, VerticalModel(
        f"PROJ operation {usable[0].description!r} for {vertical.name}", float(error), None
    )
