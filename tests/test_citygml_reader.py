"""The streaming CityGML reader on real sample files, generated AdV-style files and bad inputs."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from twin.errors import FormatError, GeometryError, InputError, UnsafeInputError
from twin.model.city import SURFACE_KINDS, CityObject
from twin.readers.citygml import CityGMLReader, plan_shards, read_citygml

SHARED = Path(__file__).resolve().parents[2] / "shared"
CITYGML = SHARED / "data" / "citygml"
FZK = CITYGML / "ogc-fzk-haus"
POTSDAM = CITYGML / "potsdam-lod1" / "Potsdam_LoD1.gml"
GEN_MV_LOD2 = SHARED / "tools" / "gen-mv-lod2"
ALL_SAMPLES = sorted(CITYGML.rglob("*.gml"))

NS = {
    "core1": "http://www.opengis.net/citygml/1.0",
    "bldg1": "http://www.opengis.net/citygml/building/1.0",
    "gen1": "http://www.opengis.net/citygml/generics/1.0",
    "gml": "http://www.opengis.net/gml",
    "xAL": "urn:oasis:names:tc:ciq:xsdschema:xAL:2.0",
}


def read_all(path: Path, **options: bool) -> tuple[CityGMLReader, list[CityObject]]:
    reader = CityGMLReader(path, **options)
    return reader, list(reader)


# --- tiny hand-written CityGML 2.0 documents ------------------------------------------------

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0"'
    ' xmlns:bldg="http://www.opengis.net/citygml/building/2.0"'
    ' xmlns:gen="http://www.opengis.net/citygml/generics/2.0"'
    ' xmlns:app="http://www.opengis.net/citygml/appearance/2.0"'
    ' xmlns:gml="http://www.opengis.net/gml" xmlns:xlink="http://www.w3.org/1999/xlink">\n'
    '<gml:boundedBy><gml:Envelope srsName="EPSG:25833" srsDimension="3">'
    "<gml:lowerCorner>0 0 0</gml:lowerCorner><gml:upperCorner>10 10 10</gml:upperCorner>"
    "</gml:Envelope></gml:boundedBy>\n"
)
SQUARE = [(0, 0, 0), (4, 0, 0), (4, 4, 0), (0, 4, 0)]


def pos_list(points, dim: int = 3) -> str:
    closed = list(points) + [points[0]]
    return " ".join(" ".join(str(c) for c in p[:dim]) for p in closed)


def polygon(pid: str, points=SQUARE, holes=(), dim: int = 3) -> str:
    rings = f"<gml:exterior><gml:LinearRing><gml:posList>{pos_list(points, dim)}</gml:posList>"
    rings += "</gml:LinearRing></gml:exterior>"
    for hole in holes:
        rings += f"<gml:interior><gml:LinearRing><gml:posList>{pos_list(hole, dim)}"
        rings += "</gml:posList></gml:LinearRing></gml:interior>"
    return f'<gml:Polygon gml:id="{pid}">{rings}</gml:Polygon>'


def multi_surface(*members: str, attrs: str = "") -> str:
    inner = "".join(f"<gml:surfaceMember>{m}</gml:surfaceMember>" for m in members)
    return f"<gml:MultiSurface{attrs}>{inner}</gml:MultiSurface>"


def bounded(kind: str, lod: int, *members: str) -> str:
    return (f"<bldg:boundedBy><bldg:{kind}><bldg:lod{lod}MultiSurface>{multi_surface(*members)}"
            f"</bldg:lod{lod}MultiSurface></bldg:{kind}></bldg:boundedBy>")


def building(gml_id: str, *body: str) -> str:
    return (f'<core:cityObjectMember><bldg:Building gml:id="{gml_id}">{"".join(body)}'
            "</bldg:Building></core:cityObjectMember>\n")


def write(tmp_path: Path, *members: str, tail: str = "", name: str = "t.gml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + "".join(members) + tail + "</core:CityModel>\n", encoding="utf-8")
    return path


def one_object(path: Path, **options: bool) -> tuple[CityGMLReader, CityObject]:
    reader, objects = read_all(path, **options)
    assert len(objects) == 1
    return reader, objects[0]


# --- every sample file ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_SAMPLES, ids=lambda p: str(p.relative_to(CITYGML)))
def test_every_sample_reads_with_plausible_geometry(path):
    reader, objects = read_all(path)
    assert objects, path
    assert reader.header.version in ("2.0", "3.0") or path == POTSDAM
    assert sum(reader.report.objects.values()) == len(objects)
    assert sum(reader.report.lods.values()) == len(objects)
    assert reader.report.surfaces == sum(len(o.surfaces) for o in objects)
    assert not reader.report.skipped_objects
    assert reader.report.unresolved_xlinks == 0
    for city_object in objects:
        assert 0 <= city_object.lod <= 4 and city_object.surfaces
        assert city_object.line is not None and city_object.line > 1
        for surface in city_object.surfaces:
            assert surface.kind in SURFACE_KINDS
            for ring in (surface.exterior, *surface.interiors):
                assert ring.dtype == np.float64 and ring.ndim == 2 and ring.shape[1] == 3
                assert len(ring) >= 3 and np.isfinite(ring).all()
                assert not np.array_equal(ring[0], ring[-1])  # closing point dropped


def test_read_citygml_is_the_reader():
    reader = read_citygml(POTSDAM)
    assert isinstance(reader, CityGMLReader)
    assert reader.header.version == "1.0"


# --- CityGML 1.0: Potsdam LoD1 --------------------------------------------------------------


def test_potsdam_lod1_buildings_crs_coordinates_and_attributes():
    reader = CityGMLReader(POTSDAM)
    srs = "urn:ogc:def:crs,crs:EPSG:6.12:25833,crs:EPSG:6.12:5783"
    # The header is there before iteration (no root envelope: the first srsName met).
    assert reader.header.version == "1.0"
    assert reader.header.srs_name == srs and reader.header.envelope is None
    report = reader.report
    objects = list(reader)
    assert len(objects) == 97
    assert reader.report is report  # filled in place while iterating
    assert report.objects == {"Building": 97} and report.lods == {1: 97}
    assert reader.report.surfaces == 1547 and reader.report.degenerate_rings == 0
    first = objects[0]
    assert (first.gml_id, first.cls, first.lod, first.line) == (
        "c575fe13-dc5d-4b54-95bc-c81327", "Building", 1, 6)
    assert first.srs_name == srs and first.srs_dimension == 3
    assert len(first.surfaces) == 6 and {s.kind for s in first.surfaces} == {"other"}
    # Exactly the numbers of the first gml:posList in the file, closing point dropped.
    np.testing.assert_array_equal(first.surfaces[0].exterior, [
        [367186.40808105, 5808056.27807617, 41.98],
        [367174.18707275, 5808057.63110352, 41.98],
        [367175.31811523, 5808067.90808106, 41.98],
        [367187.54907227, 5808066.64508057, 41.98],
    ])
    assert first.surfaces[0].gml_id == "UUID_9536bb3d-120c-4e75-92fd-db9c5417c87b"
    assert first.surfaces[0].line == 65
    attributes = first.attributes
    assert attributes["function"] == "Gruppenhaus"
    assert attributes["measuredHeight"] == 56890.0
    assert attributes["storeysAboveGround"] == 0
    assert attributes["creationDate"] == "2011-06-08"
    assert attributes["name"] == "12054000006120007     01"
    assert attributes["address"] == "Tieckstraße, 53115 Potsdam"
    # Generic attributes keep their declared types.
    assert attributes["DFORM"] == 2000.0 and isinstance(attributes["DFORM"], float)
    assert attributes["HSOURCE"] == 1 and isinstance(attributes["HSOURCE"], int)
    assert attributes["DFIHW"] == "5808061210"
    # Two bldg:function elements are kept together, as written.
    assert objects[1].attributes["function"] == "Wohnhaus; (allgemein)"
    # A second pass reads the file again and counts afresh.
    assert len(list(reader)) == 97 and report.objects == {"Building": 97}


# --- CityGML 3.0: citygml4j LoD2 buildings --------------------------------------------------


def test_citygml4j_v3_hundred_lod2_buildings_each_polygon_once():
    reader, objects = read_all(CITYGML / "citygml4j" / "lod2_buildings_v3.gml")
    assert reader.header.version == "3.0"
    assert reader.header.srs_name == "urn:ogc:def:crs,crs:EPSG:6.12:3068,crs:EPSG:6.12:5783"
    assert reader.header.envelope == ((0.0, 0.0, 0.0), (100.0, 100.0, 10.0))
    assert len(objects) == 100 and reader.report.lods == {2: 100}
    for city_object in objects:
        # lod2Solid references the 7 boundary polygons: each appears once, with its kind.
        assert Counter(s.kind for s in city_object.surfaces) == {"wall": 4, "roof": 2,
                                                                 "ground": 1}
        ids = [s.gml_id for s in city_object.surfaces]
        assert len(set(ids)) == 7 and None not in ids
    first = objects[0].attributes
    assert first["name"] == "Testcase-0-0_LoD2"
    assert first["class"] == "1100" and first["roofType"] == "1030"
    assert first["storeysAboveGround"] == 5 and first["storeysBelowGround"] == 0
    assert first["measuredHeight"] == 11.0  # con:height with status "measured"
    assert first["dateOfConstruction"] == "1929-01-01"
    ground = next(s for s in objects[0].surfaces if s.kind == "ground")
    np.testing.assert_array_equal(ground.exterior, [[6, 0, 0], [0, 0, 0], [0, 8, 0], [6, 8, 0]])


def test_citygml3_generic_attributes_and_xal3_address():
    path = CITYGML / "ogc-examples" / "Building_CityGML3.0_LOD2_with_several_attributes.gml"
    _, city_object = one_object(path)
    attributes = city_object.attributes
    assert attributes["StandLK"] == "2014-07-28"
    assert attributes["Gemeindeschluessel"] == "09175128"  # a code: leading zero kept
    assert attributes["function"] == "31001_9998" and attributes["roofType"] == "3100"
    assert attributes["address"] == "Am Hang 15, 85665 Moosach"
    assert city_object.srs_name == "urn:adv:crs:DE_DHDN_3GK4*DE_DHHN92_NH"


# --- FZK-Haus at every LoD, CityGML 2.0 and 3.0 ---------------------------------------------

FZK_CASES = [
    # (file, building lod, surfaces, converted LoD3/4 objects: building + relief)
    ("Building_LOD0-EPSG25832.gml", 0, 1, 0),
    ("Building_LOD1-EPSG25832.gml", 1, 6, 0),
    ("Building_LOD2-EPSG25832.gml", 2, 7, 0),
    ("Building_LOD3-EPSG25832.gml", 3, None, 2),
]


@pytest.mark.parametrize("version", ["v2", "v3"])
@pytest.mark.parametrize(("name", "lod", "surfaces", "converted"), FZK_CASES)
def test_fzk_haus_lod_choice(version, name, lod, surfaces, converted):
    reader, objects = read_all(FZK / version / name)
    building, relief = objects
    assert (building.cls, relief.cls) == ("Building", "ReliefFeature")
    assert building.lod == lod
    if surfaces is not None:
        assert len(building.surfaces) == surfaces
    assert building.srs_name == "urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::5783"
    assert reader.report.converted_high_lod == converted
    if converted:
        assert any("only LoD3 geometry" in w for w in reader.report.warnings)
        kinds = Counter(s.kind for s in building.surfaces)
        assert kinds["door"] >= 1 and kinds["window"] >= 2 and kinds["roof"] >= 2
    assert building.attributes["function"] == "1000"
    assert building.attributes["address"] == (
        "Hermann-von-Helmholtz-Platz 1, 76344 Eggenstein-Leopoldshafen")


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_fzk_lod0_keeps_the_footprint_not_the_roof_edge(version):
    _, objects = read_all(FZK / version / "Building_LOD0-EPSG25832.gml")
    (footprint,) = objects[0].surfaces
    # The footprint lies at 112 m; the roof edge (at 115 m) is used only without a footprint.
    assert np.all(footprint.exterior[:, 2] == 112.0)
    np.testing.assert_array_equal(footprint.exterior[:, :2],
                                  [[458875, 5438350], [458885, 5438350], [458885, 5438355],
                                   [458875, 5438355]])


def test_fzk_lod4_is_converted_with_rooms_but_without_furniture():
    reader, objects = read_all(FZK / "v2" / "Building_LOD4-EPSG25832.gml")
    building = objects[0]
    assert building.lod == 4
    kinds = Counter(s.kind for s in building.surfaces)
    assert kinds["interior_wall"] >= 4 and kinds["floor"] >= 1 and kinds["ceiling"] >= 2
    # ~950 furniture polygons are left out; the room's solid only references its boundaries.
    assert len(building.surfaces) < 60
    assert reader.report.converted_high_lod == 2


def test_tin_relief_triangles_are_terrain():
    _, objects = read_all(FZK / "v2" / "Building_LOD2-EPSG25832.gml")
    relief = objects[1]
    assert (relief.cls, relief.lod, relief.gml_id) == (
        "ReliefFeature", 2, "GML_6bb30328-7599-4500-90ef-766fde6aa67b")
    assert len(relief.surfaces) == 9
    assert {s.kind for s in relief.surfaces} == {"terrain"}
    assert all(len(s.exterior) == 3 for s in relief.surfaces)
    np.testing.assert_array_equal(
        relief.surfaces[0].exterior,
        [[458868.0, 5438362.0, 112.0], [458875.0, 5438355.0, 112.0], [458883.0, 5438362.0, 114.0]],
    )


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_building_part_folded_and_shared_wall_emitted_once(version):
    _, objects = read_all(FZK / version / "Building_and_garage_LOD2-EPSG25832.gml")
    building = objects[0]
    assert building.part_ids == ("GMLID_BUI379228_1244_301",)
    assert building.lod == 2
    # House 7 + garage 6 boundary polygons; the garage solid's reversed reference to the
    # shared house wall does not add a second copy.
    assert Counter(s.kind for s in building.surfaces) == {"wall": 8, "roof": 3, "ground": 2}
    ids = [s.gml_id for s in building.surfaces]
    assert len(ids) == len(set(ids)) == 13


def test_road_over_bridge_citygml3_yields_a_bridge_and_a_road():
    reader, objects = read_all(
        CITYGML / "ogc-examples" / "Road_over_Bridge_CityGML3.0_LOD2_with_CityObjectRelations.gml")
    bridge, road = objects
    assert (bridge.cls, bridge.gml_id, bridge.lod) == ("Bridge", "id_bridge1", 2)
    assert Counter(s.kind for s in bridge.surfaces) == {"wall": 10, "roof": 4, "ground": 2}
    # gml:Surface/patches/PolygonPatch: the patch carries its Surface's id.
    assert bridge.surfaces[0].gml_id == "fme-gen-1a9ac79e-2880-47c7-b7c3-c9df5bc17447"
    assert road.cls == "Road" and len(road.surfaces) == 12
    # The file states no CRS at all.
    assert reader.header.srs_name is None and bridge.srs_name is None


def test_lod3_building_gets_x3d_colours_from_its_appearance():
    reader, objects = read_all(CITYGML / "citygml4j" / "lod3_building_v2.gml")
    (building,) = objects
    assert building.lod == 3 and reader.report.converted_high_lod == 1
    colours = Counter(s.color for s in building.surfaces)
    assert colours[(0.587999999523, 0.587999999523, 0.587999999523)] == len(building.surfaces)
    # Two zero-area polygons in the file are dropped and counted, not fatal.
    assert reader.report.degenerate_rings == 2
    assert building.attributes["address"] == "Teststreet 3, 12345 Testtown"


# --- AdV M-V shaped files from gen-mv-lod2 --------------------------------------------------


@pytest.fixture(scope="module", params=["1.0", "2.0"])
def mv_file(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mv") / f"mv_{request.param}.gml"
    subprocess.run(
        [sys.executable, str(GEN_MV_LOD2), "--buildings", "50", "--seed", "2",
         "--version", request.param, "--out", str(path)],
        check=True, capture_output=True,
    )
    return path


def expected_buildings(path: Path) -> dict[str, dict]:
    """What the file says, read independently with lxml XPath."""
    tree = etree.parse(str(path))
    version = "1.0" if "citygml/1.0" in tree.getroot().tag else "2.0"
    ns = {"core": f"http://www.opengis.net/citygml/{version}",
          "bldg": f"http://www.opengis.net/citygml/building/{version}",
          "gen": f"http://www.opengis.net/citygml/generics/{version}",
          "gml": NS["gml"], "xAL": NS["xAL"]}
    kinds = {"WallSurface": "wall", "RoofSurface": "roof", "GroundSurface": "ground"}
    gml_id = "{http://www.opengis.net/gml}id"
    result = {}
    for element in tree.iterfind("core:cityObjectMember/bldg:Building", ns):
        polygons = {}
        for surface in element.iterfind(".//bldg:boundedBy/*", ns):
            kind = kinds[etree.QName(surface).localname]
            for poly in surface.iterfind(".//gml:Polygon", ns):
                numbers = [float(v) for v in poly.findtext(".//gml:posList", namespaces=ns).split()]
                polygons[poly.get(gml_id)] = (kind, np.reshape(numbers, (-1, 3))[:-1])
        street = element.findtext(".//xAL:ThoroughfareName", namespaces=ns)
        result[element.get(gml_id)] = {
            "polygons": polygons,
            "parts": [p.get(gml_id) for p in element.iterfind(".//bldg:BuildingPart", ns)],
            "function": element.findtext("bldg:function", namespaces=ns),
            "roofType": element.findtext("bldg:roofType", namespaces=ns),
            "measuredHeight": float(element.findtext("bldg:measuredHeight", namespaces=ns)),
            "generic": {a.get("name"): a.findtext("gen:value", namespaces=ns)
                        for a in element.iterfind("gen:stringAttribute", ns)},
            "address": street and "{} {}, {} {}".format(
                street,
                element.findtext(".//xAL:ThoroughfareNumber", namespaces=ns),
                element.findtext(".//xAL:PostalCodeNumber", namespaces=ns),
                element.findtext(".//xAL:LocalityName", namespaces=ns)),
        }
    return result


def test_mv_buildings_every_polygon_once_with_kinds_and_coordinates(mv_file):
    expected = expected_buildings(mv_file)
    reader, objects = read_all(mv_file)
    assert reader.header.srs_name == "urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH"
    lower, upper = reader.header.envelope
    assert 311000 < lower[0] < upper[0] < 313000 and 5997000 < lower[1] < upper[1] < 5999000
    assert [o.gml_id for o in objects] == list(expected)
    assert reader.report.lods == {2: 50} and reader.report.unresolved_xlinks == 0
    assert sum(len(e["parts"]) for e in expected.values()) == 6  # seed 2 has annexes
    for city_object in objects:
        want = expected[city_object.gml_id]
        got = {s.gml_id: s for s in city_object.surfaces}
        # The lod2Solid's xlinks name the boundary polygons: each comes out exactly once.
        assert len(got) == len(city_object.surfaces) == len(want["polygons"])
        for poly_id, (kind, ring) in want["polygons"].items():
            assert got[poly_id].kind == kind
            np.testing.assert_array_equal(got[poly_id].exterior, ring)
        assert list(city_object.part_ids) == want["parts"]
        assert city_object.srs_name == "urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH"


def test_mv_building_attributes_are_typed(mv_file):
    expected = expected_buildings(mv_file)
    _, objects = read_all(mv_file)
    for city_object in objects:
        want = expected[city_object.gml_id]
        attributes = city_object.attributes
        assert attributes["function"] == want["function"]  # AdV code as written: 31001_1000
        assert attributes["function"].startswith("31001_")
        assert attributes["roofType"] == want["roofType"]
        assert isinstance(attributes["measuredHeight"], float)
        assert attributes["measuredHeight"] == want["measuredHeight"]
        assert attributes["creationDate"] == "2023-06-27"
        for name, value in want["generic"].items():
            assert attributes[name] == value and isinstance(attributes[name], str)
        assert attributes.get("address") == want["address"]
    assert sum("address" in o.attributes for o in objects) == 19


# --- geometry encodings -----------------------------------------------------------------------


def test_gml_pos_and_gml2_coordinates_rings(tmp_path):
    pos = "".join(f"<gml:pos>{x} {y} {z}</gml:pos>" for x, y, z in [*SQUARE, SQUARE[0]])
    coordinates = " ".join(f"{x},{y},{z}" for x, y, z in [*SQUARE, SQUARE[0]])
    path = write(tmp_path, building(
        "b", "<bldg:lod2MultiSurface>", multi_surface(
            f'<gml:Polygon gml:id="p1"><gml:exterior><gml:LinearRing>{pos}'
            "</gml:LinearRing></gml:exterior></gml:Polygon>",
            f'<gml:Polygon gml:id="p2"><gml:exterior><gml:LinearRing><gml:coordinates>'
            f"{coordinates}</gml:coordinates></gml:LinearRing></gml:exterior></gml:Polygon>",
        ), "</bldg:lod2MultiSurface>"))
    _, city_object = one_object(path)
    for surface in city_object.surfaces:
        np.testing.assert_array_equal(surface.exterior, SQUARE)


def test_2d_coordinates_get_z_zero_and_srs_dimension_is_inherited(tmp_path):
    path = write(tmp_path, building(
        "b", "<bldg:lod2MultiSurface>",
        multi_surface(polygon("p1", dim=2), polygon("p2", dim=2), attrs=' srsDimension="2"'),
        "</bldg:lod2MultiSurface>"))
    _, city_object = one_object(path)
    assert city_object.srs_dimension == 2
    for surface in city_object.surfaces:
        np.testing.assert_array_equal(surface.exterior, SQUARE)  # z = 0


def test_holes_orientation_patches_and_solid_cavities(tmp_path):
    hole = [(1, 1, 0), (1, 2, 0), (2, 2, 0), (2, 1, 0)]
    cavity = polygon("cavity", [(1, 1, 1), (2, 1, 1), (2, 2, 1)])
    path = write(tmp_path, building(
        "b",
        "<bldg:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>",
        f"<gml:surfaceMember>{polygon('holed', holes=[hole])}</gml:surfaceMember>",
        '<gml:surfaceMember><gml:OrientableSurface orientation="-"><gml:baseSurface>',
        polygon("flipped"), "</gml:baseSurface></gml:OrientableSurface></gml:surfaceMember>",
        '<gml:surfaceMember><gml:Surface gml:id="patched"><gml:patches><gml:PolygonPatch>',
        f"<gml:exterior><gml:LinearRing><gml:posList>{pos_list(SQUARE)}</gml:posList>",
        "</gml:LinearRing></gml:exterior></gml:PolygonPatch></gml:patches></gml:Surface>",
        "</gml:surfaceMember></gml:CompositeSurface></gml:exterior>",
        f"<gml:interior><gml:CompositeSurface><gml:surfaceMember>{cavity}</gml:surfaceMember>",
        "</gml:CompositeSurface></gml:interior></gml:Solid></bldg:lod2Solid>"))
    _, city_object = one_object(path)
    holed, flipped, patched = city_object.surfaces  # the cavity is not rendered
    assert len(holed.interiors) == 1
    np.testing.assert_array_equal(holed.interiors[0], hole)
    np.testing.assert_array_equal(flipped.exterior, SQUARE[::-1])
    assert patched.gml_id == "patched"


def test_triangulated_surface_and_srs_name_of_the_geometry(tmp_path):
    triangles = "".join(
        f"<gml:Triangle><gml:exterior><gml:LinearRing><gml:posList>{pos_list(t)}"
        "</gml:posList></gml:LinearRing></gml:exterior></gml:Triangle>"
        for t in ([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [(1, 0, 0), (1, 1, 0), (0, 1, 0)]))
    path = write(tmp_path, building(
        "b", '<bldg:lod1MultiSurface><gml:TriangulatedSurface srsName="EPSG:4647">',
        f"<gml:trianglePatches>{triangles}</gml:trianglePatches>",
        "</gml:TriangulatedSurface></bldg:lod1MultiSurface>"))
    reader, city_object = one_object(path)
    assert len(city_object.surfaces) == 2 and city_object.lod == 1
    assert city_object.srs_name == "EPSG:4647" and reader.header.srs_name == "EPSG:25833"


# --- LoD choice -------------------------------------------------------------------------------


def test_highest_lod_up_to_2_wins(tmp_path):
    path = write(tmp_path, building(
        "b", "<bldg:lod1MultiSurface>", multi_surface(polygon("l1")), "</bldg:lod1MultiSurface>",
        bounded("RoofSurface", 2, polygon("l2")),
        bounded("RoofSurface", 3, polygon("l3"))))
    reader, city_object = one_object(path)
    assert city_object.lod == 2 and [s.gml_id for s in city_object.surfaces] == ["l2"]
    assert city_object.surfaces[0].kind == "roof"
    assert reader.report.converted_high_lod == 0


def test_only_lod3_and_lod4_keeps_the_lowest_and_counts_it(tmp_path):
    path = write(tmp_path, building(
        "b", bounded("WallSurface", 4, polygon("l4")), bounded("WallSurface", 3, polygon("l3"))))
    reader, city_object = one_object(path)
    assert city_object.lod == 3 and [s.gml_id for s in city_object.surfaces] == ["l3"]
    assert reader.report.converted_high_lod == 1 and reader.report.warnings


def test_objects_without_usable_geometry_are_skipped_and_counted(tmp_path):
    curve = "<gml:LineString><gml:posList>0 0 0 1 1 1</gml:posList></gml:LineString>"
    path = write(
        tmp_path,
        building("bare", "<bldg:function>1000</bldg:function>"),
        building("curve_only", "<bldg:lod1TerrainIntersection><gml:MultiCurve><gml:curveMember>",
                 curve, "</gml:curveMember></gml:MultiCurve></bldg:lod1TerrainIntersection>"),
        building("ok", bounded("RoofSurface", 2, polygon("r"))),
    )
    reader, objects = read_all(path)
    assert [o.gml_id for o in objects] == ["ok"]
    assert reader.report.skipped_objects == {"Building": 2}


def test_roof_edge_only_when_there_is_no_footprint(tmp_path):
    path = write(tmp_path, building(
        "b", "<bldg:lod0RoofEdge>", multi_surface(polygon("edge")), "</bldg:lod0RoofEdge>"))
    _, city_object = one_object(path)
    assert city_object.lod == 0 and [s.gml_id for s in city_object.surfaces] == ["edge"]


# --- xlinks and appearances -------------------------------------------------------------------


def test_xlinks_to_polygons_and_aggregates_resolve_once_unresolved_are_counted(tmp_path):
    members = "".join(f'<gml:surfaceMember xlink:href="#{t}"/>'
                      for t in ("w1", "agg", "missing", "other.gml#x"))
    path = write(tmp_path, building(
        "b",
        bounded("WallSurface", 2, polygon("w1")),
        '<bldg:boundedBy><bldg:RoofSurface><bldg:lod2MultiSurface><gml:MultiSurface gml:id="agg">',
        f"<gml:surfaceMember>{polygon('r1')}</gml:surfaceMember>",
        f"<gml:surfaceMember>{polygon('r2')}</gml:surfaceMember>",
        "</gml:MultiSurface></bldg:lod2MultiSurface></bldg:RoofSurface></bldg:boundedBy>",
        f"<bldg:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>{members}",
        "</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod2Solid>"))
    reader, city_object = one_object(path)
    assert [(s.gml_id, s.kind) for s in city_object.surfaces] == [
        ("w1", "wall"), ("r1", "roof"), ("r2", "roof")]
    assert reader.report.unresolved_xlinks == 2
    assert sum("xlink:href" in w for w in reader.report.warnings) == 1


def test_x3d_material_colours_targets_global_appearances_are_reported(tmp_path):
    local = (
        "<app:appearance><app:Appearance><app:surfaceDataMember><app:X3DMaterial>"
        "<app:diffuseColor>0.2 0.4 0.6</app:diffuseColor><app:target>#w1</app:target>"
        "</app:X3DMaterial></app:surfaceDataMember></app:Appearance></app:appearance>")
    global_ = (
        "<app:appearanceMember><app:Appearance><app:surfaceDataMember><app:X3DMaterial>"
        "<app:diffuseColor>1 0 0</app:diffuseColor><app:target>#w2</app:target>"
        "</app:X3DMaterial></app:surfaceDataMember></app:Appearance></app:appearanceMember>")
    path = write(tmp_path, building("b", local, bounded("WallSurface", 2, polygon("w1"),
                                                        polygon("w2"))), tail=global_)
    reader, city_object = one_object(path)
    assert [s.color for s in city_object.surfaces] == [(0.2, 0.4, 0.6), None]
    assert any("appearanceMember" in w for w in reader.report.warnings)


# --- attributes -------------------------------------------------------------------------------


def test_citygml2_generic_attributes_are_typed(tmp_path):
    generic = (
        '<gen:intAttribute name="floors"><gen:value>4</gen:value></gen:intAttribute>'
        '<gen:doubleAttribute name="area"><gen:value>12.5</gen:value></gen:doubleAttribute>'
        '<gen:measureAttribute name="depth"><gen:value uom="m">2.5</gen:value>'
        "</gen:measureAttribute>"
        '<gen:dateAttribute name="renovated"><gen:value>2001-05-02</gen:value></gen:dateAttribute>'
        '<gen:uriAttribute name="link"><gen:value>https://example.org/b</gen:value>'
        "</gen:uriAttribute>"
        '<gen:stringAttribute name="code"><gen:value>0042</gen:value></gen:stringAttribute>'
        '<gen:genericAttributeSet name="set"><gen:intAttribute name="inner">'
        "<gen:value>7</gen:value></gen:intAttribute></gen:genericAttributeSet>"
        "<bldg:yearOfConstruction>1910</bldg:yearOfConstruction>"
        "<bldg:storeysBelowGround>1</bldg:storeysBelowGround>"
        "<bldg:usage>1010</bldg:usage>")
    path = write(tmp_path, building("b", generic, bounded("RoofSurface", 2, polygon("r"))))
    _, city_object = one_object(path)
    assert city_object.attributes == {
        "floors": 4, "area": 12.5, "depth": 2.5, "renovated": "2001-05-02",
        "link": "https://example.org/b", "code": "0042", "inner": 7,
        "yearOfConstruction": 1910, "storeysBelowGround": 1, "usage": "1010",
    }


# --- bad inputs: one clear message naming file, place and way out ----------------------------

XXE = """<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" xmlns:gml="http://www.opengis.net/gml"><gml:name>&xxe;</gml:name></core:CityModel>
"""
BILLION_LAUGHS = """<?xml version="1.0"?>
<!-- a comment first -->
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0">&lol3;</core:CityModel>
"""


@pytest.mark.parametrize(("text", "line"), [(XXE, 2), (BILLION_LAUGHS, 3)], ids=["xxe", "bomb"])
def test_doctype_and_entities_are_refused_before_parsing(tmp_path, text, line):
    path = tmp_path / "evil.gml"
    path.write_text(text)
    with pytest.raises(UnsafeInputError) as info:
        _ = CityGMLReader(path).header
    message = str(info.value)
    assert str(path) in message and f"line {line}" in message
    assert "DOCTYPE" in message and "remove the DOCTYPE" in message and "\n" not in message
    with pytest.raises(UnsafeInputError):
        list(CityGMLReader(path))


def test_malformed_xml_names_the_line_and_objects_before_it_come_through(tmp_path):
    path = write(tmp_path, building("good", bounded("RoofSurface", 2, polygon("r"))),
                 '<core:cityObjectMember><bldg:Building gml:id="broken">\n'
                 "<bldg:function>1000</bldg:functio>\n")
    reader = CityGMLReader(path)
    objects = iter(reader)
    assert next(objects).gml_id == "good"
    with pytest.raises(FormatError) as info:
        next(objects)
    message = str(info.value)
    assert str(path) in message and "line 6" in message and "malformed XML" in message
    assert "\n" not in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gml"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty.gml is empty"):
        list(CityGMLReader(path))


def test_las_file_passed_as_citygml(tmp_path):
    path = tmp_path / "points.gml"
    path.write_bytes((SHARED / "data" / "lidar" / "laspy" / "simple.las").read_bytes())
    with pytest.raises(FormatError) as info:
        _ = CityGMLReader(path).header
    assert "LAS point cloud" in str(info.value) and "twin build lidar" in str(info.value)
    assert str(path) in str(info.value)


def test_not_xml_and_not_citygml(tmp_path):
    binary = tmp_path / "binary.gml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(FormatError, match="line 1"):
        list(CityGMLReader(binary))
    other = tmp_path / "other.gml"
    other.write_text('<?xml version="1.0"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"/>\n')
    with pytest.raises(FormatError, match="line 2.*not a CityGML"):
        _ = CityGMLReader(other).header
    # All of these are InputError / ValueError for callers that catch broadly.
    assert issubclass(FormatError, InputError) and issubclass(FormatError, ValueError)


TWO_POINTS = [(0, 0, 0), (1, 0, 0), (0, 0, 0)]


def test_polygon_with_two_distinct_points_is_an_error(tmp_path):
    path = write(tmp_path, building(
        "bad_building", bounded("WallSurface", 2, polygon("ok"), polygon("two", TWO_POINTS))))
    with pytest.raises(GeometryError) as info:
        list(CityGMLReader(path))
    message = str(info.value)
    assert str(path) in message and "line 4" in message  # the polygon's line
    assert "polygon two" in message and "bad_building" in message
    assert "--skip-invalid" in message and "fewer than 3 distinct points" in message


def test_polygon_with_two_distinct_points_is_dropped_with_skip_invalid(tmp_path):
    path = write(tmp_path, building(
        "b", bounded("WallSurface", 2, polygon("ok"), polygon("two", TWO_POINTS))))
    reader, city_object = one_object(path, skip_invalid=True)
    assert [s.gml_id for s in city_object.surfaces] == ["ok"]
    assert reader.report.degenerate_rings == 1 and reader.report.warnings


def test_zero_area_rings_are_dropped_and_counted(tmp_path):
    collinear = [(0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 3)]
    hole_on_a_line = [(1, 1, 0), (2, 2, 0), (3, 3, 0)]
    path = write(tmp_path, building(
        "b", bounded("WallSurface", 2, polygon("ok", holes=[hole_on_a_line]),
                     polygon("flat", collinear))))
    reader, city_object = one_object(path)
    (surface,) = city_object.surfaces
    assert surface.gml_id == "ok" and surface.interiors == ()
    assert reader.report.degenerate_rings == 2


@pytest.mark.parametrize(("pos_list_text", "problem"), [
    ("0 0 0 1 0 0 1 1 0 0 1", "not a multiple of srsDimension 3"),
    ("0 0 0 1 0 0 1 nan 0 0 1 0 0 0 0", "non-finite"),
    ("0 0 0 1 0 0 1 1,5 0 0 1 0 0 0 0", "not a number"),
])
def test_unreadable_coordinates_name_the_polygon(tmp_path, pos_list_text, problem):
    bad = ('<gml:Polygon gml:id="bad"><gml:exterior><gml:LinearRing><gml:posList>'
           f"{pos_list_text}</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>")
    path = write(tmp_path, building("b", bounded("RoofSurface", 2, polygon("ok"), bad)))
    with pytest.raises(GeometryError, match=problem) as info:
        list(CityGMLReader(path))
    assert "polygon bad" in str(info.value) and "--skip-invalid" in str(info.value)
    reader, city_object = one_object(path, skip_invalid=True)
    assert [s.gml_id for s in city_object.surfaces] == ["ok"]
    assert reader.report.degenerate_rings == 1


def test_header_is_read_without_parsing_the_whole_file(tmp_path):
    path = write(tmp_path, building("good", bounded("RoofSurface", 2, polygon("r"))),
                 "<core:cityObjectMember><oops></core:cityObjectMember>")
    header = CityGMLReader(path).header
    assert (header.version, header.srs_name) == ("2.0", "EPSG:25833")
    assert header.envelope == ((0.0, 0.0, 0.0), (10.0, 10.0, 10.0))
    with pytest.raises(FormatError):
        list(CityGMLReader(path))


# --- memory stays bounded -----------------------------------------------------------------------


def test_memory_is_bounded_by_one_object(tmp_path):
    path = tmp_path / "mv3000.gml"
    subprocess.run([sys.executable, str(GEN_MV_LOD2), "--buildings", "3000", "--seed", "1",
                    "--out", str(path)], check=True, capture_output=True)
    size_mb = path.stat().st_size / 1e6
    script = (
        "import resource, sys\n"
        "from twin.readers.citygml import CityGMLReader\n"
        "objects = iter(CityGMLReader(sys.argv[1]))\n"
        "next(objects)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "count = 1 + sum(1 for _ in objects)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(count, (after - before) / 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], check=True,
                            capture_output=True, text=True)
    count, growth_mb = result.stdout.split()
    assert int(count) == 3000
    # A kept tree would take several times the file size (~30 MB); streaming takes a few MB.
    assert size_mb > 25 and float(growth_mb) < 10, (size_mb, growth_mb)


def test_line_numbers_stay_exact_beyond_65535_lines(tmp_path):
    """libxml2 keeps an element's line in 16 bits and past 65,535 reports a nearby text's line
    instead; the reader parses files of more lines in shards and adds the lines before each,
    so every building's and polygon's line is its start tag's, read whole or in shards."""
    path = tmp_path / "mv_400.gml"
    subprocess.run(
        [sys.executable, str(GEN_MV_LOD2), "--buildings", "400", "--seed", "3", "--out",
         str(path)],
        check=True, capture_output=True,
    )
    start_tags: dict[str, int] = {}
    with open(path, "rb") as f:
        for number, text in enumerate(f, 1):
            for match in re.finditer(rb'<(?:bldg:Building|gml:Polygon) gml:id="([^"]+)"', text):
                start_tags[match.group(1).decode()] = number
    assert max(start_tags.values()) > 80_000
    whole = list(CityGMLReader(path))
    shards = plan_shards(path, 1 << 20)
    assert len(shards) >= 4
    sharded = [obj for shard in shards for obj in CityGMLReader(path, fragment=shard)]
    for objects in (whole, sharded):
        assert len(objects) == 400
        assert [obj.line for obj in objects] == [start_tags[obj.gml_id] for obj in objects]
        lines = [(s.gml_id, s.line) for obj in objects for s in obj.surfaces]
        assert lines == [(gml_id, start_tags[gml_id]) for gml_id, _ in lines]
    assert whole[-1].line > 65_535


def test_syntax_error_line_beyond_65535_lines(tmp_path):
    """A broken tag deep in a large file is reported at its own line, whole or in shards."""
    source = tmp_path / "mv_400.gml"
    subprocess.run(
        [sys.executable, str(GEN_MV_LOD2), "--buildings", "400", "--seed", "3", "--out",
         str(source)],
        check=True, capture_output=True,
    )
    lines = source.read_bytes().split(b"\n")
    broken = 75_000
    assert lines[broken - 1].strip().startswith(b"<")
    lines[broken - 1] = lines[broken - 1].replace(b">", b" oops>", 1).replace(b"</", b"<", 1)
    path = tmp_path / "broken.gml"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(FormatError, match=rf"broken\.gml: line {broken}(, column \d+)?: "):
        list(CityGMLReader(path))
