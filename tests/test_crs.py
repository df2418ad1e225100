"""Placement: CRS parsing, transformation to ECEF with explicit geoids, ENU frames."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyproj
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin import crs as crs_module
from twin.crs import (
    ADV_HORIZONTAL,
    ADV_VERTICAL,
    EcefTransformer,
    SourceCRS,
    VerticalModel,
    ecef_to_enu_matrix,
    ecef_to_geodetic,
    ecef_transformer,
    enu_to_ecef_matrix,
    find_grid,
    geodetic_to_ecef,
    parse_crs_option,
    parse_srs_name,
    resolve_source_crs,
    source_crs_from_pyproj,
)
from twin.errors import CRSError, GeoidError, GeometryError

# Kröpeliner Tor, Rostock (CONTEXT.md): EPSG:25833 and its geographic position.
KROEPELINER_TOR_EN = (312244.0, 5997168.0)
KROEPELINER_TOR_LON_LAT = (12.1292, 54.0884)
EGM96_GRID = Path("/usr/share/proj/egm96_15.gtx")


def epsg_codes(source: SourceCRS) -> tuple[int | None, int | None]:
    vertical = source.vertical.to_epsg() if source.vertical is not None else None
    return source.horizontal.to_epsg(), vertical


def write_gtx(path: Path, south: float, west: float, step: float, values: np.ndarray) -> Path:
    """A GTX grid: big-endian header (lat, lon, dlat, dlon, rows, cols), rows south to north."""
    rows, cols = values.shape
    header = np.array([south, west, step, step], ">f8").tobytes()
    header += np.array([rows, cols], ">i4").tobytes()
    path.write_bytes(header + values.astype(">f4").tobytes())
    return path


def egm96_undulation(lon: float, lat: float) -> float:
    """EGM96 geoid height read straight from the GTX file and interpolated bilinearly."""
    raw = EGM96_GRID.read_bytes()
    lat0, lon0, dlat, dlon = np.frombuffer(raw[:32], ">f8")
    rows, cols = np.frombuffer(raw[32:40], ">i4")
    grid = np.frombuffer(raw[40:], ">f4").reshape(rows, cols).astype(np.float64)
    fi, fj = (lat - lat0) / dlat, ((lon - lon0) % 360.0) / dlon
    i, j = int(fi), int(fj)
    di, dj = fi - i, fj - j
    return float(
        grid[i, j] * (1 - di) * (1 - dj)
        + grid[i, j + 1] * (1 - di) * dj
        + grid[i + 1, j] * di * (1 - dj)
        + grid[i + 1, j + 1] * di * dj
    )


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("srs_name", "expected"),
    [
        ("EPSG:25833", (25833, None)),
        ("epsg:25833", (25833, None)),
        ("EPSG:6.12:25833", (25833, None)),
        ("urn:ogc:def:crs:EPSG::25833", (25833, None)),
        ("urn:ogc:def:crs:EPSG:6.12:25833", (25833, None)),
        ("urn:x-ogc:def:crs:EPSG:25833", (25833, None)),
        ("http://www.opengis.net/def/crs/EPSG/0/25833", (25833, None)),
        ("https://www.opengis.net/def/crs/EPSG/0/25833", (25833, None)),
        ("http://www.opengis.net/gml/srs/epsg.xml#25833", (25833, None)),
        ("  EPSG:25833 \n", (25833, None)),
        ("urn:ogc:def:crs,crs:EPSG::25833,crs:EPSG::7837", (25833, 7837)),
        ("urn:ogc:def:crs,crs:EPSG:6.12:25833,crs:EPSG:6.12:5783", (25833, 5783)),
        (
            "http://www.opengis.net/def/crs-compound?"
            "1=http://www.opengis.net/def/crs/EPSG/0/25833&2=http://www.opengis.net/def/crs/EPSG/0/7837",
            (25833, 7837),
        ),
        ("EPSG:5555", (25832, 5783)),
        ("EPSG:5556", (25833, 5783)),
        ("EPSG:25833+7837", (25833, 7837)),
        ("urn:ogc:def:crs:EPSG::25833+7837", (25833, 7837)),
        ("urn:adv:crs:ETRS89_UTM32*DE_DHHN92_NH", (25832, 5783)),
        ("urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH", (25833, 7837)),
        ("urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH", (25832, 7837)),
        ("urn:adv:crs:ETRS89_UTM33", (25833, None)),
        ("urn:adv:crs:ETRS89_Lat-Lon*DE_DHHN2016_NH", (4258, 7837)),
        ("URN:ADV:CRS:etrs89_utm33*de_dhhn2016_nh", (25833, 7837)),
        ("urn:adv:crs:DE_DHDN_3GK2*DE_DHHN92_NH", (31466, 5783)),
        ("urn:adv:crs:DE_DHDN_3GK3*DE_DHHN92_NH", (31467, 5783)),
        ("urn:adv:crs:DE_DHDN_3GK4*DE_DHHN92_NH", (31468, 5783)),
        ("urn:adv:crs:DE_DHDN_3GK5*DE_DHHN92_NH", (31469, 5783)),
        ("urn:adv:crs:DE_DHDN_3GK4*DE_DHHN85_NOH", (31468, 5784)),
        ("urn:adv:crs:ETRS89_UTM33*DE_SNN76_NH", (25833, 5785)),
        ("urn:ogc:def:crs:OGC:1.3:CRS84", (None, None)),
        ("EPSG:4326", (4326, None)),
        ("EPSG:4979", (4979, None)),
        ("EPSG:4978", (4978, None)),
    ],
)
def test_srs_name_spellings_parse_to_epsg_codes(
    srs_name: str, expected: tuple[int | None, int | None]
) -> None:
    source = parse_srs_name(srs_name)
    assert epsg_codes(source) == expected
    assert source.text == srs_name


def test_crs84_is_longitude_first() -> None:
    source = parse_srs_name("http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    assert source.horizontal == pyproj.CRS("OGC:CRS84")
    assert source.is_geographic and not source.lat_first


@pytest.mark.parametrize(("name", "code"), sorted(ADV_HORIZONTAL.items()))
def test_adv_horizontal_table(name: str, code: int) -> None:
    assert epsg_codes(parse_srs_name(f"urn:adv:crs:{name}")) == (code, None)


@pytest.mark.parametrize(("name", "code"), sorted(ADV_VERTICAL.items()))
def test_adv_vertical_table(name: str, code: int) -> None:
    assert epsg_codes(parse_srs_name(f"urn:adv:crs:ETRS89_UTM33*{name}")) == (25833, code)
    assert pyproj.CRS.from_epsg(code).is_vertical


def test_adv_ellipsoidal_height_makes_the_crs_3d() -> None:
    source = parse_srs_name("urn:adv:crs:ETRS89_UTM33*ETRS89_h")
    assert source.vertical is None
    assert [a.direction for a in source.horizontal.axis_info] == ["east", "north", "up"]
    model = ecef_transformer(source).vertical_model
    assert model.expected_error_m == 0.0 and model.grid is None


@pytest.mark.parametrize(
    "srs_name",
    [
        "#local-CRS-1",
        "local",
        "EPSG:99999",
        "urn:ogc:def:crs:EPSG::nonsense",
        "urn:adv:crs:DE_DHDN_3GK3_BW100",  # state-specific: different false easting
        "urn:adv:crs:ETRS89_UTM33*DE_UNKNOWN_NH",
        "urn:ogc:def:crs,crs:EPSG::25833,foo",
        "http://example.com/crs/25833",
    ],
)
def test_unknown_crs_is_an_error_naming_the_way_out(srs_name: str) -> None:
    with pytest.raises(CRSError) as caught:
        parse_srs_name(srs_name)
    assert str(caught.value) == (
        f"unknown CRS '{srs_name}': pass --crs EPSG:XXXX (e.g. --crs EPSG:25833+7837)"
    )


@pytest.mark.parametrize("srs_name", ["urn:adv:crs:DE_DHHN2016_NH", "EPSG:7837"])
def test_height_system_alone_cannot_place_points(srs_name: str) -> None:
    with pytest.raises(CRSError, match="height system only.*--crs EPSG:25833\\+7837"):
        parse_srs_name(srs_name)


def test_two_horizontal_crss_are_refused() -> None:
    with pytest.raises(CRSError, match="not one horizontal"):
        parse_srs_name("urn:ogc:def:crs,crs:EPSG::25833,crs:EPSG::25832")


def test_empty_srs_name_is_missing() -> None:
    with pytest.raises(CRSError, match="missing CRS.*--crs"):
        parse_srs_name("   ")


def test_crs_option_accepts_wkt_projjson_and_compound_codes() -> None:
    compound = pyproj.CRS("EPSG:25833+7837")
    assert epsg_codes(parse_crs_option("EPSG:25833+7837")) == (25833, 7837)
    assert epsg_codes(parse_crs_option(compound.to_wkt())) == (25833, 7837)
    assert epsg_codes(parse_crs_option(compound.to_json())) == (25833, 7837)
    assert epsg_codes(parse_crs_option(pyproj.CRS(25832).to_wkt("WKT1_GDAL"))) == (25832, None)
    assert epsg_codes(parse_crs_option("urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH")) == (
        25833,
        7837,
    )
    with pytest.raises(CRSError, match="cannot read --crs"):
        parse_crs_option("PROJCS[nonsense")


def test_source_crs_from_pyproj_splits_compound_crs() -> None:
    las_crs = pyproj.CRS.from_wkt(pyproj.CRS("EPSG:25832+5783").to_wkt("WKT1_GDAL"))
    source = source_crs_from_pyproj(las_crs)
    assert epsg_codes(source) == (25832, 5783)
    assert source.label == "ETRS89 / UTM zone 32N + DHHN92 height"
    with pytest.raises(CRSError, match="height system only"):
        source_crs_from_pyproj(pyproj.CRS(7837))


def test_resolve_source_crs_prefers_override_and_refuses_missing() -> None:
    assert epsg_codes(resolve_source_crs("EPSG:25832", "EPSG:25833+7837")) == (25833, 7837)
    assert epsg_codes(resolve_source_crs(pyproj.CRS(5555))) == (25832, 5783)
    with pytest.raises(CRSError, match="^a.las: the file declares no CRS: pass --crs"):
        resolve_source_crs(None, where="a.las")
    with pytest.raises(CRSError, match="^a.gml line 3: unknown CRS '#x'"):
        resolve_source_crs("#x", where="a.gml line 3")


# --- placement -----------------------------------------------------------------------------


def test_kroepeliner_tor_lands_in_rostock() -> None:
    transformer = ecef_transformer(parse_srs_name("EPSG:25833"))
    lon, lat = transformer.to_lonlat(np.array([KROEPELINER_TOR_EN]))[0]
    assert lon == pytest.approx(KROEPELINER_TOR_LON_LAT[0], abs=1e-4)
    assert lat == pytest.approx(KROEPELINER_TOR_LON_LAT[1], abs=1e-4)


def test_dhhn2016_height_gets_the_egm96_undulation_not_the_ballpark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only Debian's grids, as on the project's machines (no GCG2016 that would be preferred).
    monkeypatch.setattr(crs_module, "proj_search_dirs", lambda: [EGM96_GRID.parent])
    source = parse_srs_name("urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH")
    transformer = EcefTransformer(source)
    ecef = transformer.to_ecef(np.array([[*KROEPELINER_TOR_EN, 10.0]]))
    lon, lat, h = (float(v[0]) for v in ecef_to_geodetic(ecef))
    undulation = egm96_undulation(lon, lat)
    assert 38.0 < undulation < 40.0
    assert undulation == pytest.approx(38.274, abs=1e-3)
    assert h == pytest.approx(10.0 + undulation, abs=0.01)
    # PROJ's ballpark vertical transformation would keep h = H = 10 m.
    assert h - 10.0 > 30.0
    assert transformer.vertical_model == VerticalModel(
        "EGM96 geoid (egm96_15.gtx) for DHHN2016 normal heights", 1.0, EGM96_GRID
    )


def test_undeclared_vertical_datum_is_assumed_normal_heights() -> None:
    transformer = ecef_transformer(parse_srs_name("EPSG:25833"))
    model = transformer.vertical_model
    assert "vertical datum not declared; assumed normal heights" in model.name
    assert model.grid == EGM96_GRID
    with_datum = ecef_transformer(parse_srs_name("EPSG:25833+7837"))
    point = np.array([[*KROEPELINER_TOR_EN, 10.0]])
    assert np.allclose(transformer.to_ecef(point), with_datum.to_ecef(point), atol=1e-9)


def test_ellipsoidal_heights_need_no_geoid() -> None:
    for text in ("EPSG:4979", "EPSG:4937", "EPSG:4978", "urn:adv:crs:ETRS89_Lat-Lon-h"):
        model = ecef_transformer(parse_srs_name(text)).vertical_model
        assert model.expected_error_m == 0.0 and model.grid is None, text
    transformer = ecef_transformer(parse_srs_name("EPSG:4979"))
    ecef = transformer.to_ecef(np.array([[54.0884, 12.1292, 48.3]]))
    assert np.allclose(ecef, geodetic_to_ecef(12.1292, 54.0884, 48.3), atol=1e-6)


def test_dhhn92_and_older_systems_carry_their_offset_in_the_error() -> None:
    dhhn92 = ecef_transformer(parse_srs_name("EPSG:25833+5783")).vertical_model
    snn76 = ecef_transformer(parse_srs_name("urn:adv:crs:ETRS89_UTM33*DE_SNN76_NH")).vertical_model
    assert dhhn92.name == "EGM96 geoid (egm96_15.gtx) for DHHN92 normal heights"
    assert dhhn92.expected_error_m == pytest.approx(1.05)
    assert snn76.expected_error_m > dhhn92.expected_error_m


@pytest.mark.parametrize(
    ("text", "point"),
    [
        ("EPSG:25833+7837", (312244.0, 5997168.0, 10.0)),
        ("EPSG:25832+5783", (565834.364, 5934037.951, 12.5)),
        ("EPSG:3068+5783", (25037.6, 21456.15, 35.0)),  # Berlin, easting first
        ("EPSG:31468+5783", (4508556.459, 5995321.542, 10.0)),  # Rostock, Rechtswert first
        ("EPSG:3946", (1842779.109, 5175416.428, 170.0)),  # Lyon, RGF93
        ("EPSG:4326", (54.0884, 12.1292, 10.0)),  # lat/lon in, lat/lon out
        ("EPSG:4979", (54.0884, 12.1292, 48.3)),
        ("EPSG:4978", (3665580.9, 787786.9, 5142560.2)),
    ],
)
def test_round_trip_source_ecef_source(text: str, point: tuple[float, float, float]) -> None:
    transformer = ecef_transformer(parse_srs_name(text))
    rng = np.random.default_rng(7)
    spread = 1e-3 if transformer.source.is_geographic else 100.0
    points = np.array(point) + rng.uniform(-spread, spread, (50, 3)) * [1, 1, 0]
    ecef = transformer.to_ecef(points)
    assert ecef.dtype == np.float64 and ecef.shape == (50, 3)
    back = transformer.from_ecef(ecef)
    if transformer.source.is_geographic:
        # 1 mm is about 1e-8 degrees.
        assert np.abs(back[:, :2] - points[:, :2]).max() < 1e-8
    else:
        assert np.abs(back[:, :2] - points[:, :2]).max() < 1e-3
    assert np.abs(back[:, 2] - points[:, 2]).max() < 1e-3


@pytest.mark.parametrize(
    ("text", "point"),
    [
        ("EPSG:31468+5783", (4508556.459, 5995321.542, 10.0)),
        ("EPSG:3068+5783", (25037.6, 21456.15, 35.0)),
        ("EPSG:25832+5783", (565834.364, 5934037.951, 12.5)),
    ],
)
def test_other_datums_are_transformed_not_ignored(
    text: str, point: tuple[float, float, float]
) -> None:
    transformer = ecef_transformer(parse_srs_name(text))
    lonlat = transformer.to_lonlat(np.array([point]))[0]
    horizontal = parse_srs_name(text).horizontal
    # An independent exact pyproj transformation to ETRS89 agrees to a millimetre (~1e-8°).
    exact = pyproj.Transformer.from_crs(
        horizontal, "EPSG:4258", always_xy=True, allow_ballpark=False
    ).transform(*point[:2])
    assert np.allclose(lonlat, exact, atol=1e-8)
    if "3068" in text or "31468" in text:
        # Ignoring DHDN's datum would be off by over 100 m.
        naive = pyproj.Transformer.from_crs(
            horizontal, horizontal.geodetic_crs, always_xy=True
        ).transform(*point[:2])
        assert np.hypot(*(np.subtract(lonlat, naive) * [60000, 111000])) > 100.0


def test_geographic_source_swaps_lat_lon() -> None:
    transformer = ecef_transformer(parse_srs_name("EPSG:4326"))
    written = np.array([[54.0884, 12.1292, 10.0]])  # as a GML posList writes it
    lon, lat = transformer.to_lonlat(written)[0]
    assert (lon, lat) == pytest.approx((12.1292, 54.0884))
    utm = ecef_transformer(parse_srs_name("EPSG:25833+7837"))
    at_tor = utm.to_ecef(np.array([[*KROEPELINER_TOR_EN, 10.0]]))
    assert np.linalg.norm(transformer.to_ecef(written) - at_tor) < 20.0  # Rostock, not Somalia


def test_las_style_geographic_coordinates_are_longitude_first() -> None:
    source = source_crs_from_pyproj(pyproj.CRS(4326), xy_order=True)
    lon, lat = ecef_transformer(source).to_lonlat(np.array([[12.1292, 54.0884]]))[0]
    assert (lon, lat) == pytest.approx((12.1292, 54.0884))


def test_projected_northing_first_crs_is_read_easting_first() -> None:
    transformer = ecef_transformer(parse_srs_name("EPSG:31468"))
    lon, lat = transformer.to_lonlat(np.array([[4508556.459, 5995321.542]]))[0]
    assert lon == pytest.approx(12.1292, abs=1e-4) and lat == pytest.approx(54.0884, abs=1e-4)


# --- geoid grids ---------------------------------------------------------------------------


def test_user_geoid_grid_is_used(tmp_path: Path) -> None:
    grid = write_gtx(tmp_path / "constant40.gtx", 53.0, 11.0, 0.5, np.full((5, 5), 40.0))
    transformer = EcefTransformer(parse_srs_name("EPSG:25833+7837"), geoid=grid)
    points = np.array([[*KROEPELINER_TOR_EN, 10.0], [312300.0, 5997500.0, -3.25]])
    _, _, h = ecef_to_geodetic(transformer.to_ecef(points))
    assert np.allclose(h, points[:, 2] + 40.0, atol=1e-6)
    model = transformer.vertical_model
    assert model.grid == grid
    assert "constant40.gtx" in model.name and "DHHN2016" in model.name
    assert model.expected_error_m <= 0.05
    assert np.allclose(transformer.from_ecef(transformer.to_ecef(points)), points, atol=1e-6)


def test_points_outside_the_geoid_grid_are_an_error(tmp_path: Path) -> None:
    grid = write_gtx(tmp_path / "rostock.gtx", 53.0, 11.0, 0.5, np.full((5, 5), 40.0))
    transformer = EcefTransformer(parse_srs_name("EPSG:25832+7837"), geoid=grid)
    with pytest.raises(GeoidError, match="EPSG:25832\\+7837.*rostock.gtx.*--geoid"):
        transformer.to_ecef(np.array([[690000.0, 5335000.0, 520.0]]))  # Munich


def test_missing_geoid_grid_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GeoidError, match="not found.*--geoid"):
        EcefTransformer(parse_srs_name("EPSG:25833+7837"), geoid=tmp_path / "nope.gtx")


def test_unreadable_geoid_grid_is_an_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gtx"
    junk.write_bytes(b"not a grid")
    with pytest.raises(GeoidError, match="junk.gtx.*--geoid"):
        EcefTransformer(parse_srs_name("EPSG:25833+7837"), geoid=junk)


def test_geoid_with_ellipsoidal_heights_is_refused(tmp_path: Path) -> None:
    grid = write_gtx(tmp_path / "g.gtx", 53.0, 11.0, 0.5, np.full((5, 5), 40.0))
    with pytest.raises(GeoidError, match="already has ellipsoidal heights.*drop --geoid"):
        EcefTransformer(parse_srs_name("EPSG:4979"), geoid=grid)


def test_height_system_without_grid_is_an_error() -> None:
    with pytest.raises(GeoidError, match="EGM2008 height.*--geoid GRID"):
        EcefTransformer(parse_srs_name("EPSG:25833+3855"))


def test_height_system_without_grid_works_with_user_grid(tmp_path: Path) -> None:
    grid = write_gtx(tmp_path / "egm08_like.gtx", 53.0, 11.0, 0.5, np.full((5, 5), 39.0))
    transformer = EcefTransformer(parse_srs_name("EPSG:25833+3855"), geoid=grid)
    _, _, h = ecef_to_geodetic(transformer.to_ecef(np.array([[*KROEPELINER_TOR_EN, 1.0]])))
    assert h[0] == pytest.approx(40.0, abs=1e-6)


def test_gcg2016_in_proj_search_path_is_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_gtx(tmp_path / "GCG2016.gtx", 53.0, 11.0, 0.5, np.full((5, 5), 40.0))
    monkeypatch.setattr(crs_module, "proj_search_dirs", lambda: [tmp_path])
    assert find_grid(crs_module.GCG2016_GRID_NAMES) == tmp_path / "GCG2016.gtx"
    transformer = EcefTransformer(parse_srs_name("EPSG:25833+7837"))
    model = transformer.vertical_model
    assert model.name == "GCG2016 quasigeoid (GCG2016.gtx) for DHHN2016 normal heights"
    assert model.expected_error_m == pytest.approx(0.02)
    _, _, h = ecef_to_geodetic(transformer.to_ecef(np.array([[*KROEPELINER_TOR_EN, 10.0]])))
    assert h[0] == pytest.approx(50.0, abs=1e-6)


def test_gcg2016_serves_undeclared_heights_only_in_germany(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_gtx(tmp_path / "GCG2016.gtx", 53.0, 11.0, 0.5, np.full((5, 5), 40.0))
    monkeypatch.setattr(crs_module, "proj_search_dirs", lambda: [tmp_path, EGM96_GRID.parent])
    german = EcefTransformer(parse_srs_name("EPSG:25833")).vertical_model
    assert german.name == (
        "GCG2016 quasigeoid (GCG2016.gtx); vertical datum not declared; assumed normal heights"
    )
    french = EcefTransformer(parse_srs_name("EPSG:3946")).vertical_model
    assert french.grid == EGM96_GRID


def test_other_height_systems_use_an_exact_proj_operation_when_its_grid_exists(
    tmp_path: Path,
) -> None:
    ecef_transformer(parse_srs_name("EPSG:25833"))  # PROJ's search path as the code sets it
    search_path = pyproj.datadir.get_data_dir()
    # PROJ knows EGM2008's grid also by its old name egm08_25.gtx.
    write_gtx(tmp_path / "egm08_25.gtx", 53.0, 11.0, 0.5, np.full((5, 5), 39.0))
    pyproj.datadir.append_data_dir(str(tmp_path))
    try:
        transformer = EcefTransformer(parse_srs_name("EPSG:25833+3855"))
        point = np.array([[*KROEPELINER_TOR_EN, 1.0]])
        ecef = transformer.to_ecef(point)
        assert ecef_to_geodetic(ecef)[2][0] == pytest.approx(40.0, abs=1e-6)
        assert np.allclose(transformer.from_ecef(ecef), point, atol=1e-6)
    finally:
        pyproj.datadir.set_data_dir(search_path)
    model = transformer.vertical_model
    assert "EGM2008 height" in model.name and "ballpark" not in model.name
    assert model.expected_error_m >= 1.0  # EPSG states 1 m for EGM2008 via WGS 84


def test_no_geoid_installed_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crs_module, "proj_search_dirs", lambda: [tmp_path])
    with pytest.raises(GeoidError, match="proj-data.*--geoid GRID"):
        EcefTransformer(parse_srs_name("EPSG:25833+7837"))


# --- arrays, caching, errors ---------------------------------------------------------------


def test_out_of_area_points_name_the_crs() -> None:
    transformer = ecef_transformer(parse_srs_name("EPSG:25833"))
    with pytest.raises(CRSError, match="from 'EPSG:25833'.*area of use.*--crs"):
        transformer.to_ecef(np.array([[33312244.0, 5997168.0, 0.0]]))  # easting with zone 33


def test_bad_input_arrays_are_refused() -> None:
    transformer = ecef_transformer(parse_srs_name("EPSG:25833"))
    with pytest.raises(GeometryError, match="\\(n, 3\\)"):
        transformer.to_ecef(np.zeros((4, 2)))
    with pytest.raises(GeometryError, match="non-finite"):
        transformer.to_ecef(np.array([[312244.0, np.nan, 0.0]]))


def test_transformer_is_cached_vectorised_and_picklable() -> None:
    source = parse_srs_name("EPSG:25833+7837")
    transformer = ecef_transformer(source)
    assert ecef_transformer(parse_srs_name("EPSG:25833+7837")) is transformer
    assert pickle.loads(pickle.dumps(transformer)) is transformer
    assert pickle.loads(pickle.dumps(source)) == source
    rng = np.random.default_rng(3)
    points = np.column_stack(
        [
            rng.uniform(310000, 314000, 200_000),
            rng.uniform(5995000, 5999000, 200_000),
            rng.uniform(0, 50, 200_000),
        ]
    )
    ecef = transformer.to_ecef(points)
    assert ecef.shape == points.shape and np.isfinite(ecef).all()
    assert np.abs(transformer.from_ecef(ecef) - points).max() < 1e-6


# --- WGS84 helpers and ENU frames ------------------------------------------------------------

latitudes = st.floats(-90.0, 90.0)
longitudes = st.floats(-180.0, 180.0)
heights = st.floats(-5000.0, 100_000.0)


@given(longitudes, latitudes, heights)
def test_geodetic_ecef_round_trip(lon: float, lat: float, h: float) -> None:
    ecef = geodetic_to_ecef(lon, lat, h)
    lon2, lat2, h2 = ecef_to_geodetic(ecef)
    assert float(lat2) == pytest.approx(lat, abs=1e-9)
    if abs(lat) < 89.9999:
        assert np.cos(np.radians(float(lon2) - lon)) == pytest.approx(1.0, abs=1e-15)
    assert float(h2) == pytest.approx(h, abs=1e-6)


def test_geodetic_helpers_agree_with_pyproj() -> None:
    rng = np.random.default_rng(5)
    lon, lat, h = (
        rng.uniform(-180, 180, 1000),
        rng.uniform(-90, 90, 1000),
        rng.uniform(-1e3, 1e4, 1000),
    )
    x, y, z = pyproj.Transformer.from_crs(4979, 4978, always_xy=True).transform(lon, lat, h)
    ecef = geodetic_to_ecef(lon, lat, h)
    assert np.abs(ecef - np.column_stack([x, y, z])).max() < 1e-6
    lon2, lat2, h2 = ecef_to_geodetic(ecef)
    assert np.abs(lat2 - lat).max() < 1e-10 and np.abs(h2 - h).max() < 1e-6


@given(longitudes, st.floats(-89.0, 89.0), st.floats(-1000.0, 10_000.0))
def test_enu_frame_is_orthonormal_and_up_is_the_ellipsoid_normal(
    lon: float, lat: float, h: float
) -> None:
    origin = geodetic_to_ecef(lon, lat, h)
    to_ecef = enu_to_ecef_matrix(origin)
    rotation = to_ecef[:3, :3]
    assert np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    assert np.allclose(to_ecef[3], [0, 0, 0, 1])
    normal = geodetic_to_ecef(lon, lat, h + 1.0) - origin  # along the ellipsoid normal
    assert np.allclose(rotation[:, 2], normal / np.linalg.norm(normal), atol=1e-9)
    east = geodetic_to_ecef(lon + 1e-6, lat, h) - origin
    assert float(east @ rotation[:, 0]) > 0
    assert np.allclose(to_ecef @ [0, 0, 0, 1], [*origin, 1.0])
    to_enu = ecef_to_enu_matrix(origin)
    assert np.allclose(to_enu @ to_ecef, np.eye(4), atol=1e-6)
    assert np.allclose(to_enu @ [*origin, 1.0], [0, 0, 0, 1], atol=1e-6)


def test_enu_at_kroepeliner_tor() -> None:
    transformer = ecef_transformer(parse_srs_name("EPSG:25833+7837"))
    corner = transformer.to_ecef(np.array([[*KROEPELINER_TOR_EN, 10.0]]))[0]
    to_enu = ecef_to_enu_matrix(corner)
    north = transformer.to_ecef(
        np.array([[KROEPELINER_TOR_EN[0], KROEPELINER_TOR_EN[1] + 100, 10.0]])
    )
    e, n, u, _ = to_enu @ [*north[0], 1.0]
    # UTM grid north is ~2.3° off true north here (meridian convergence, 12.13° vs 15° E).
    assert n == pytest.approx(100.0, abs=0.2) and abs(e) < 5.0 and abs(u) < 0.01
