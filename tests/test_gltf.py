"""GLB writer and reader: round trips, axes, byte layout, determinism, metadata, and decoding
of hand-built GLBs with quantized, interleaved accessors and node hierarchies."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.errors import FormatError
from twin.readers.gltf import read_glb
from twin.writers.gltf import MeshContent, PropertyTable, write_glb

# --------------------------------------------------------------------------------------------
# Reusable sample content (also used by tests/test_validate.py)
# --------------------------------------------------------------------------------------------

BUILDING_SCHEMA: dict[str, Any] = {
    "id": "rostock_test",
    "classes": {
        "building": {
            "properties": {
                "name": {"type": "STRING", "noData": ""},
                "height": {"type": "SCALAR", "componentType": "FLOAT64", "noData": -9999.0},
                "storeys": {"type": "SCALAR", "componentType": "INT32", "noData": -1},
            }
        }
    },
}


def make_box_mesh(
    center: Any,
    size: Any,
    *,
    feature_id: int = 0,
    color: tuple[int, int, int, int] = (200, 80, 60, 255),
    origin: Any = (0.0, 0.0, 0.0),
) -> MeshContent:
    """An axis-aligned box (Z-up tile frame) with flat outward normals, 24 vertices, 12
    counter-clockwise triangles; positions relative to ``origin``."""
    center = np.asarray(center, dtype=np.float64)
    half = np.asarray(size, dtype=np.float64) / 2.0
    eye = np.eye(3)
    positions, normals, indices = [], [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            n = sign * eye[axis]
            u = eye[(axis + 1) % 3]
            v = np.cross(n, u)  # u x v = n: corners listed below run counter-clockwise
            base = len(positions)
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                positions.append(center + half * (n + a * u + b * v))
                normals.append(n)
            indices += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    count = len(positions)
    return MeshContent(
        positions=np.array(positions) - np.asarray(origin, dtype=np.float64),
        normals=np.array(normals, dtype=np.float32),
        colors=np.tile(np.array(color, dtype=np.uint8), (count, 1)),
        feature_ids=np.full(count, feature_id, dtype=np.uint32),
        indices=np.array(indices, dtype=np.uint32),
        origin=np.asarray(origin, dtype=np.float64),
    )


def combine_meshes(meshes: list[MeshContent]) -> MeshContent:
    """One primitive from several meshes with the same origin (indices offset)."""
    offsets = np.cumsum([0] + [len(m.positions) for m in meshes[:-1]])
    return MeshContent(
        positions=np.concatenate([m.positions for m in meshes]),
        normals=np.concatenate([m.normals for m in meshes]),  # type: ignore[misc]
        colors=np.concatenate([m.colors for m in meshes]),  # type: ignore[misc]
        feature_ids=np.concatenate([m.feature_ids for m in meshes]),  # type: ignore[misc]
        indices=np.concatenate([m.indices + o for m, o in zip(meshes, offsets, strict=True)]),  # type: ignore[operator]
        origin=meshes[0].origin,
    )


def two_buildings(origin: Any = (0.0, 0.0, 0.0)) -> tuple[MeshContent, PropertyTable]:
    """Two boxes as features 0 and 1 with a STRING/FLOAT64/INT32 property table."""
    mesh = combine_meshes(
        [
            make_box_mesh((0, 0, 5), (10, 8, 10), feature_id=0, origin=origin),
            make_box_mesh(
                (20, 5, 15), (6, 6, 30), feature_id=1, color=(90, 90, 200, 255), origin=origin
            ),
        ]
    )
    table = PropertyTable(
        "building",
        {
            "name": ["Kröpeliner Tor", "Haus 2"],
            "height": np.array([10.0, 30.25]),
            "storeys": np.array([3, -1], dtype=np.int32),
        },
    )
    return mesh, table


def make_point_cloud(
    count: int = 50, *, seed: int = 1, origin: Any = (0.0, 0.0, 0.0), extent: float = 10.0
) -> MeshContent:
    """Random points in a cube of ``extent`` metres around ``origin``, as a POINTS primitive."""
    rng = np.random.default_rng(seed)
    return MeshContent(
        positions=rng.uniform(-extent / 2, extent / 2, (count, 3)),
        normals=None,
        colors=rng.integers(0, 256, (count, 4), dtype=np.uint8) | np.uint8([0, 0, 0, 255]),
        feature_ids=None,
        indices=None,
        origin=np.asarray(origin, dtype=np.float64),
    )


def glb_parts(data: bytes) -> tuple[dict[str, Any], bytes, int]:
    """(JSON, BIN chunk, file offset of the BIN data), parsed independently of the reader."""
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A
    gltf = json.loads(data[20 : 20 + json_length])
    bin_length, bin_type = struct.unpack_from("<II", data, 20 + json_length)
    assert bin_type == 0x004E4942
    start = 28 + json_length
    return gltf, data[start : start + bin_length], start


def accessor_array(gltf: dict[str, Any], binary: bytes, index: int) -> np.ndarray:
    """A tightly packed accessor as numpy, read with the glTF rules only."""
    accessor = gltf["accessors"][index]
    view = gltf["bufferViews"][accessor["bufferView"]]
    dtype = {5121: "<u1", 5123: "<u2", 5125: "<u4", 5126: "<f4"}[accessor["componentType"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[accessor["type"]]
    start = view["byteOffset"] + accessor.get("byteOffset", 0)
    return np.frombuffer(binary, dtype, accessor["count"] * width, start).reshape(-1, width)


# --------------------------------------------------------------------------------------------
# Writer + reader
# --------------------------------------------------------------------------------------------


def test_box_mesh_winding_matches_normals() -> None:
    mesh = make_box_mesh((1, 2, 3), (2, 4, 6))
    tri = mesh.positions[mesh.indices]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (np.einsum("ij,ij->i", face_normals, mesh.normals[mesh.indices[:, 0]]) > 0).all()


def test_round_trip_two_buildings() -> None:
    origin = np.array([100.0, -50.0, 2.5])
    mesh, table = two_buildings(origin)
    decoded = read_glb(write_glb(mesh, schema=BUILDING_SCHEMA, table=table), source="t.glb")

    assert len(decoded.primitives) == 1
    prim = decoded.primitives[0]
    assert prim.mode == 4
    # Positions come back in the Z-up tile frame with the node translation (origin) applied.
    expected = mesh.positions.astype(np.float32).astype(np.float64) + origin
    np.testing.assert_allclose(prim.positions, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(prim.indices, mesh.indices)
    np.testing.assert_allclose(prim.normals, mesh.normals, atol=1e-7)
    np.testing.assert_allclose(prim.colors, mesh.colors / 255.0, atol=1e-12)
    np.testing.assert_array_equal(prim.feature_ids, mesh.feature_ids)
    assert sorted(prim.attributes) == ["COLOR_0", "NORMAL", "POSITION", "_FEATURE_ID_0"]

    [columns] = decoded.property_tables
    assert columns["name"] == ["Kröpeliner Tor", "Haus 2"]
    np.testing.assert_array_equal(columns["height"], [10.0, 30.25])
    assert columns["height"].dtype == np.float64
    np.testing.assert_array_equal(columns["storeys"], [3, -1])
    assert columns["storeys"].dtype == np.int32


def test_z_up_input_is_y_up_in_gltf_and_z_up_after_reading() -> None:
    mesh = MeshContent(
        positions=np.array([[0.0, 0.0, 10.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]),
        normals=np.array([[0.0, 0.0, 1.0]] * 3, dtype=np.float32),
        colors=None,
        feature_ids=None,
        indices=np.array([[1, 2, 0]], dtype=np.uint32),
        origin=np.array([5.0, 6.0, 7.0]),
    )
    data = write_glb(mesh)
    gltf, binary, _ = glb_parts(data)
    primitive = gltf["meshes"][0]["primitives"][0]
    positions = accessor_array(gltf, binary, primitive["attributes"]["POSITION"])
    # (x, y, z)_gltf = (x, z, -y)_tiles: up (+z) becomes +Y, north (+y) becomes -Z.
    np.testing.assert_array_equal(positions, [[0, 10, 0], [1, 0, 0], [0, 0, -2]])
    assert gltf["accessors"][primitive["attributes"]["POSITION"]]["max"] == [1, 10, 0]
    assert gltf["accessors"][primitive["attributes"]["POSITION"]]["min"] == [0, 0, -2]
    normals = accessor_array(gltf, binary, primitive["attributes"]["NORMAL"])
    np.testing.assert_array_equal(normals, [[0, 1, 0]] * 3)
    assert gltf["nodes"] == [{"mesh": 0, "translation": [5.0, 7.0, -6.0]}]

    prim = read_glb(data).primitives[0]
    np.testing.assert_allclose(prim.positions, mesh.positions + mesh.origin, atol=1e-12)
    assert prim.positions[0, 2] == 17.0  # z = +10 relative to the origin's z = 7
    np.testing.assert_allclose(prim.normals, mesh.normals, atol=1e-12)


def test_writes_are_byte_identical() -> None:
    mesh, table = two_buildings((1.0, 2.0, 3.0))
    first = write_glb(mesh, schema=BUILDING_SCHEMA, table=table)
    again_mesh, again_table = two_buildings((1.0, 2.0, 3.0))
    assert write_glb(again_mesh, schema=BUILDING_SCHEMA, table=again_table) == first
    assert write_glb(make_point_cloud()) == write_glb(make_point_cloud())


def test_layout_alignment_padding_and_json_shape() -> None:
    mesh, table = two_buildings()
    data = write_glb(mesh, schema=BUILDING_SCHEMA, table=table, generator="test 1.0")
    gltf, binary, bin_start = glb_parts(data)
    json_length = struct.unpack_from("<I", data, 12)[0]
    raw_json = data[20 : 20 + json_length]
    assert raw_json == raw_json.rstrip() + b" " * (len(raw_json) - len(raw_json.rstrip()))
    assert b": " not in raw_json and b", " not in raw_json  # compact separators
    assert bin_start % 8 == 0 and len(data) % 8 == 0 and len(binary) % 8 == 0
    assert all(view["byteOffset"] % 8 == 0 for view in gltf["bufferViews"])
    assert gltf["buffers"] == [{"byteLength": len(binary)}]
    assert gltf["asset"] == {"generator": "test 1.0", "version": "2.0"}
    assert gltf["extensionsUsed"] == ["EXT_mesh_features", "EXT_structural_metadata"]
    assert "extensionsRequired" not in gltf
    assert gltf["scenes"] == [{"nodes": [0]}] and gltf["scene"] == 0

    primitive = gltf["meshes"][0]["primitives"][0]
    assert primitive["mode"] == 4
    assert primitive["extensions"]["EXT_mesh_features"] == {
        "featureIds": [{"featureCount": 2, "attribute": 0, "propertyTable": 0}]
    }
    accessors = gltf["accessors"]
    assert accessors[primitive["indices"]]["componentType"] == 5123  # UNSIGNED_SHORT
    color = accessors[primitive["attributes"]["COLOR_0"]]
    assert (color["componentType"], color["type"], color["normalized"]) == (5121, "VEC4", True)
    assert accessors[primitive["attributes"]["_FEATURE_ID_0"]]["componentType"] == 5126

    [material] = gltf["materials"]
    assert material == {
        "pbrMetallicRoughness": {
            "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
            "metallicFactor": 0.0,
            "roughnessFactor": 0.9,
        },
        "doubleSided": False,
    }

    metadata = gltf["extensions"]["EXT_structural_metadata"]
    assert metadata["schema"] == BUILDING_SCHEMA
    [table_json] = metadata["propertyTables"]
    assert table_json["class"] == "building" and table_json["count"] == 2
    name = table_json["properties"]["name"]
    assert name["stringOffsetType"] == "UINT32"
    view = gltf["bufferViews"][name["stringOffsets"]]
    offsets = np.frombuffer(binary, "<u4", 3, view["byteOffset"])
    first = len("Kröpeliner Tor".encode())
    assert list(offsets) == [0, first, first + len(b"Haus 2")]
    view = gltf["bufferViews"][table_json["properties"]["storeys"]["values"]]
    assert view["byteLength"] == 8
    assert list(np.frombuffer(binary, "<i4", 2, view["byteOffset"])) == [3, -1]


def test_position_min_max_are_the_stored_float32_values() -> None:
    mesh = make_box_mesh((0.1, 0.2, 0.3), (1 / 3, 2 / 3, 0.7))
    gltf, binary, _ = glb_parts(write_glb(mesh))
    index = gltf["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
    stored = accessor_array(gltf, binary, index)
    assert gltf["accessors"][index]["max"] == [float(v) for v in stored.max(axis=0)]
    assert gltf["accessors"][index]["min"] == [float(v) for v in stored.min(axis=0)]


def test_large_meshes_use_uint32_indices() -> None:
    n = 70_000
    positions = np.zeros((n, 3))
    positions[:, 0] = np.arange(n) * 0.01
    positions[1::2, 1] = 1.0
    indices = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], axis=1)
    mesh = MeshContent(positions, None, None, None, indices.astype(np.uint32), np.zeros(3))
    data = write_glb(mesh)
    gltf, _, _ = glb_parts(data)
    assert gltf["accessors"][gltf["meshes"][0]["primitives"][0]["indices"]]["componentType"] == 5125
    np.testing.assert_array_equal(read_glb(data).primitives[0].indices, indices)


def test_points_primitive() -> None:
    cloud = make_point_cloud(origin=(3.0, 4.0, 5.0))
    data = write_glb(cloud)
    gltf, _, _ = glb_parts(data)
    primitive = gltf["meshes"][0]["primitives"][0]
    assert primitive["mode"] == 0 and "indices" not in primitive
    assert sorted(primitive["attributes"]) == ["COLOR_0", "POSITION"]
    assert gltf["extensionsUsed"] == ["KHR_materials_unlit"]
    assert gltf["materials"][0]["extensions"] == {"KHR_materials_unlit": {}}
    prim = read_glb(data).primitives[0]
    assert prim.mode == 0 and prim.indices is None and prim.normals is None
    np.testing.assert_allclose(prim.positions, cloud.positions + cloud.origin, atol=1e-5)


def test_translucent_colors_make_a_blended_material() -> None:
    mesh = make_box_mesh((0, 0, 0), (1, 1, 1), color=(255, 255, 255, 128))
    gltf, _, _ = glb_parts(write_glb(mesh))
    assert gltf["materials"][0]["alphaMode"] == "BLEND"


def test_trimesh_reads_the_same_geometry() -> None:
    """An independent decoder agrees with ours (in glTF's own Y-up frame)."""
    mesh, table = two_buildings((10.0, 20.0, 30.0))
    data = write_glb(mesh, schema=BUILDING_SCHEMA, table=table)
    scene = trimesh.load(io.BytesIO(data), file_type="glb", process=False)
    vertices = np.concatenate(
        [geometry.vertices for geometry in scene.dump()]  # node transforms applied
    )
    ours = read_glb(data).primitives[0].positions
    y_up = np.column_stack([ours[:, 0], ours[:, 2], -ours[:, 1]])
    np.testing.assert_allclose(vertices, y_up, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.columns.update(colour=["red", "blue"]), "colour"),
        (lambda t: t.columns.update(storeys=np.array([1.5, 2.0])), "storeys"),
        (lambda t: t.columns.update(name=["only one"]), "same non-zero length"),
        (lambda t: setattr(t, "class_name", "bridge"), "bridge"),
        (lambda t: t.columns.update(storeys=np.array([2**40, 1])), "INT32 without loss"),
        (lambda t: t.columns.update(storeys=np.array([1e20, 1.0])), "INT32 without loss"),
        (lambda t: t.columns.update(height=["tall", "small"]), "not numeric"),
        (lambda t: t.columns.update(name=[1, 2]), "not a string"),
    ],
)
def test_bad_property_tables_are_refused(change: Any, message: str) -> None:
    mesh, table = two_buildings()
    change(table)
    with pytest.raises(ValueError, match=message):
        write_glb(mesh, schema=BUILDING_SCHEMA, table=table)


def test_bad_meshes_are_refused() -> None:
    mesh, table = two_buildings()
    with pytest.raises(ValueError, match="schema"):
        write_glb(mesh, table=table)
    mesh.feature_ids = mesh.feature_ids + 5
    with pytest.raises(ValueError, match="outside the property table"):
        write_glb(mesh, schema=BUILDING_SCHEMA, table=table)
    broken = make_box_mesh((0, 0, 0), (1, 1, 1))
    broken.indices = broken.indices + 100
    with pytest.raises(ValueError, match="indices"):
        write_glb(broken)
    flat = make_box_mesh((0, 0, 0), (1, 1, 1))
    flat.normals[0] = 0.0
    with pytest.raises(ValueError, match="normals"):
        write_glb(flat)


def test_missing_values_become_no_data() -> None:
    mesh, table = two_buildings()
    table.columns["name"] = [None, "B"]  # type: ignore[list-item]
    table.columns["storeys"] = np.array([np.nan, 4.0])
    decoded = read_glb(write_glb(mesh, schema=BUILDING_SCHEMA, table=table))
    assert decoded.property_tables[0]["name"] == ["", "B"]
    assert decoded.property_tables[0]["storeys"].tolist() == [-1, 4]


def test_boolean_and_small_numeric_columns_round_trip() -> None:
    schema = {
        "id": "misc",
        "classes": {
            "thing": {
                "properties": {
                    "flag": {"type": "BOOLEAN"},
                    "level": {"type": "SCALAR", "componentType": "UINT8"},
                    "ratio": {"type": "SCALAR", "componentType": "FLOAT32"},
                    "big": {"type": "SCALAR", "componentType": "UINT64"},
                    "label": {"type": "STRING"},
                }
            }
        },
    }
    k = 11
    columns: dict[str, Any] = {
        "flag": np.arange(k) % 3 == 0,
        "level": np.arange(k, dtype=np.uint8) * 20,
        "ratio": np.linspace(0, 1, k),
        "big": np.arange(k, dtype=np.uint64) + np.uint64(2**63),
        "label": [""] * k,  # all-empty strings still need a (padded) values buffer view
    }
    mesh = make_point_cloud(k)
    mesh.feature_ids = np.arange(k)
    decoded = read_glb(write_glb(mesh, schema=schema, table=PropertyTable("thing", columns)))
    [table] = decoded.property_tables
    assert table["flag"].tolist() == columns["flag"].tolist()
    assert table["level"].tolist() == columns["level"].tolist()
    np.testing.assert_array_equal(table["ratio"], columns["ratio"].astype(np.float32))
    assert table["big"].tolist() == columns["big"].tolist()
    assert table["label"] == [""] * k
    np.testing.assert_array_equal(decoded.primitives[0].feature_ids, np.arange(k))


# --------------------------------------------------------------------------------------------
# Reader: malformed input and GLBs from other writers
# --------------------------------------------------------------------------------------------


def test_malformed_glbs_raise_format_errors_with_place() -> None:
    data = write_glb(make_box_mesh((0, 0, 0), (1, 1, 1)))
    with pytest.raises(FormatError, match=r"bad\.glb: invalid GLB signature .*byte 0"):
        read_glb(b"GLTF" + data[4:], source="bad.glb")
    with pytest.raises(FormatError, match=r"cut\.glb: .*truncated"):
        read_glb(data[:100], source="cut.glb")
    with pytest.raises(FormatError, match=r"short\.glb"):
        read_glb(b"glTF", source="short.glb")
    gltf, binary, _ = glb_parts(data)
    gltf["bufferViews"][0]["byteLength"] = 10_000
    with pytest.raises(FormatError, match=r"x\.glb: .*bufferViews/0.*BIN chunk byte offset"):
        read_glb(build_glb(gltf, binary), source="x.glb")
    assert isinstance(FormatError("x"), ValueError)


def build_glb(gltf: dict[str, Any], binary: bytes) -> bytes:
    """A GLB from JSON and BIN data (padding as the spec requires)."""
    text = json.dumps(gltf).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<II", len(text), 0x4E4F534A)
        + text
        + struct.pack("<II", len(binary), 0x004E4942)
        + binary
    )


def quantized_hierarchy_glb() -> bytes:
    """Interleaved KHR_mesh_quantization positions (SHORT normalized) and normals (BYTE
    normalized), UNSIGNED_BYTE triangle-strip indices, under a matrix node and a TRS node."""
    positions = np.array([[32767, 0, 0], [0, 32767, 0], [0, 0, 32767], [-32767, 0, 0]], "<i2")
    normals = np.array([[127, 0, 0], [0, 127, 0], [0, 0, 127], [-127, 0, 0]], "<i1")
    stride = 12
    vertex = bytearray(stride * 4)
    for i in range(4):
        vertex[i * stride : i * stride + 6] = positions[i].tobytes()
        vertex[i * stride + 8 : i * stride + 11] = normals[i].tobytes()
    index_bytes = np.array([0, 1, 2, 3], "<u1").tobytes()
    binary = bytes(vertex) + index_bytes
    s = float(np.sqrt(0.5))
    gltf = {
        "asset": {"version": "2.0"},
        "extensionsUsed": ["KHR_mesh_quantization"],
        "extensionsRequired": ["KHR_mesh_quantization"],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [
            # Parent: uniform scale 3 and translation (10, 0, 0), column-major.
            {"matrix": [3, 0, 0, 0, 0, 3, 0, 0, 0, 0, 3, 0, 10, 0, 0, 1], "children": [1]},
            # Child: scale 2, then 90 degrees about +Y (x -> -z), then translation (0, 1, 0).
            {"mesh": 0, "scale": [2, 2, 2], "rotation": [0, s, 0, s], "translation": [0, 1, 0]},
        ],
        "meshes": [
            {
                "primitives": [
                    {
                        "attributes": {"POSITION": 0, "NORMAL": 1},
                        "indices": 2,
                        "mode": 5,
                    }
                ]
            }
        ],
        "accessors": [
            {
                "bufferView": 0,
                "byteOffset": 0,
                "componentType": 5122,
                "normalized": True,
                "count": 4,
                "type": "VEC3",
                "min": [-32767, 0, 0],
                "max": [32767, 32767, 32767],
            },
            {
                "bufferView": 0,
                "byteOffset": 8,
                "componentType": 5120,
                "normalized": True,
                "count": 4,
                "type": "VEC3",
            },
            {"bufferView": 1, "componentType": 5121, "count": 4, "type": "SCALAR"},
        ],
        "bufferViews": [
            {
                "buffer": 0,
                "byteOffset": 0,
                "byteLength": len(vertex),
                "byteStride": stride,
                "target": 34962,
            },
            {"buffer": 0, "byteOffset": len(vertex), "byteLength": 4, "target": 34963},
        ],
        "buffers": [{"byteLength": len(binary)}],
    }
    return build_glb(gltf, binary)


def test_reader_handles_quantization_stride_strips_and_node_hierarchy() -> None:
    prim = read_glb(quantized_hierarchy_glb()).primitives[0]

    def place(p: list[float]) -> list[float]:
        # Child: scale 2, rotate about Y by +90 deg ((x, y, z) -> (z, y, -x)), translate +Y;
        # parent: scale 3, translate +X 10; then glTF Y-up to tiles Z-up: (x, -z, y).
        x, y, z = (2 * c for c in p)
        x, y, z = z, y + 1, -x
        x, y, z = 3 * x + 10, 3 * y, 3 * z
        return [x, -z, y]

    expected = [place(p) for p in ([1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0])]
    np.testing.assert_allclose(prim.positions, expected, atol=1e-12)
    assert prim.positions[0].tolist() == pytest.approx([10.0, 6.0, 3.0])
    # Strip 0 1 2 3 -> triangles (0 1 2), (2 1 3) with consistent winding.
    np.testing.assert_array_equal(prim.indices, [[0, 1, 2], [2, 1, 3]])
    assert prim.mode == 4
    # Normals rotate with the node (and are renormalised): +X -> -Z (gltf) -> +Y (tiles).
    np.testing.assert_allclose(prim.normals[0], [0, 1, 0], atol=1e-12)
    assert prim.attributes["POSITION"].dtype == np.int16


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
    keep=st.floats(0.0, 1.0),
)
def test_corrupt_bytes_raise_format_error_or_decode(edits: list[tuple[float, int]], keep: float):
    """Random byte damage never escapes as anything but FormatError (or decodes)."""
    mesh, table = two_buildings()
    data = bytearray(write_glb(mesh, schema=BUILDING_SCHEMA, table=table))
    for where, value in edits:
        data[int(where * len(data))] = value
    data = data[: max(1, int(keep * len(data) * 1.25))]
    try:
        read_glb(bytes(data), source="fuzz.glb")
    except FormatError as exc:
        assert str(exc).startswith("fuzz.glb: ")


def test_compact_mesh_attributes_round_trip_and_validate(tmp_path) -> None:
    """Quantised positions (≤ half a step off) and BYTE normals: valid, 20 bytes a vertex."""
    from twin.validate import _run_gltf_validator

    mesh, table = two_buildings(origin=(312244.0, 5997168.0, 10.0))
    plain = write_glb(mesh, schema=BUILDING_SCHEMA, table=table)
    compact = write_glb(
        mesh, schema=BUILDING_SCHEMA, table=table, position_step=0.01, compact_normals=True
    )
    assert len(compact) < len(plain)
    gltf = json.loads(compact[20:20 + struct.unpack("<I", compact[12:16])[0]])
    assert gltf["extensionsRequired"] == ["KHR_mesh_quantization"]
    a, b = read_glb(plain).primitives[0], read_glb(compact).primitives[0]
    step = gltf["nodes"][0]["scale"][0]
    assert step <= 0.01
    assert np.abs(a.positions - b.positions).max() <= step / 2 + 1e-6
    assert np.abs(a.normals - b.normals).max() < 0.01
    assert (a.feature_ids == b.feature_ids).all()
    path = tmp_path / "compact.glb"
    path.write_bytes(compact)
    [result] = _run_gltf_validator([path])
    assert result["numErrors"] == 0 and result["numWarnings"] == 0, result["messages"][:3]
    # An extent too large for the step keeps float32 positions.
    huge = write_glb(make_box_mesh((0, 0, 0), (2000, 10, 10)), position_step=0.01)
    assert b"KHR_mesh_quantization" not in huge
