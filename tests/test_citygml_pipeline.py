"""CityGML → 3D Tiles end to end: every shared sample, placement, orientation, determinism,
bad input through the command line, and atomic publishing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from tests.citygml_samples import box_polygons, building_xml, tall_tower, write_citygml
from twin.crs import ecef_transformer, parse_srs_name
from twin.errors import FormatError
from twin.pipeline import CityGMLOptions, build_citygml
from twin.readers.citygml import CityGMLReader
from twin.readers.gltf import read_glb
from twin.validate import validate_tileset

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CITYGML = sorted((SHARED / "citygml").rglob("*.gml"))

# Files that have no usable CRS by design: they must fail with the documented message.
NO_CRS = {
    "Building_LOD1-LocalEngineeringCRS.gml",  # srsName="#local-CRS-1", an engineering CRS
    "LocalCRS_CityGML3.gml",
    "Road_over_Bridge_CityGML3.0_LOD2_with_CityObjectRelations.gml",  # no srsName at all
    "historicalSuccession_CityGML_3.0_LOD2_Versioning.gml",  # no srsName at all
}


def tileset_vertices(tileset_dir: Path) -> list[tuple[str, np.ndarray, dict]]:
    """Decode every GLB of a tileset to ECEF: (uri, vertices, tile json)."""
    doc = json.loads((tileset_dir / "tileset.json").read_text())
    transform = np.array(doc["root"]["transform"], dtype=np.float64).reshape(4, 4).T
    out = []

    def walk(tile: dict) -> None:
        uri = tile["content"]["uri"]
        glb = read_glb((tileset_dir / uri).read_bytes(), source=uri)
        for prim in glb.primitives:
            local = prim.positions
            ecef = local @ transform[:3, :3].T + transform[:3, 3]
            out.append((uri, ecef, tile))
        for child in tile.get("children", []):
            walk(child)

    walk(doc["root"])
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Build every shared CityGML sample that has a CRS, once per test module."""
    out = {}
    base = tmp_path_factory.mktemp("citygml")
    for path in CITYGML:
        if path.name in NO_CRS:
            continue
        target = base / path.stem
        build_citygml([path], target)
        out[path.name] = target
    return out


@pytest.mark.parametrize("path", CITYGML, ids=lambda p: p.name)
def test_every_shared_sample_builds_valid_or_fails_clearly(path: Path, built, tmp_path):
    if path.name in NO_CRS:
        with pytest.raises(Exception) as info:
            build_citygml([path], tmp_path / "out")
        assert "--crs" in str(info.value) and path.name in str(info.value)
        assert not (tmp_path / "out").exists()
        return
    target = built[path.name]
    report = validate_tileset(target / "tileset.json")
    assert report.ok, report.errors[:5]
    assert report.glbs >= 1
    doc = json.loads((target / "tileset.json").read_text())
    assert doc["asset"]["version"] == "1.1"
    meta = doc["metadata"]["properties"]
    assert meta["vertical_error_m"] >= 0 and meta["vertical_model"]


def test_local_crs_file_builds_with_explicit_crs(tmp_path):
    path = SHARED / "citygml/ogc-fzk-haus/v2/Building_LOD1-LocalEngineeringCRS.gml"
    report = build_citygml([path], tmp_path / "out", CityGMLOptions(crs="EPSG:25832+5783"))
    assert report.objects == {"Building": 1, "ReliefFeature": 1}
    assert validate_tileset(tmp_path / "out/tileset.json").ok


def test_bridge_builds_with_explicit_crs(tmp_path):
    path = (
        SHARED / "citygml/ogc-examples"
        / "Road_over_Bridge_CityGML3.0_LOD2_with_CityObjectRelations.gml"
    )
    report = build_citygml([path], tmp_path / "out", CityGMLOptions(crs="EPSG:25833+7837"))
    assert report.objects.get("Bridge") == 1
    assert validate_tileset(tmp_path / "out/tileset.json").ok
    glb = read_glb((tmp_path / "out/tiles/0-0-0.glb").read_bytes())
    assert "Bridge" in list(glb.property_tables[0]["citygml_class"])


def test_placement_round_trip_fzk_haus(built):
    """Decoded tile vertices, taken back to EPSG:25832+DHHN92, hit the source vertices."""
    path = SHARED / "citygml/ogc-fzk-haus/v2/Building_LOD2-EPSG25832.gml"
    source = np.concatenate(
        [s.exterior for obj in CityGMLReader(path) for s in obj.surfaces]
    )
    srs = parse_srs_name("urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::5783")
    back_parts = []
    for _uri, ecef, tile in tileset_vertices(built[path.name]):
        if "children" not in tile:  # leaves hold the full geometry
            back_parts.append(ecef_transformer(srs).from_ecef(ecef))
    back = np.concatenate(back_parts)
    _, idx = cKDTree(source).query(back)
    horizontal = np.linalg.norm(back[:, :2] - source[idx, :2], axis=1)
    assert horizontal.max() <= 0.01  # ≤ 1 cm horizontally
    # Heights: the same geoid model both ways, so only float32 rounding remains (the model's
    # own error, ±1 m for EGM96, is an offset of the whole city, not a round-trip error).
    assert np.abs(back[:, 2] - source[idx, 2]).max() <= 0.01
    # And every source vertex is present in the output.
    dist_back, _ = cKDTree(back).query(source)
    assert dist_back.max() <= 0.01


def test_potsdam_lands_in_potsdam(built):
    """97 LoD1 buildings of Potsdam: in Potsdam (52.39 N, 13.06 E), heights plausible."""
    from twin.crs import ecef_to_geodetic

    ecef = np.concatenate([v for _, v, t in tileset_vertices(built["Potsdam_LoD1.gml"])
                           if "children" not in t])
    lon, lat, h = ecef_to_geodetic(ecef)
    assert 13.0 < lon.min() and lon.max() < 13.12
    assert 52.35 < lat.min() and lat.max() < 52.43
    # DHHN92 heights of 30-100 m plus a geoid undulation of ~40 m at Potsdam.
    assert 60 < h.min() and h.max() < 200


def test_tall_thin_tower_stays_upright(tmp_path):
    gml = tall_tower(tmp_path / "tower.gml")
    out = tmp_path / "out"
    build_citygml([gml], out)
    from twin.crs import ecef_to_enu_matrix, geodetic_to_ecef

    leaves = [v for _, v, t in tileset_vertices(out) if "children" not in t]
    ecef = np.concatenate(leaves)
    centre = ecef.mean(axis=0)
    enu = ecef @ ecef_to_enu_matrix(centre)[:3, :3].T + ecef_to_enu_matrix(centre)[:3, 3]
    extent = np.ptp(enu, axis=0)
    # UTM grid north is ~2.3° off true north at 12.13° E (meridian convergence), so measure
    # the footprint by its diagonal, which does not depend on the rotation: 4 m × √2.
    horizontal = enu[:, :2]
    diagonal = np.max(np.linalg.norm(horizontal[:, None] - horizontal[None, :], axis=2))
    assert diagonal == pytest.approx(4.0 * np.sqrt(2.0), abs=0.02)
    assert extent[2] == pytest.approx(60.0, abs=0.02)
    # Up is up: the tower's top is farther from the Earth's centre than its foot.
    top = ecef[np.argmax(enu[:, 2])]
    foot = ecef[np.argmin(enu[:, 2])]
    assert np.linalg.norm(top) - np.linalg.norm(foot) == pytest.approx(60.0, abs=0.1)
    # In the glTF itself (Y-up) the tall axis is Y.
    glb = read_glb((out / "tiles/0-0-0.glb").read_bytes())
    raw = glb.json["accessors"][glb.json["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    scale = glb.json["nodes"][0].get("scale", [1.0, 1.0, 1.0])  # KHR_mesh_quantization
    span = (np.array(raw["max"]) - np.array(raw["min"])) * np.array(scale)
    assert span[1] == pytest.approx(60.0, abs=0.02) and span[0] < 5 and span[2] < 5
    # At the Kröpeliner Tor (54.0884 N, 12.1292 E).
    from twin.crs import ecef_to_geodetic

    lon, lat, _ = ecef_to_geodetic(foot[None, :])
    assert lat[0] == pytest.approx(54.0884, abs=3e-4) and lon[0] == pytest.approx(12.1292, abs=3e-4)
    assert np.allclose(geodetic_to_ecef(lon, lat, 0 * lon), geodetic_to_ecef(lon, lat, 0 * lon))


def test_deterministic_bytes(tmp_path):
    gml = ROOT / "scenes/data/LoD2_33_312_5998_2_MV.gml"
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        build_citygml([gml], out, CityGMLOptions(max_features_per_tile=40))
        files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "build-report.json")
        digests.append({str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in files})
    assert digests[0] == digests[1]
    assert len(digests[0]) > 4  # a real tree, not one tile


def test_sample_tree_has_lod_parents(tmp_path):
    gml = ROOT / "scenes/data/LoD2_33_312_5998_2_MV.gml"
    out = tmp_path / "out"
    report = build_citygml([gml], out, CityGMLOptions(max_features_per_tile=40))
    assert report.features == 120 and report.objects == {"Building": 120}
    doc = json.loads((out / "tileset.json").read_text())
    root = doc["root"]
    assert root["refine"] == "REPLACE" and root["children"]
    # Parents declare the LoD1 error (roof heights) or, where they leave buildings out, the
    # size of the largest one left out: metres to tens of metres; leaves 0; non-increasing.
    # Deterministic: this sample's root declares 36.363 m; its children are leaves (0 m).
    assert root["geometricError"] == pytest.approx(36.363, abs=0.001)
    assert all(child["geometricError"] == 0.0 for child in root["children"])
    assert doc["geometricError"] >= root["geometricError"]

    def check(tile):
        for child in tile.get("children", []):
            assert child["geometricError"] <= tile["geometricError"]
            check(child)
        if "children" not in tile:
            assert tile["geometricError"] == 0

    check(root)
    # Picking: every leaf has a property table with gml ids and M-V attributes.
    glb = read_glb((out / root["children"][0]["content"]["uri"]).read_bytes())
    table = glb.property_tables[0]
    assert all(str(g).startswith("DEMVAL") for g in table["gml_id"])
    assert set(table["function"]) <= {"31001_1000", "31001_1010", "31001_1020", "31001_2000",
                                      "31001_2020", "31001_2050", "31001_2100", "31001_3000",
                                      "31001_3020", "31001_3065", "31001_9998"}
    assert all(h > 0 for h in table["measuredHeight"])


def test_existing_output_untouched_on_failure(tmp_path):
    out = tmp_path / "out"
    build_citygml([tall_tower(tmp_path / "t.gml")], out)
    before = (out / "tileset.json").read_bytes()
    bad = tmp_path / "bad.gml"
    bad.write_text("<core:CityModel xmlns:core='http://www.opengis.net/citygml/2.0'><oops>")
    with pytest.raises(FormatError, match="malformed XML"):
        build_citygml([bad], out)
    assert (out / "tileset.json").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".twin-tmp-")]


# --- the command line: exit codes, one clear line, nothing written -----------------------

def twin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


XXE = """<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0"><gml:name>&xxe;</gml:name></core:CityModel>
"""
BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0">&lol3;</core:CityModel>
"""


def two_point_polygon(path: Path) -> Path:
    surfaces = box_polygons(312244.0, 5997168.0, 10.0, 4.0, 4.0, 6.0)
    surfaces["WallSurface"].append([(312244.0, 5997168.0, 10.0), (312245.0, 5997168.0, 10.0),
                                    (312244.0, 5997168.0, 10.0)])
    return write_citygml(path, [building_xml("bad_building", surfaces)])


BAD_INPUTS = {
    "malformed": (lambda p: p.write_text(
        '<?xml version="1.0"?>\n<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0">\n'
        "<core:cityObjectMember>\n</core:CityModel>\n") and p, "line"),
    "xxe": (lambda p: p.write_text(XXE) and p, "DOCTYPE"),
    "bomb": (lambda p: p.write_text(BOMB) and p, "DOCTYPE"),
    "unknown_crs": (lambda p: write_citygml(
        p, [building_xml("b", box_polygons(0, 0, 0, 4, 4, 4))], srs="urn:example:crs:made-up"),
        "--crs"),
    "no_crs": (lambda p: write_citygml(
        p, [building_xml("b", box_polygons(0, 0, 0, 4, 4, 4))], srs=None), "--crs"),
    "empty": (lambda p: p.write_bytes(b"") or p, "empty"),
    "las": (lambda p: p.write_bytes((SHARED / "lidar/laspy/simple.las").read_bytes()) or p, "LAS"),
    "two_points": (two_point_polygon, "bad_building"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_clear_line_exit_1_nothing_written(case, tmp_path):
    make, needle = BAD_INPUTS[case]
    path = tmp_path / f"{case}.gml"
    make(path)
    out = tmp_path / "out"
    result = twin("build", "citygml", str(path), "--out", str(out))
    assert result.returncode == 1, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("twin: error: ") and path.name in lines[0] and needle in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".twin-tmp-")]


def test_skip_invalid_drops_and_counts(tmp_path):
    path = two_point_polygon(tmp_path / "two.gml")
    result = twin("build", "citygml", str(path), "--out", str(tmp_path / "out"),
                  "--skip-invalid", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["degenerate_rings"] == 1 and report["features"] == 1


def test_usage_error_exit_2(tmp_path):
    result = twin("build", "citygml", "--out", str(tmp_path / "o"))
    assert result.returncode == 2


def test_cli_info_and_validate(tmp_path):
    gml = ROOT / "scenes/data/LoD2_33_312_5998_2_MV.gml"
    result = twin("info", str(gml))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["version"] == "1.0" and info["objects"] == {"Building": 120}
    assert info["crs"]["srsName"] == "urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH"
    lo, hi = info["bounds"]
    assert 311000 < lo[0] < hi[0] < 313000 and 5997000 < lo[1] < hi[1] < 5999000
    out = tmp_path / "out"
    assert twin("build", "citygml", str(gml), "--out", str(out)).returncode == 0
    result = twin("validate", str(out))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    # Break a tile: validate must fail with exit 1.
    glb = next((out / "tiles").glob("*.glb"))
    glb.write_bytes(glb.read_bytes()[:100])
    result = twin("validate", str(out))
    assert result.returncode == 1


def test_parallel_shards_give_identical_bytes(tmp_path, monkeypatch):
    """Reading in many shards on two worker processes changes nothing in the output."""
    import twin.pipeline.citygml as pipeline

    gml = ROOT / "scenes/data/LoD2_33_312_5998_2_MV.gml"
    whole = tmp_path / "whole"
    build_citygml([gml], whole, CityGMLOptions(max_features_per_tile=40, workers=1))
    monkeypatch.setattr(pipeline, "_SHARD_BYTES", 150_000)
    from twin.readers.citygml import plan_shards

    assert len(plan_shards(gml, 150_000)) >= 6
    sharded = tmp_path / "sharded"
    report = build_citygml([gml], sharded, CityGMLOptions(max_features_per_tile=40, workers=2))
    assert report.features == 120
    for path in sorted(whole.rglob("*")):
        if path.is_file() and path.name != "build-report.json":
            assert path.read_bytes() == (sharded / path.relative_to(whole)).read_bytes(), path


def test_fragment_deep_in_a_file_keeps_line_numbers(tmp_path):
    """A shard after more than a million lines reports the file's own line numbers (libxml2
    counts from the shard's start; the reader adds the lines before it)."""
    from twin.readers.citygml import CityGMLReader, plan_shards

    first = building_xml("first", box_polygons(312244.0, 5997168.0, 10.0, 4.0, 4.0, 6.0))
    second = building_xml("second", box_polygons(312260.0, 5997168.0, 10.0, 4.0, 4.0, 6.0))
    comment = "<!--" + "\n" * 1_100_000 + "-->\n"
    path = write_citygml(tmp_path / "deep.gml", [first + comment, second])
    shards = plan_shards(path, 1 << 20)
    assert len(shards) == 2
    [obj] = list(CityGMLReader(path, fragment=shards[1]))
    whole = list(CityGMLReader(path))[1]
    assert obj.gml_id == whole.gml_id == "second"
    # The same line numbers as reading the whole file, far beyond the first million.
    assert [s.line for s in obj.surfaces] == [s.line for s in whole.surfaces]
    assert obj.surfaces[0].line > 1_100_000
