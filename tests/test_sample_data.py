"""The sample-data generator (`twin sample-data`): file names, determinism, CRS, the LiDAR's
classes and heights, buildings on the terrain and out of the river, the planned bridge's
dimensions, and that our readers and the CityGML pipeline take every file."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from lxml import etree

from tools.cli import cli
from tools.sample_data import generate as generate_module
from tools.sample_data.generate import generate_sample_data
from tools.sample_data.world import PLACE, World
from twin.info import describe
from twin.ops.terrain import TerrainGridBuilder
from twin.pipeline import build_citygml
from twin.readers.citygml import CityGMLReader
from twin.readers.las import LasSource, read_header

SEED = 1
DENSITY = 0.2
EXPECTED_FILES = sorted([
    "LoD2_33_310_5996_2_MV.gml", "LoD2_33_312_5996_2_MV.gml",
    "LoD2_33_310_5998_2_MV.gml", "LoD2_33_312_5998_2_MV.gml",
    *[f"3dm_33_{e}_{n}_1.laz" for e in (311, 312, 313) for n in (5997, 5998, 5999)],
    "geplant/Warnowbruecke_LoD2.gml", "geplant/WarnowQuartier_LoD2.gml", "world.json",
])
GML = "{http://www.opengis.net/gml}"
BRID = "{http://www.opengis.net/citygml/bridge/2.0}"


@pytest.fixture(scope="module")
def world() -> World:
    return World(SEED)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, world: World) -> Path:
    out = tmp_path_factory.mktemp("sample") / "data"
    generate_sample_data(out, SEED, DENSITY, world=world)
    return out


@pytest.fixture(scope="module")
def document(data: Path) -> dict:
    return json.loads((data / "world.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def river(document: dict) -> shapely.Polygon:
    polygon = shapely.geometry.shape(document["river"])
    shapely.prepare(polygon)
    return polygon


@pytest.fixture(scope="module")
def points(data: Path) -> dict[str, np.ndarray]:
    """Every LiDAR point of every tile, through our LAS reader."""
    parts: dict[str, list[np.ndarray]] = {"x": [], "y": [], "z": [], "cls": []}
    for path in sorted(data.glob("3dm_33_*_1.laz")):
        header = read_header(path)
        for chunk in LasSource(path, 0, header.point_count).chunks(1_000_000):
            parts["x"].append(chunk.x)
            parts["y"].append(chunk.y)
            parts["z"].append(chunk.z)
            parts["cls"].append(chunk.classification)
    return {k: np.concatenate(v) for k, v in parts.items()}


@pytest.fixture(scope="module")
def buildings(data: Path) -> list[dict]:
    """Every existing building read back from the LoD2 tiles: id, file, ground z, footprint."""
    out = []
    for path in sorted(data.glob("LoD2_33_*_2_MV.gml")):
        for obj in CityGMLReader(path):
            grounds = [s.exterior for s in obj.surfaces if s.kind == "ground"]
            footprint = shapely.union_all([shapely.Polygon(g[:, :2]) for g in grounds])
            out.append({"id": obj.gml_id, "file": path.name, "ground": grounds,
                        "footprint": footprint, "attributes": obj.attributes,
                        "parts": obj.part_ids})
    return out


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- files, determinism, atomic publishing -----------------------------------------------------


def test_writes_exactly_the_contracts_files(data: Path, document: dict) -> None:
    written = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())
    assert written == EXPECTED_FILES
    assert document["files"] == EXPECTED_FILES
    assert not list(data.parent.glob(".twin-tmp-*"))  # no staging folder left behind


def test_same_seed_same_bytes_other_seed_other_bytes(data: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_sample_data(again, SEED, DENSITY)
    assert digests(again) == digests(data)
    other = tmp_path / "other"
    generate_sample_data(other, SEED + 1, DENSITY)
    a, b = digests(data), digests(other)
    assert a.keys() == b.keys()
    bridge = "geplant/Warnowbruecke_LoD2.gml"
    assert all(a[name] != b[name] for name in a if name != bridge)
    # The planned bridge does not depend on the seed: only its comment (naming it) differs.
    lines = [(folder / bridge).read_text(encoding="utf-8").splitlines() for folder in (data,
                                                                                      other)]
    assert lines[0][1] != lines[1][1] and lines[0][2:] == lines[1][2:]


def test_up_to_date_data_is_not_rewritten(data: Path, world: World, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    stamps = {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()}
    report = generate_sample_data(copy, SEED, DENSITY)
    assert report.up_to_date and report.buildings == len(world.buildings)
    assert report.points == json.loads((data / "world.json").read_text())["points"]
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()} == stamps
    # A damaged file, another density or --force: written again (and again identical).
    with open(copy / "3dm_33_312_5998_1.laz", "ab") as f:
        f.write(b"\0")
    report = generate_sample_data(copy, SEED, DENSITY, world=world)
    assert not report.up_to_date
    assert digests(copy) == digests(data)
    assert not generate_sample_data(copy, SEED, DENSITY, world=world, force=True).up_to_date
    result = CliRunner().invoke(cli, ["sample-data", "--out", str(copy), "--density",
                                      str(DENSITY)])
    assert result.exit_code == 0 and "up to date" in result.output


def test_failed_run_leaves_the_previous_data(data: Path, world: World, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "published"
    out.mkdir()
    (out / "world.json").write_text(json.dumps({"format": "rostock-virtuell-sample-world/1"}))
    before = digests(out)

    def broken(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(generate_module.lidar, "write_laz", broken)
    with pytest.raises(OSError, match="disk full"):
        generate_sample_data(out, SEED, DENSITY, world=world)
    assert digests(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["published"]


def test_cli_refuses_a_foreign_folder_and_bad_density(tmp_path: Path) -> None:
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["sample-data", "--out", str(foreign)])
    assert result.exit_code == 1
    assert f"twin: error: {foreign}: the folder is not empty" in result.output
    assert (foreign / "notes.txt").read_text() == "keep me"
    result = CliRunner().invoke(cli, ["sample-data", "--out", str(tmp_path / "x"),
                                      "--density", "0"])
    assert result.exit_code == 2
    assert "--density" in result.output


# --- CRS and headers ---------------------------------------------------------------------------


def test_citygml_files_declare_utm33_and_dhhn2016(data: Path) -> None:
    for name in EXPECTED_FILES:
        if not name.endswith(".gml"):
            continue
        info = describe(data / name)
        assert info["crs"]["horizontal"] == "EPSG:25833", name
        assert info["crs"]["vertical"] == "EPSG:7837", name
        assert info["degenerate_rings"] == 0, name
        assert info["version"] == ("2.0" if "Warnowbruecke" in name else "1.0"), name
    text = (data / "LoD2_33_312_5996_2_MV.gml").read_text(encoding="utf-8")
    assert 'srsName="urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH"' in text
    assert "<gml:name>LoD2_33_312_5996_2_MV</gml:name>" in text


def test_laz_headers(data: Path) -> None:
    for path in sorted(data.glob("*.laz")):
        header = read_header(path)
        assert (header.format, header.version, header.point_format) == ("LAZ", "1.4", 7)
        assert header.scales == (0.01, 0.01, 0.01)
        assert header.crs_record == "WKT"
        assert header.crs_name == "ETRS89 / UTM zone 33N + DHHN2016 height"
        assert 'ID["EPSG",25833]' in header.crs_wkt and 'ID["EPSG",7837]' in header.crs_wkt
        raw = path.read_bytes()[:96]
        global_encoding, = struct.unpack_from("<H", raw, 6)
        assert global_encoding & 0x10  # WKT bit
        assert global_encoding & 0x01  # adjusted standard GPS time
        assert struct.unpack_from("<HH", raw, 90) == (106, 2024)  # fixed creation date
        e, n = (int(v) for v in re.findall(r"\d+", path.name)[2:4])
        assert header.offsets[:2] == (e * 1000.0, n * 1000.0)
        assert e * 1000 <= header.mins[0] and header.maxs[0] <= (e + 1) * 1000
        assert n * 1000 <= header.mins[1] and header.maxs[1] <= (n + 1) * 1000


# --- LiDAR content -------------------------------------------------------------------------------


def test_point_classes(points: dict[str, np.ndarray], data: Path) -> None:
    classes, counts = np.unique(points["cls"], return_counts=True)
    count = dict(zip(classes.tolist(), counts.tolist(), strict=True))
    assert set(count) == {2, 3, 4, 5, 6, 9, 17}
    area = 2700 * 2150
    assert 0.9 * DENSITY * area < len(points["cls"]) < 1.1 * DENSITY * area
    assert count[2] > 0.4 * len(points["cls"])
    assert count[6] > 20_000 and count[9] > 50_000 and count[5] > 5_000


def test_water_points_lie_in_the_river_at_zero(points: dict[str, np.ndarray],
                                              river: shapely.Polygon) -> None:
    water = points["cls"] == 9
    assert shapely.contains_xy(river, points["x"][water], points["y"][water]).all()
    assert np.abs(points["z"][water]).max() <= 0.3
    # ...and nothing but water and the existing bridge in the river.
    inside = shapely.contains_xy(river, points["x"], points["y"])
    assert set(np.unique(points["cls"][inside]).tolist()) == {9, 17}


def test_ground_at_the_kroepeliner_tor(points: dict[str, np.ndarray], world: World) -> None:
    gate = PLACE["kroepeliner-tor"]
    ground = points["cls"] == 2
    near = ground & (np.hypot(points["x"] - gate.e, points["y"] - gate.n) < 25.0)
    assert near.sum() > 50
    assert abs(float(np.median(points["z"][near])) - 12.0) < 1.0  # the contract: about 12 m
    modelled = world.terrain_height(points["x"][near], points["y"][near])
    assert np.abs(points["z"][near] - modelled).max() < 0.2


def test_planned_structures_are_not_in_todays_lidar(points: dict[str, np.ndarray],
                                                    world: World) -> None:
    deck = world.planned_bridge.alignment.line.buffer(world.planned_bridge.design.deck_width / 2)
    on_deck = shapely.contains_xy(deck, points["x"], points["y"])
    assert on_deck.sum() > 200
    assert not np.isin(points["cls"][on_deck], (6, 17)).any()
    quarter = shapely.union_all([b.footprint for b in world.planned_buildings])
    inside = shapely.contains_xy(quarter, points["x"], points["y"])
    assert inside.sum() > 1000
    assert set(np.unique(points["cls"][inside]).tolist()) <= {2, 3, 4, 5}


# --- buildings -----------------------------------------------------------------------------------


def test_buildings_in_mv_style(buildings: list[dict], data: Path) -> None:
    assert 1000 <= len(buildings) <= 2500
    ids = [b["id"] for b in buildings]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"DEMVAL[0-9A-Z]{2}[0-9A-Za-z]{8}", i) for i in ids)
    for b in buildings:
        a = b["attributes"]
        assert re.fullmatch(r"31001_\d{4}", a["function"])
        assert a["roofType"] in {"1000", "2100", "3100", "3200", "3500", "4000"}
        assert a["measuredHeight"] > 2.0 and a["storeysAboveGround"] >= 1
        assert a["Gemeindeschluessel"] == "13003000"
        c = b["footprint"].centroid
        assert b["file"] == f"LoD2_33_{int(c.x // 2000) * 2}_{int(c.y // 2000) * 2}_2_MV.gml"
    churches = [b for b in buildings if b["attributes"].get("name") in ("Marienkirche",
                                                                        "Petrikirche")]
    assert len(churches) == 2 and all(len(b["parts"]) >= 1 for b in churches)
    report = CityGMLReader(data / "LoD2_33_312_5996_2_MV.gml")
    list(report)
    assert report.report.unresolved_xlinks == 0


def test_ground_surfaces_sit_on_the_lidar_ground(buildings: list[dict],
                                                 points: dict[str, np.ndarray]) -> None:
    ground = points["cls"] == 2
    gx, gy, gz = points["x"][ground], points["y"][ground], points["z"][ground]
    tree = shapely.STRtree(shapely.points(gx, gy))
    checked = 0
    for b in buildings:
        z = np.concatenate([g[:, 2] for g in b["ground"]])
        assert np.ptp(z) == 0.0, b["id"]  # flat ground surface
        ring = b["footprint"].buffer(5.0).difference(b["footprint"].buffer(1.0))
        near = tree.query(ring, predicate="contains")
        if len(near) >= 3:
            checked += 1
            assert abs(float(np.median(gz[near])) - z[0]) <= 0.5, b["id"]
    assert checked > 0.9 * len(buildings)


def test_ground_surfaces_match_a_1m_dtm(buildings: list[dict], points: dict[str, np.ndarray],
                                        world: World) -> None:
    """The scenes' check: a 1 m DTM (mean of ground points, gaps filled) at the footprints'
    corners. At this density many cells are filled, so this is the interpolated ground."""
    e = world.extent
    builder = TerrainGridBuilder((e.e_min, e.n_min, e.e_max, e.n_max), 1.0)
    builder.add(points["x"], points["y"], points["z"], points["cls"])
    dtm = builder.finish()
    worst = 0.0
    for b in buildings:
        xy = np.asarray(b["footprint"].exterior.coords)
        col = np.clip(((xy[:, 0] - dtm.x0) / dtm.cell).astype(int), 0, dtm.shape[1] - 1)
        row = np.clip(((xy[:, 1] - dtm.y0) / dtm.cell).astype(int), 0, dtm.shape[0] - 1)
        worst = max(worst, float(np.abs(dtm.heights[row, col] - b["ground"][0][0, 2]).max()))
    assert worst <= 0.5


def test_no_building_in_the_river(buildings: list[dict], river: shapely.Polygon,
                                  data: Path) -> None:
    footprints = [b["footprint"] for b in buildings]
    for path in (data / "geplant" / "WarnowQuartier_LoD2.gml",):
        for obj in CityGMLReader(path):
            grounds = [s.exterior for s in obj.surfaces if s.kind == "ground"]
            footprints.append(shapely.Polygon(grounds[0][:, :2]))
    assert not shapely.intersects(river, np.asarray(footprints, dtype=object)).any()


def test_warnowquartier(data: Path, world: World) -> None:
    objects = list(CityGMLReader(data / "geplant" / "WarnowQuartier_LoD2.gml"))
    assert 40 <= len(objects) <= 80
    storeys = {o.attributes["storeysAboveGround"] for o in objects}
    assert storeys <= {4, 5, 6}
    assert {o.attributes["roofType"] for o in objects} >= {"1000", "3100"}
    existing = shapely.STRtree([b.footprint for b in world.buildings])
    primelberg = shapely.Point(PLACE["primelberg"].e, PLACE["primelberg"].n).buffer(200.0)
    for o in objects:
        ground = next(s.exterior for s in o.surfaces if s.kind == "ground")
        footprint = shapely.Polygon(ground[:, :2])
        c = footprint.centroid
        assert 312900 <= c.x <= 313450 and 5998200 <= c.y <= 5998650
        assert not primelberg.intersects(footprint)
        hits = existing.query(footprint, predicate="intersects")
        assert len(hits) == 0, o.gml_id
        assert abs(float(world.terrain_height(c.x, c.y)) - ground[0, 2]) < 0.05


def _closed_outward(rings: list[np.ndarray]) -> tuple[bool, float]:
    """Whether every edge of the rings is used exactly twice, in opposite directions, and
    the signed volume they enclose (positive when the rings face outward)."""
    edges: dict[tuple[tuple[float, ...], tuple[float, ...]], int] = {}
    volume = 0.0
    origin = rings[0][0]
    for ring in rings:
        pts = [tuple(np.round(p, 3)) for p in ring]
        for a, b in zip(pts, pts[1:] + pts[:1], strict=True):
            edges[(a, b)] = edges.get((a, b), 0) + 1
        r = ring - origin
        for k in range(1, len(r) - 1):
            volume += float(np.dot(r[0], np.cross(r[k], r[k + 1]))) / 6.0
    closed = all(n == 1 and edges.get((b, a)) == 1 for (a, b), n in edges.items())
    return closed, volume


def test_solids_are_closed_with_outward_rings(data: Path, world: World) -> None:
    for path in sorted(data.glob("LoD2_33_*_2_MV.gml")):
        for obj in CityGMLReader(path):
            if obj.part_ids:
                continue  # parts share walls with their building: checked body by body below
            closed, volume = _closed_outward([s.exterior for s in obj.surfaces])
            assert closed and volume > 10.0, obj.gml_id
    tree = etree.parse(str(data / "geplant" / "Warnowbruecke_LoD2.gml"))

    def rings(element: etree._Element) -> list[np.ndarray]:
        return [np.array(p.text.split(), float).reshape(-1, 3)[:-1]
                for p in element.iter(f"{GML}posList")]

    solids = 0
    for part in tree.iter(f"{BRID}BridgePart"):
        deck = [r for b in part.findall(f"{BRID}boundedBy") for r in rings(b)]
        closed, volume = _closed_outward(deck)
        assert closed and volume > 0.0, part.get(f"{GML}id")
        solids += 1
    for solid in tree.iter(f"{GML}Solid"):
        if solid.find(f".//{GML}posList") is None:
            continue  # the parts' lod2Solid: xlinks to the boundary surfaces checked above
        closed, volume = _closed_outward(rings(solid))
        assert closed and volume > 0.0, solid.get(f"{GML}id")
        solids += 1
    bridge = world.planned_bridge
    elements = bridge.elements + [e for p in bridge.parts for e in p.elements]
    assert solids == len(bridge.parts) + sum(len(e.solids) for e in elements)
    assert len(bridge.parts) == 5


# --- the planned Warnowbrücke ------------------------------------------------------------------


def test_bridge_dimensions(data: Path, document: dict, river: shapely.Polygon) -> None:
    summary = document["warnowbruecke"]
    axis = shapely.LineString([p[:2] for p in summary["axis"]])
    assert axis.length == pytest.approx(541.16, abs=1.0)
    south, north = shapely.Point(summary["south_end"][:2]), shapely.Point(summary["north_end"][:2])
    assert not river.contains(south) and not river.contains(north)
    assert axis.intersects(river) and axis.intersection(river).length > 300.0
    tree = etree.parse(str(data / "geplant" / "Warnowbruecke_LoD2.gml"))

    def stations(element: etree._Element) -> tuple[np.ndarray, np.ndarray]:
        xyz = np.concatenate([np.array(p.text.split(), float).reshape(-1, 3)
                              for p in element.iter(f"{GML}posList")])
        s = shapely.line_locate_point(axis, shapely.points(xyz[:, :2]))
        return s, xyz

    parts = {p.get(f"{GML}id"): p for p in tree.iter(f"{BRID}BridgePart")}
    bascule = parts["Warnowbruecke_klappbruecke"]
    assert bascule.findtext(f"{BRID}isMovable") == "true"
    deck = bascule.find(f".//{BRID}OuterFloorSurface")
    s, xyz = stations(deck)
    assert np.ptp(s) == pytest.approx(70.0, abs=0.5)
    assert shapely.contains_xy(river, xyz[:, 0], xyz[:, 1]).all()
    # The fixed high part around the bascule: the underside at least 8.5 m above the water.
    c0, c1 = summary["crest"][:2]
    b0, b1 = summary["bascule"]
    assert b0 - c0 > 15.0 and c1 - b1 > 15.0
    for key in ("fest-sued", "fest-nord"):
        s, xyz = stations(parts[f"Warnowbruecke_{key}"].find(f".//{BRID}OuterCeilingSurface"))
        crest = (s > c0 + 0.01) & (s < c1 - 0.01)
        assert crest.sum() > 20
        assert xyz[crest, 2].min() >= 8.5
    # Gradients: 3.8 % from the city, 1.8 % from Gehlsdorf, on the deck's top.
    s, xyz = stations(parts["Warnowbruecke_rampe-sued"].find(f".//{BRID}OuterFloorSurface"))
    slope = np.polyfit(s, xyz[:, 2], 1)[0]
    assert slope == pytest.approx(0.038, abs=0.001)
    s, xyz = stations(parts["Warnowbruecke_fest-nord"].find(f".//{BRID}OuterFloorSurface"))
    falling = s > c1 + 1.0
    assert np.polyfit(s[falling], xyz[falling, 2], 1)[0] == pytest.approx(-0.018, abs=0.001)
    # 6 m usable width between the railings, railings 1.3 m high on both sides.
    rails = [e for e in tree.iter(f"{BRID}BridgeInstallation")]
    assert len(rails) == 10 and all(r.findtext(f"{BRID}function") == "Geländer" for r in rails)
    for rail in rails:
        s, xyz = stations(rail)
        per_station: dict[float, list[float]] = {}
        for key, z in zip(np.round(s, 1).tolist(), xyz[:, 2].tolist(), strict=True):
            per_station.setdefault(key, []).append(z)
        assert all(max(v) - min(v) == pytest.approx(1.3, abs=0.002)
                   for v in per_station.values())
        # The railings stand outside the 6 m usable width.
        offset = shapely.distance(axis, shapely.points(xyz[:, :2]))
        assert offset.min() >= 3.0
    piers = [e for e in tree.iter(f"{BRID}BridgeConstructionElement")
             if e.findtext(f"{BRID}function") == "Pfeiler"]
    piles = [e for e in tree.iter(f"{BRID}BridgeConstructionElement")
             if e.findtext(f"{BRID}function") == "Anfahrschutz"]
    assert len(piers) >= 10 and len(piles) >= 4
    assert "Am Strande" in parts["Warnowbruecke_am-strande"].findtext(f"{GML}name")


def test_bridge_builds_and_every_element_arrives(data: Path, tmp_path: Path) -> None:
    path = data / "geplant" / "Warnowbruecke_LoD2.gml"
    tree = etree.parse(str(path))
    rings = [len(p.text.split()) // 3 - 1 for p in tree.iter(f"{GML}posList")]
    [bridge] = list(CityGMLReader(path))
    assert bridge.cls == "Bridge" and bridge.attributes["name"] == "Warnowbrücke"
    assert bridge.attributes["Status"] == "geplant"
    assert bridge.attributes["Laenge_m"] == pytest.approx(541.16)
    assert len(bridge.surfaces) == len(rings)
    ids = set(bridge.part_ids)
    assert {"Warnowbruecke_klappbruecke", "Warnowbruecke_fest-sued",
            "Warnowbruecke_am-strande", "Warnowbruecke_klappbruecke_gelaender-west",
            "Warnowbruecke_pfeiler-01"} <= ids
    kinds = {s.kind for s in bridge.surfaces}
    assert {"outer_floor", "outer_ceiling", "wall", "closure", "other"} <= kinds
    report = build_citygml([path], tmp_path / "bridge")
    assert report.features == 1 and report.degenerate_rings == 0
    assert report.flipped_shells == 0 and report.unresolved_xlinks == 0
    assert report.triangles == sum(n - 2 for n in rings)
    lon, lat, _ = report.origin_lon_lat_h
    assert 12.13 <= lon <= 12.14 and 54.09 <= lat <= 54.10


# --- the world API -------------------------------------------------------------------------------


def test_world_api_matches_world_json(world: World, document: dict,
                                      river: shapely.Polygon) -> None:
    assert document["seed"] == SEED and document["options"] == {"density": DENSITY}
    assert shapely.equals_exact(shapely.normalize(river), world.river, tolerance=0.001)
    e = np.array([312244.0, 312935.0, 311884.0])
    n = np.array([5997168.0, 5997215.0, 5998631.0])
    h = world.terrain_height(e, n)
    assert h.shape == (3,)
    assert 11.0 <= h[0] <= 13.0 and 13.0 <= h[1] <= 18.0 and 8.0 <= h[2] <= 12.0
    places = {p["id"]: p for p in document["places"]}
    assert places["kroepeliner-tor"]["height"] == pytest.approx(float(h[0]), abs=0.001)
    assert all(p["source"] for p in document["places"])
    assert world.is_water(312600.0, 5997900.0) and not world.is_water(312244.0, 5997168.0)
    # Gehlsdorf's shore promenade is low, the Stadthafen's quay at 2.5-3 m.
    assert 2.0 <= float(world.terrain_height(312300.0, 5998120.0)) <= 4.0
    assert 2.5 <= float(world.terrain_height(312400.0, 5997695.0)) <= 3.0
