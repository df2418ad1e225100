"""Tileset validation: official schemas, Khronos glTF validator, containment, tree rules.

Every tileset here is written by hand in tmp_path: a root tile with an ENU-to-ECEF transform
at Rostock and box bounding volumes in that local frame, GLBs from twin.writers.gltf.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyproj import Transformer

from tests.test_gltf import BUILDING_SCHEMA, make_box_mesh, make_point_cloud, two_buildings
from twin.errors import ToolMissingError
from twin.validate import (
    ValidationReport,
    find_node_modules,
    find_schemas_dir,
    validate_tileset,
)
from twin.writers.gltf import write_glb

ROSTOCK_LON, ROSTOCK_LAT, ROSTOCK_HEIGHT = 12.1292, 54.0884, 40.0  # Kröpeliner Tor


def enu_to_ecef(lon_deg: float, lat_deg: float, height: float) -> np.ndarray:
    """4x4 matrix from a local east-north-up frame at a WGS84 point to ECEF."""
    x, y, z = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True).transform(
        lon_deg, lat_deg, height
    )
    lon, lat = math.radians(lon_deg), math.radians(lat_deg)
    east = [-math.sin(lon), math.cos(lon), 0.0]
    north = [-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon), math.cos(lat)]
    up = [math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)]
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = east, north, up, (x, y, z)
    return matrix


ROSTOCK = enu_to_ecef(ROSTOCK_LON, ROSTOCK_LAT, ROSTOCK_HEIGHT)
ROSTOCK_TRANSFORM = ROSTOCK.T.reshape(-1).tolist()  # 3D Tiles stores matrices column-major


def box(center: Any, half: Any) -> dict[str, list[float]]:
    """An axis-aligned box bounding volume."""
    cx, cy, cz = (float(v) for v in center)
    hx, hy, hz = (float(v) for v in half)
    return {"box": [cx, cy, cz, hx, 0, 0, 0, hy, 0, 0, 0, hz]}


def write_json(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def tileset(root: dict[str, Any], *, geometric_error: float = 500.0) -> dict[str, Any]:
    return {"asset": {"version": "1.1"}, "geometricError": geometric_error, "root": root}


def write_sample_tileset(directory: Path) -> Path:
    """A valid tileset at Rostock: buildings (triangles + metadata), a point cloud and an
    external tileset in a subfolder with its own relative content URI."""
    buildings, table = two_buildings(origin=(30.0, 40.0, 0.0))
    (directory / "tiles").mkdir(parents=True)
    (directory / "tiles/buildings.glb").write_bytes(
        write_glb(buildings, schema=BUILDING_SCHEMA, table=table)
    )
    (directory / "tiles/points.glb").write_bytes(
        write_glb(make_point_cloud(200, origin=(-50.0, -50.0, 5.0)))
    )
    (directory / "sub/tiles").mkdir(parents=True)
    (directory / "sub/tiles/shed.glb").write_bytes(
        write_glb(make_box_mesh((60, -60, 2), (4, 4, 4), origin=(60.0, -60.0, 0.0)))
    )
    write_json(
        directory / "sub/tileset.json",
        tileset(
            {
                "boundingVolume": box((60, -60, 2), (3, 3, 3)),
                "geometricError": 0.0,
                "refine": "ADD",
                "content": {"uri": "tiles/shed.glb"},
            },
            geometric_error=20.0,
        ),
    )
    root = {
        "transform": ROSTOCK_TRANSFORM,
        "boundingVolume": box((0, 0, 20), (100, 100, 50)),
        "geometricError": 50.0,
        "refine": "ADD",
        "children": [
            {
                # The two boxes span x -5..23, y -4..8, z 0..30 (the origin only shifts
                # the stored float32 coordinates).
                "boundingVolume": box((9, 2, 15), (14, 6, 15)),
                "geometricError": 0.0,
                "content": {"uri": "tiles/buildings.glb"},
            },
            {
                "boundingVolume": box((-50, -50, 5), (5, 5, 5)),
                "geometricError": 0.0,
                "content": {
                    "uri": "tiles/points.glb",
                    "boundingVolume": box((-50, -50, 5), (5, 5, 5)),
                },
            },
            {
                "boundingVolume": box((60, -60, 2), (5, 5, 5)),
                "geometricError": 10.0,
                "content": {"uri": "sub/tileset.json"},
            },
        ],
    }
    return write_json(directory / "tileset.json", tileset(root))


def edit(path: Path, change: Any) -> None:
    """Apply ``change(document)`` to a JSON file in place."""
    document = json.loads(path.read_text())
    change(document)
    write_json(path, document)


def only(report: ValidationReport, needle: str) -> list[str]:
    return [e for e in report.errors if needle in e]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample_tileset(tmp_path / "tiles_out")


# --------------------------------------------------------------------------------------------


def test_sample_tileset_is_valid_without_warnings(sample: Path) -> None:
    report = validate_tileset(sample)
    assert report.errors == []
    assert report.warnings == []
    assert report.ok
    assert report.tiles == 5  # root, 3 children, the external root
    assert report.glbs == 3


def test_one_validator_process_for_all_glbs(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(args: list[str], **kwargs: Any) -> Any:
        calls.append(args)
        return real_run(args, **kwargs)

    monkeypatch.setattr("twin.validate.subprocess.run", counting_run)
    assert validate_tileset(sample.parent).ok  # the folder works as well as its tileset.json
    assert len(calls) == 1 and calls[0][1].endswith("gltf_validator.mjs")


def test_schema_errors_and_version(sample: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        del doc["root"]["children"][0]["geometricError"]
        doc["asset"]["version"] = "2.0"
        doc["root"]["children"][1]["refine"] = "SOMETIMES"

    edit(sample, change)
    report = validate_tileset(sample, gltf=False)
    assert not report.ok
    assert only(report, "'geometricError' is a required property (/root/children/0)")
    assert only(report, "asset.version is '2.0', expected '1.1' (/asset/version)")
    assert only(report, "(/root/children/1/refine)")
    assert all(e.startswith("tileset.json: ") for e in report.errors)


def test_schema_errors_in_external_tileset(sample: Path) -> None:
    edit(sample.parent / "sub/tileset.json", lambda d: d["root"].pop("boundingVolume"))
    report = validate_tileset(sample, gltf=False)
    [error] = report.errors
    assert error.startswith("sub/tileset.json: schema: 'boundingVolume' is a required property")


def test_vertex_outside_its_tile_box(sample: Path) -> None:
    # The shed now reaches z = 8; its tile (the external root) only z = 2 + 3 = 5.
    (sample.parent / "sub/tiles/shed.glb").write_bytes(
        write_glb(make_box_mesh((60, -60, 4), (4, 4, 8), origin=(60.0, -60.0, 0.0)))
    )
    report = validate_tileset(sample)
    errors = only(report, "containment")
    assert len(errors) == 1
    assert errors[0].startswith("sub/tiles/shed.glb: containment: 12 of 24 vertices")
    assert "tile boundingVolume (box), worst by 3.000 m" in errors[0]
    assert errors[0].endswith("(sub/tileset.json /root/content)")


def test_vertex_outside_content_bounding_volume(sample: Path) -> None:
    edit(
        sample,
        lambda d: d["root"]["children"][1]["content"].update(
            boundingVolume=box((-50, -50, 5), (5, 5, 4))
        ),
    )
    errors = only(validate_tileset(sample, gltf=False), "containment")
    assert len(errors) == 1 and "content boundingVolume (box)" in errors[0]
    assert "(tileset.json /root/children/1/content)" in errors[0]


def test_child_box_sticking_out_of_its_parent(sample: Path) -> None:
    edit(
        sample,
        lambda d: d["root"]["children"][1].update(boundingVolume=box((-95, -50, 5), (10, 5, 5))),
    )
    report = validate_tileset(sample, gltf=False)
    [error] = only(report, "sticks out")
    assert error == (
        "tileset.json: containment: boundingVolume (box) sticks out of the parent tile's box "
        "at tileset.json /root by 5.000 m (/root/children/1/boundingVolume)"
    )


def test_external_root_must_fit_the_referring_tile(sample: Path) -> None:
    edit(
        sample.parent / "sub/tileset.json",
        lambda d: d["root"].update(boundingVolume=box((60, -60, 2), (3, 3, 10))),
    )
    [error] = only(validate_tileset(sample, gltf=False), "sticks out")
    assert error.startswith("sub/tileset.json: containment")
    assert "tileset.json /root/children/2/content by 5.000 m" in error


def test_rotated_child_box_corners_are_checked(sample: Path) -> None:
    # A 20 x 20 box turned 45 degrees about Z (holding the 10 x 10 point cloud): its corners
    # reach 14.14 m from the centre along x and y.
    c = math.sqrt(0.5) * 10
    turned = {"box": [-50, -50, 5, c, c, 0, -c, c, 0, 0, 0, 5]}
    edit(sample, lambda d: d["root"]["children"][1].update(boundingVolume=turned))
    assert validate_tileset(sample, gltf=False).ok
    edit(sample, lambda d: d["root"]["children"][1]["boundingVolume"]["box"].__setitem__(0, -95))
    [error] = only(validate_tileset(sample, gltf=False), "sticks out")
    assert f"by {95 + 10 * math.sqrt(2) - 100:.3f} m" in error


def test_corrupt_glb_is_reported_by_the_khronos_validator(sample: Path) -> None:
    path = sample.parent / "tiles/buildings.glb"
    path.write_bytes(path.read_bytes()[:-64])
    report = validate_tileset(sample)
    khronos = [e for e in report.errors if "glTF validator" in e]
    assert khronos and all(e.startswith("tiles/buildings.glb: glTF validator ") for e in khronos)
    assert only(report, "tiles/buildings.glb: ") and only(report, "decoding for tileset.json")


def test_invalid_gltf_content_is_an_error(sample: Path) -> None:
    """A structurally readable GLB that breaks glTF rules (min/max do not match the data)."""
    from tests.test_gltf import build_glb, glb_parts

    path = sample.parent / "tiles/points.glb"
    gltf, binary, _ = glb_parts(path.read_bytes())
    gltf["accessors"][0]["max"] = [100.0, 100.0, 100.0]
    path.write_bytes(build_glb(gltf, binary))
    errors = [e for e in validate_tileset(sample).errors if "glTF validator" in e]
    assert errors[0].startswith("tiles/points.glb: glTF validator ACCESSOR_MAX_MISMATCH")
    assert errors[0].endswith("(glTF /accessors/0/max/0)")


def test_geometric_error_must_not_grow_and_root_needs_refine(sample: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["root"]["children"][0]["geometricError"] = 80.0
        del doc["root"]["refine"]

    edit(sample, change)
    report = validate_tileset(sample, gltf=False)
    assert only(report, "geometricError 80.0 is larger than 50.0")
    assert only(report, "the root tile has no refine")


def test_missing_content_and_cycles(sample: Path) -> None:
    edit(sample, lambda d: d["root"]["children"][0]["content"].update(uri="tiles/nope.glb"))
    edit(
        sample.parent / "sub/tileset.json",
        lambda d: d["root"]["content"].update(uri="../tileset.json"),
    )
    report = validate_tileset(sample, gltf=False)
    assert only(report, "tileset.json: content file 'tiles/nope.glb' does not exist")
    assert only(report, "sub/tileset.json: external tileset '../tileset.json' refers back")


def test_region_and_sphere_volumes(tmp_path: Path) -> None:
    """Regions are geodetic (no transform); spheres follow the transform."""
    cloud = make_point_cloud(100, origin=(0.0, 0.0, 0.0), extent=20.0)
    (tmp_path / "p.glb").write_bytes(write_glb(cloud))
    corners = np.array([[x, y, z] for x in (-20, 20) for y in (-20, 20) for z in (-20, 20)])
    ecef = corners @ ROSTOCK[:3, :3].T + ROSTOCK[:3, 3]
    lon, lat, h = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True).transform(
        ecef[:, 0], ecef[:, 1], ecef[:, 2]
    )
    region = [
        math.radians(lon.min()),
        math.radians(lat.min()),
        math.radians(lon.max()),
        math.radians(lat.max()),
        float(h.min()),
        float(h.max()),
    ]
    root = {
        "transform": ROSTOCK_TRANSFORM,
        "boundingVolume": {"region": region},
        "geometricError": 10.0,
        "refine": "REPLACE",
        "children": [
            {
                "boundingVolume": {"sphere": [0, 0, 0, 17.4]},
                "geometricError": 0.0,
                "content": {"uri": "p.glb"},
            }
        ],
    }
    path = write_json(tmp_path / "tileset.json", tileset(root))
    report = validate_tileset(path)
    assert report.ok, report.errors

    small = copy.deepcopy(root)
    small["boundingVolume"]["region"][5] = float(h.max()) - 8.0  # below the sphere top
    small["children"][0]["boundingVolume"]["sphere"][3] = 15.0  # sqrt(300) = 17.32 needed
    write_json(path, tileset(small))
    report = validate_tileset(path, gltf=False)
    assert only(report, "sticks out of the parent tile's region")
    assert only(report, "p.glb: containment")
    assert only(report, "tile boundingVolume (sphere)")


def test_tolerance_allows_float32_rounding(tmp_path: Path) -> None:
    """A box that fits the float64 geometry exactly also accepts the float32 GLB."""
    mesh = make_box_mesh(
        (1000.123456, -2000.654321, 33.3),
        (12.3456789, 7.654321, 9.87654321),
        origin=(1000.0, -2000.0, 30.0),
    )
    (tmp_path / "b.glb").write_bytes(write_glb(mesh))
    bv = box((1000.123456, -2000.654321, 33.3), (12.3456789 / 2, 7.654321 / 2, 9.87654321 / 2))
    root = {
        "transform": ROSTOCK_TRANSFORM,
        "boundingVolume": bv,
        "geometricError": 0.0,
        "refine": "ADD",
        "content": {"uri": "b.glb"},
    }
    assert validate_tileset(write_json(tmp_path / "tileset.json", tileset(root))).ok


def test_missing_tools_say_how_to_fix(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_NODE_MODULES", str(tmp_path / "empty"))
    with pytest.raises(ToolMissingError, match="setup command"):
        validate_tileset(sample)
    assert validate_tileset(sample, gltf=False).ok  # no node needed without the glTF check
    monkeypatch.delenv("TWIN_NODE_MODULES")
    assert (find_node_modules() / "gltf-validator" / "package.json").is_file()
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match="node"):
        validate_tileset(sample)


def test_schemas_are_bundled_and_overridable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = find_schemas_dir()
    assert bundled.parts[-3:] == ("twin", "schemas", "3d-tiles-1.1")
    for name in ("LICENSE.adoc", "SOURCE.md", "tileset.schema.json", "Schema/schema.schema.json"):
        assert (bundled / name).is_file()
    monkeypatch.setenv("TWIN_3DTILES_SCHEMAS", str(tmp_path))
    with pytest.raises(ToolMissingError, match="TWIN_3DTILES_SCHEMAS"):
        find_schemas_dir()
    assert find_schemas_dir(bundled) == bundled


@pytest.mark.browser
def test_sample_tileset_loads_in_cesiumjs(render_tileset: Any, tmp_path: Path) -> None:
    """CesiumJS itself loads the triangles (with metadata), points and external tileset."""
    write_sample_tileset(tmp_path / "tiles_out")
    result = render_tileset(tmp_path / "tiles_out", pitch=-60.0)
    assert result.ok, result.summary()
    assert result.stats["numberOfTilesWithContentReady"] == 3, result.summary()
    assert result.content_fraction() > 0.001, result.summary()
