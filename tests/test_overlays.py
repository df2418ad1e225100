"""Project overlays: the real overlay file, bad files, and the published overlays.geojson."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest

from twin.crs import ecef_to_geodetic
from twin.errors import SceneError
from twin.scene import (
    document_bytes,
    load_overlays,
    load_scene,
    overlay_document,
    scene_transformer,
)
from twin.scene.publish import CLAMP_SEGMENT_LENGTH

ROOT = Path(__file__).resolve().parent.parent
SCENES = ROOT / "scenes"
PROJECTS = SCENES / "overlays" / "projekte.geojson"
PROPERTY_KEYS = {
    "name",
    "name_en",
    "kind",
    "status",
    "start",
    "end",
    "cost_eur",
    "description_de",
    "description_en",
    "source",
    "height_mode",
}
TO_GRID = pyproj.Transformer.from_crs(4258, 25833, always_xy=True)
TO_LONLAT = pyproj.Transformer.from_crs(25833, 4258, always_xy=True)


@pytest.fixture(scope="module")
def vertical():
    return scene_transformer()


def terrain(east: np.ndarray, north: np.ndarray) -> np.ndarray:
    """A tilted plane of DHHN2016 heights: 2 m at E 312000 N 5997000, rising east and north."""
    return 2.0 + 0.004 * (east - 312000.0) + 0.002 * (north - 5997000.0)


DEFAULT_LINE = {"type": "LineString", "coordinates": [[12.1330, 54.0925], [12.1340, 54.0926]]}


def feature(
    feature_id: Any = "steg", geometry: Any = DEFAULT_LINE, **properties: Any
) -> dict[str, Any]:
    base = {
        "name": "Steg",
        "name_en": "Jetty",
        "kind": "quay",
        "status": "planned",
        "start": 2026,
        "end": "2027-09",
        "cost_eur": 1.5e6,
        "description_de": "Ein Steg.",
        "description_en": "A jetty.",
        "source": "https://rathaus.rostock.de/",
        "height_mode": "clamp",
    }
    base.update(properties)
    return {
        "type": "Feature",
        "id": feature_id,
        "properties": base,
        "geometry": geometry,
    }


def collection(*features: dict[str, Any], crs: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"type": "FeatureCollection", "features": list(features)}
    if crs is not None:
        document["crs"] = {"type": "name", "properties": {"name": crs}}
    return document


def write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# --- the real overlay file ------------------------------------------------------------------


def test_real_overlay_file_has_the_five_projects() -> None:
    overlays = load_overlays(PROJECTS)
    assert overlays.crs == "lon/lat"
    summary = {
        f.id: (f.geometry.geom_type, f.properties.kind, f.properties.status)
        for f in overlays.features
    }
    assert summary == {
        "warnowbruecke": ("LineString", "bridge", "planned"),
        "warnowquartier": ("Polygon", "district", "planned"),
        "stadthafen-kaimauer": ("LineString", "quay", "under construction"),
        "warnow-rundweg": ("LineString", "path", "planned"),
        "primelberg-infotafel": ("Point", "info-point", "done"),
    }
    bridge = overlays.get("warnowbruecke")
    assert bridge is not None
    assert (bridge.properties.end, bridge.properties.cost_eur) == (2030, 62_848_820)
    # The alignment of the sample model: 541.16 m from Schnickmannstraße (docs/scenes.md)
    # to the Gehlsdorf bank at Fährberg...
    start, end = bridge.geometry.coords[0], bridge.geometry.coords[-1]
    assert math.dist(start, (312543, 5997613)) < 0.2
    assert math.dist(end, (312765.7, 5998096.5)) < 0.2
    assert bridge.geometry.length == pytest.approx(541.16, abs=1.0)
    # ...in an S: it leaves the straight line to both sides.
    chord = np.subtract(end, start) / math.dist(start, end)
    offsets = [
        float(chord[0] * (p[1] - start[1]) - chord[1] * (p[0] - start[0]))
        for p in bridge.geometry.coords
    ]
    assert min(offsets) < -15.0 and max(offsets) > 15.0
    quay = overlays.get("stadthafen-kaimauer")
    assert quay is not None and quay.geometry.length == pytest.approx(450.0, abs=10.0)
    assert (quay.properties.start, quay.properties.end, quay.properties.cost_eur) == (
        2025,
        2026,
        22_000_000,
    )
    board = overlays.get("primelberg-infotafel")
    assert board is not None
    assert math.dist(board.geometry.coords[0], (313656, 5998403)) < 0.2
    assert board.properties.end == "2018-06-12"
    for item in overlays.features:
        assert item.properties.source.startswith("https://")
        assert item.properties.height_mode == "clamp"
        assert "ungefähr" in item.properties.description_de
        assert "approximate" in item.properties.description_en


def test_real_overlay_file_is_plain_rfc7946() -> None:
    document = json.loads(PROJECTS.read_text(encoding="utf-8"))
    assert "crs" not in document
    for item in document["features"]:
        assert set(item["properties"]) == PROPERTY_KEYS
        assert isinstance(item["id"], str)


# --- accepted variants ----------------------------------------------------------------------


def test_epsg25833_file_gives_the_same_geometry(tmp_path: Path) -> None:
    east, north = TO_GRID.transform([12.1330, 12.1340], [54.0925, 54.0926])
    grid_line = {"type": "LineString", "coordinates": [[east[0], north[0]], [east[1], north[1]]]}
    utm = load_overlays(
        write(
            tmp_path / "utm.geojson",
            collection(feature(geometry=grid_line), crs="urn:ogc:def:crs:EPSG::25833"),
        )
    )
    lonlat = load_overlays(write(tmp_path / "ll.geojson", collection(feature())))
    assert utm.crs == "EPSG:25833"
    assert np.allclose(
        np.asarray(utm.features[0].geometry.coords),
        np.asarray(lonlat.features[0].geometry.coords),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "name", ["urn:ogc:def:crs:OGC:1.3:CRS84", "EPSG:4326", "urn:ogc:def:crs:EPSG::4326"]
)
def test_lonlat_crs_names_are_accepted(tmp_path: Path, name: str) -> None:
    overlays = load_overlays(write(tmp_path / "a.geojson", collection(feature(), crs=name)))
    assert overlays.crs == "lon/lat"


# --- bad overlay files ----------------------------------------------------------------------


def bowtie() -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [
            [
                [12.130, 54.092],
                [12.132, 54.094],
                [12.132, 54.092],
                [12.130, 54.094],
                [12.130, 54.092],
            ]
        ],
    }


BAD_OVERLAYS: list[tuple[Any, str, str]] = [
    # (document, field, part of the message)
    (
        collection(feature(status="bult")),
        "features[0] (id 'steg').properties.status",
        "'bult' is not allowed: use 'planned', 'under construction' or 'done'",
    ),
    (
        collection(feature(kind="tower")),
        "features[0] (id 'steg').properties.kind",
        "'tower' is not allowed: use 'bridge', 'district', 'quay', 'path' or 'info-point'",
    ),
    (
        collection(feature(satus="planned")),
        "features[0] (id 'steg').properties.satus",
        "unknown field satus: remove it or fix its spelling (allowed here: name, name_en, kind",
    ),
    (
        collection(feature(description_en=None)),
        "features[0] (id 'steg').properties.description_en",
        "None is not a text",
    ),
    (
        collection(feature(end="Herbst 2026")),
        "features[0] (id 'steg').properties.end",
        "'Herbst 2026' is not a date: write a year (2026), a month (2026-09) or a day",
    ),
    (
        collection(feature(start="2026-02-30")),
        "features[0] (id 'steg').properties.start",
        "'2026-02-30' is not a valid date",
    ),
    (
        collection(feature(cost_eur=-5)),
        "features[0] (id 'steg').properties.cost_eur",
        "-5 is out of range: it must be at least 0",
    ),
    (
        collection(feature(source="rathaus.rostock.de")),
        "features[0] (id 'steg').properties.source",
        "'rathaus.rostock.de' is not a web address: give the source as https://…",
    ),
    (
        collection(feature(height_mode="floating")),
        "features[0] (id 'steg').properties.height_mode",
        "use 'clamp' or 'absolute'",
    ),
    (
        collection(feature(), feature()),
        "features[1].id",
        "'steg' is also the id of features[0]: ids must be unique",
    ),
    (collection(feature(feature_id=None)), "features[0].id", "None is not a valid feature id"),
    (
        collection(feature(feature_id="Steg 1")),
        "features[0].id",
        "'Steg 1' is not a valid feature id",
    ),
    (
        collection(feature(geometry=bowtie())),
        "features[0] (id 'steg').geometry",
        "invalid Polygon (Self-intersection[12.131 54.093])",
    ),
    (
        collection(
            feature(
                geometry={
                    "type": "LineString",
                    "coordinates": [[54.0925, 12.1330], [54.0926, 12.1340]],
                }
            )
        ),
        "features[0] (id 'steg').geometry.coordinates[0]",
        "(54.0925, 12.133) looks like latitude, longitude: GeoJSON writes longitude first",
    ),
    (
        collection(feature(geometry={"type": "Point", "coordinates": [212.13, 54.09]})),
        "features[0] (id 'steg').geometry.coordinates",
        "(212.13, 54.09) is out of range: longitude must lie in -180…180",
    ),
    (
        collection(feature(geometry={"type": "Point", "coordinates": [312543.0, 5997613.0]})),
        "features[0] (id 'steg').geometry.coordinates",
        "(312543, 5997613) is out of range: these look like EPSG:25833 metres: declare them with "
        '"crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::25833"}}',
    ),
    (
        collection(
            feature(geometry={"type": "Point", "coordinates": [12.13, 54.09]}), crs="EPSG:25833"
        ),
        "features[0] (id 'steg').geometry.coordinates",
        "(12.13, 54.09) looks like longitude/latitude, but the file declares EPSG:25833",
    ),
    (
        collection(
            feature(geometry={"type": "Point", "coordinates": [5997613.0, 312543.0]}),
            crs="EPSG:25833",
        ),
        "features[0] (id 'steg').geometry.coordinates",
        "(5997613, 312543) looks like (northing, easting)",
    ),
    (
        collection(feature(), crs="EPSG:3857"),
        "crs.properties.name",
        "'EPSG:3857' is not accepted: overlays are longitude/latitude (RFC 7946, no crs member) "
        "or EPSG:25833",
    ),
    (collection(feature(), crs="EPSG:4258"), "crs.properties.name", "is not accepted"),
    (collection(feature(), crs="Gauß-Krüger"), "crs.properties.name", "unknown CRS 'Gauß-Krüger'"),
    ({"type": "FeatureCollection", "crs": "EPSG:25833", "features": []}, "crs", "not a named CRS"),
    (
        collection(
            feature(
                geometry={
                    "type": "Polygon",
                    "coordinates": [
                        [[12.13, 54.09], [12.14, 54.09], [12.14, 54.10], [12.13, 54.10]]
                    ],
                }
            )
        ),
        "features[0] (id 'steg').geometry.coordinates[0]",
        "the ring is not closed: repeat the first position at the end",
    ),
    (
        collection(feature(geometry={"type": "LineString", "coordinates": [[12.13, 54.09]]})),
        "features[0] (id 'steg').geometry.coordinates",
        "a LineString needs at least 2 positions",
    ),
    (
        collection(
            feature(
                geometry={"type": "LineString", "coordinates": [[12.13, 54.09], [12.13, 54.09]]}
            )
        ),
        "features[0] (id 'steg').geometry",
        "the LineString has zero length",
    ),
    (
        collection(
            feature(
                geometry={"type": "LineString", "coordinates": [[12.13, 54.09], [12.14, "54.09"]]}
            )
        ),
        "features[0] (id 'steg').geometry.coordinates[1]",
        "[12.14, '54.09'] is not a position",
    ),
    (
        collection(feature(geometry={"type": "GeometryCollection", "geometries": []})),
        "features[0] (id 'steg').geometry.type",
        "'GeometryCollection' is not supported",
    ),
    (
        collection(feature(geometry=None)),
        "features[0] (id 'steg').geometry",
        "missing: every overlay feature needs a geometry",
    ),
    (
        collection(feature(height_mode="absolute")),
        "features[0] (id 'steg').geometry.coordinates[0]",
        "height_mode is 'absolute' but this position has no height: add the DHHN2016 height",
    ),
    (
        collection(
            feature(
                geometry={
                    "type": "LineString",
                    "coordinates": [[12.133, 54.0925, 4.0], [12.134, 54.0926]],
                }
            )
        ),
        "features[0] (id 'steg').geometry.coordinates[0]",
        "height_mode is 'clamp' (on the terrain) but this position carries a height",
    ),
    (feature(), "type", 'a single Feature: wrap it as {"type": "FeatureCollection"'),
    ({"type": "FeatureCollection"}, "features", "missing or not a list"),
    (
        collection({"type": "Feature", "id": "x", "geometry": None}),
        "features[0] (id 'x').properties",
        "missing or not an object",
    ),
]


@pytest.mark.parametrize(
    ("document", "field", "message"),
    BAD_OVERLAYS,
    ids=[f"{i}-{case[1]}" for i, case in enumerate(BAD_OVERLAYS)],
)
def test_bad_overlay_file_gives_one_line_with_file_and_field(
    tmp_path: Path, document: Any, field: str, message: str
) -> None:
    path = write(tmp_path / "projekte.geojson", document)
    with pytest.raises(SceneError) as caught:
        load_overlays(path)
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(f"{path}: {field}: "), line
    assert message in line, line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"type": "FeatureCollection",\n "features": [\n  {"type": "Feature",}\n ]}\n',
            "line 3, column 22: not valid JSON (Expecting property name enclosed in double "
            "quotes): fix the syntax there",
        ),
        ('{"type": "FeatureCollection", "features": [}', "line 1, column 44: not valid JSON"),
        (
            '{"type": "FeatureCollection", "features": [], "features": []}',
            "the key 'features' appears twice in one JSON object: keep one",
        ),
        (
            '{"type": "FeatureCollection", "features": [{"type": "Feature", "id": "a", '
            '"geometry": {"type": "Point", "coordinates": [NaN, 54.0]}, "properties": {}}]}',
            "NaN is not a JSON number",
        ),
    ],
)
def test_broken_json_names_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "kaputt.geojson"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SceneError) as caught:
        load_overlays(path)
    assert str(caught.value).startswith(f"{path}: {message}"), str(caught.value)


def test_missing_and_non_utf8_overlay_files(tmp_path: Path) -> None:
    with pytest.raises(SceneError, match="fehlt.geojson: overlay file not found"):
        load_overlays(tmp_path / "fehlt.geojson")
    path = tmp_path / "latin1.geojson"
    path.write_bytes('{"name": "Warnowbrücke"}'.encode("latin-1"))
    with pytest.raises(SceneError, match=r"latin1\.geojson: byte 18: not UTF-8 text"):
        load_overlays(path)


def test_scene_with_a_broken_overlay_file_names_the_overlay_file(tmp_path: Path) -> None:
    folder = tmp_path / "scenes"
    (folder / "overlays").mkdir(parents=True)
    shutil.copy(SCENES / "warnowbruecke.toml", folder / "warnowbruecke.toml")
    document = json.loads(PROJECTS.read_text(encoding="utf-8"))
    document["features"][2]["properties"]["status"] = "im Bau"
    write(folder / "overlays" / "projekte.geojson", document)
    with pytest.raises(SceneError) as caught:
        load_scene(folder / "warnowbruecke.toml")
    assert str(caught.value) == (
        f"{folder / 'overlays' / 'projekte.geojson'}: features[2] (id 'stadthafen-kaimauer')"
        ".properties.status: 'im Bau' is not allowed: use 'planned', 'under construction' or "
        "'done'"
    )


# --- overlays.geojson -----------------------------------------------------------------------


def published_positions(geometry: dict[str, Any]) -> np.ndarray:
    return np.asarray(
        np.array(geometry["coordinates"], dtype=object).tolist()
        if geometry["type"] == "Point"
        else [p for p in _flatten(geometry["coordinates"])],
        dtype=np.float64,
    ).reshape(-1, 3)


def lines(geometry: dict[str, Any]) -> list[np.ndarray]:
    """The position lists of a published line or polygon (each part, each ring)."""
    depth = {"Point": 0, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}[
        geometry["type"]
    ]
    parts = [geometry["coordinates"]]
    for _ in range(depth - 1):
        parts = [item for part in parts for item in part]
    return [np.asarray(part, dtype=np.float64) for part in parts] if depth else []


def _flatten(value: Any) -> list[list[float]]:
    if value and isinstance(value[0], int | float):
        return [value]
    return [p for part in value for p in _flatten(part)]


def ellipsoidal(vertical, east: np.ndarray, north: np.ndarray, height: np.ndarray) -> np.ndarray:
    _, _, h = ecef_to_geodetic(vertical.to_ecef(np.column_stack([east, north, height])))
    return h


def test_overlay_document_clamps_to_the_terrain(vertical) -> None:
    scene = load_scene(SCENES / "warnowbruecke.toml")
    document = overlay_document(scene, scene.overlay_features, terrain, vertical)
    assert document["type"] == "FeatureCollection"
    features = {f["id"]: f for f in document["features"]}
    assert list(features) == ["stadthafen-kaimauer", "warnow-rundweg", "warnowbruecke"]
    west, south, east, north = scene.area_polygon.bounds
    for item in document["features"]:
        assert set(item) == {"type", "id", "geometry", "properties"}
        assert set(item["properties"]) == PROPERTY_KEYS
        positions = published_positions(item["geometry"])
        grid_east, grid_north = TO_GRID.transform(positions[:, 0], positions[:, 1])
        grid_east, grid_north = np.asarray(grid_east), np.asarray(grid_north)
        # Inside the area (clamped features are cut to it)...
        assert (grid_east > west - 0.02).all() and (grid_east < east + 0.02).all()
        assert (grid_north > south - 0.02).all() and (grid_north < north + 0.02).all()
        # ...on the terrain: the third value is the ellipsoidal height of the terrain there.
        expected = ellipsoidal(vertical, grid_east, grid_north, terrain(grid_east, grid_north))
        assert np.abs(positions[:, 2] - expected).max() <= 0.0051 + 1e-9
        # ...and densified so that lines follow the terrain between their corners.
        for line in lines(item["geometry"]):
            line_east, line_north = TO_GRID.transform(line[:, 0], line[:, 1])
            steps = np.hypot(np.diff(line_east), np.diff(line_north))
            assert steps.max() <= CLAMP_SEGMENT_LENGTH + 0.05
    # The 5.6 km Rundweg is cut to the area: parts along both banks.
    rundweg = features["warnow-rundweg"]["geometry"]
    assert rundweg["type"] == "MultiLineString" and len(rundweg["coordinates"]) == 2
    # EGM96 at Rostock: 38.3 m between DHHN2016 and the ellipsoid.
    bridge = published_positions(features["warnowbruecke"]["geometry"])
    assert bridge[0, 2] == pytest.approx(
        float(terrain(np.array([312543.0]), np.array([5997613.0]))[0]) + 38.3, abs=0.1
    )
    assert len(bridge) >= 615 / CLAMP_SEGMENT_LENGTH


def test_overlay_document_winds_polygons_counter_clockwise(vertical) -> None:
    scene = load_scene(SCENES / "gehlsdorf.toml")
    document = overlay_document(scene, scene.overlay_features, terrain, vertical)
    quarter = next(f for f in document["features"] if f["id"] == "warnowquartier")
    ring = np.asarray(quarter["geometry"]["coordinates"][0])[:, :2]
    signed_area = 0.5 * np.sum(ring[:-1, 0] * ring[1:, 1] - ring[1:, 0] * ring[:-1, 1])
    assert signed_area > 0.0
    board = next(f for f in document["features"] if f["id"] == "primelberg-infotafel")
    assert board["geometry"]["type"] == "Point"
    lon, lat, h = board["geometry"]["coordinates"]
    assert (lon, lat) == pytest.approx(TO_LONLAT.transform(313656, 5998403), abs=2e-6)
    assert h == pytest.approx(
        float(terrain(np.array([313656.0]), np.array([5998403.0]))[0]) + 38.3, abs=0.1
    )


SMALL_SCENE = """
id = "deck"
title = { de = "Deck", en = "Deck" }
description = { de = "Ein Deck.", en = "A deck." }
attribution = ["Test"]
[area]
polygon = [[312250, 5997350], [313050, 5997350], [313050, 5998450], [312250, 5998450]]
[layers.buildings]
kind = "citygml"
sources = ["LoD2_33_*_2_MV.gml"]
[epochs.heute]
title = { de = "Heute", en = "Today" }
[overlays]
source = "overlays/deck.geojson"
[tour]
title = { de = "Deck", en = "Deck" }
[[tour.stops]]
id = "deck"
title = { de = "Deck", en = "Deck" }
narration = { de = "Ein Deck. Hoch.", en = "A deck. High." }
dwell = 10
highlight = ["deck"]
camera = { look_at = [312650, 5997900, 10.0], distance = 300, heading = 0, pitch = -30 }
"""


def test_absolute_features_keep_their_heights(tmp_path: Path, vertical) -> None:
    (tmp_path / "overlays").mkdir()
    (tmp_path / "deck.toml").write_text(SMALL_SCENE, encoding="utf-8")
    deck = {
        "type": "LineString",
        "coordinates": [[312600.0, 5997800.0, 9.5], [312700.0, 5998000.0, 10.5]],
    }
    write(
        tmp_path / "overlays" / "deck.geojson",
        collection(
            feature("deck", geometry=deck, height_mode="absolute", kind="bridge"),
            crs="urn:ogc:def:crs:EPSG::25833",
        ),
    )
    scene = load_scene(tmp_path / "deck.toml")
    assert [f.id for f in scene.overlay_features] == ["deck"]

    def no_terrain(east: np.ndarray, north: np.ndarray) -> np.ndarray:
        raise AssertionError("absolute features do not sample the terrain")

    document = overlay_document(scene, scene.overlay_features, no_terrain, vertical)
    positions = published_positions(document["features"][0]["geometry"])
    assert len(positions) == 2  # absolute features are published as drawn
    expected = ellipsoidal(
        vertical,
        np.array([312600.0, 312700.0]),
        np.array([5997800.0, 5998000.0]),
        np.array([9.5, 10.5]),
    )
    assert positions[:, 2] == pytest.approx(expected, abs=0.0051)
    assert positions[0, 2] == pytest.approx(9.5 + 38.3, abs=0.1)
    # A scene without terrain may still publish absolute features.
    assert overlay_document(scene, scene.overlay_features, None, vertical) == document


def test_terrain_gaps_and_missing_terrain_are_errors(vertical) -> None:
    scene = load_scene(SCENES / "warnowbruecke.toml")

    def holes(east: np.ndarray, north: np.ndarray) -> np.ndarray:
        return np.where(north > 5998000.0, np.nan, 2.0)

    with pytest.raises(
        SceneError,
        match=r"warnowbruecke\.toml: overlays \(feature "
        r"'warnow-rundweg'\): no terrain height at \(31\d{4}(\.\d+)?, "
        r"599\d{4}(\.\d+)?\): the terrain grid must cover the scene area",
    ):
        overlay_document(scene, scene.overlay_features, holes, vertical)
    with pytest.raises(
        SceneError, match="is clamped to the terrain but the scene has no terrain layer"
    ):
        overlay_document(scene, scene.overlay_features, None, vertical)


def test_overlay_document_is_deterministic(vertical) -> None:
    scene = load_scene(SCENES / "rostocker-oval.toml")
    first = document_bytes(overlay_document(scene, scene.overlay_features, terrain, vertical))
    again = load_scene(SCENES / "rostocker-oval.toml")
    reordered = list(reversed(again.overlay_features))
    second = document_bytes(overlay_document(again, reordered, terrain, scene_transformer()))
    assert first == second
    parsed = json.loads(first)
    assert [f["id"] for f in parsed["features"]] == [
        "primelberg-infotafel",
        "stadthafen-kaimauer",
        "warnow-rundweg",
        "warnowbruecke",
        "warnowquartier",
    ]
    # Rounded as promised: 7 decimals for degrees, 2 for metres.
    for item in parsed["features"]:
        for lon, lat, h in published_positions(item["geometry"]):
            assert round(lon, 7) == lon and round(lat, 7) == lat and round(h, 2) == h
    assert copy.deepcopy(parsed) == json.loads(first)


def test_scene_without_a_feature_list_takes_every_feature_in_its_area(tmp_path: Path) -> None:
    folder = tmp_path / "scenes"
    shutil.copytree(SCENES / "overlays", folder / "overlays")
    text = (
        (SCENES / "warnowbruecke.toml")
        .read_text(encoding="utf-8")
        .replace('features = ["warnowbruecke", "stadthafen-kaimauer", "warnow-rundweg"]\n', "")
    )
    (folder / "warnowbruecke.toml").write_text(text, encoding="utf-8")
    scene = load_scene(folder / "warnowbruecke.toml")
    # The quarter reaches into the area's north-east corner; the Primelberg lies outside.
    assert [f.id for f in scene.overlay_features] == [
        "stadthafen-kaimauer",
        "warnow-rundweg",
        "warnowbruecke",
        "warnowquartier",
    ]
