"""GLB writer for 3D Tiles 1.1 tile content: one mesh primitive with per-vertex feature IDs
(EXT_mesh_features) and a property table (EXT_structural_metadata).

Hand-written on numpy, json and struct rather than trimesh: the output must be byte-identical
for identical input (tiles are content-addressed and diffed), and EXT_mesh_features belongs on
the *primitive*, which general-purpose exporters get wrong.

Axes: glTF is Y-up and 3D Tiles is Z-up. 3D Tiles clients rotate the glTF Y-up frame to Z-up
at load time, (x, y, z)_tiles = (x, -z, y)_gltf, so this writer applies the inverse,
(x, y, z)_gltf = (x_t, z_t, -y_t), to positions, normals and the node translation. The
caller works in the Z-up tile frame only.

Layout: one buffer (the GLB BIN chunk), one buffer view per accessor or metadata column. Every
buffer view starts on an 8-byte boundary (which satisfies glTF's 4-byte rule for vertex
attributes and the 3D Metadata rule of 8 bytes for property-table columns), and the JSON chunk
is padded with spaces so that the BIN chunk data also starts on an 8-byte boundary of the file:
clients that view FLOAT64 columns in place then need no copy.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twin import GENERATOR

__all__ = [
    "MeshContent",
    "PointContent",
    "PropertyAttribute",
    "PropertyTable",
    "write_glb",
    "write_points_glb",
    "z_up_to_y_up",
]

# glTF constants (glTF 2.0 spec, "accessor.componentType", "bufferView.target", "primitive.mode").
_FLOAT = 5126
_UNSIGNED_BYTE = 5121
_BYTE = 5120
_UNSIGNED_SHORT = 5123
_UNSIGNED_INT = 5125
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_MODE_POINTS = 0
_MODE_TRIANGLES = 4

_GLB_MAGIC = 0x46546C67  # b"glTF"
_CHUNK_JSON = 0x4E4F534A  # b"JSON"
_CHUNK_BIN = 0x004E4942  # b"BIN\0"
_BUFFER_VIEW_ALIGNMENT = 8
"""Every buffer view starts on this boundary (3D Metadata requires 8 for property tables)."""

_MAX_FLOAT_FEATURE_ID = 2**24
"""Feature IDs are stored as FLOAT, which holds integers exactly only up to 2**24."""

_METADATA_DTYPES: dict[str, np.dtype[Any]] = {
    "INT8": np.dtype("<i1"),
    "UINT8": np.dtype("<u1"),
    "INT16": np.dtype("<i2"),
    "UINT16": np.dtype("<u2"),
    "INT32": np.dtype("<i4"),
    "UINT32": np.dtype("<u4"),
    "INT64": np.dtype("<i8"),
    "UINT64": np.dtype("<u8"),
    "FLOAT32": np.dtype("<f4"),
    "FLOAT64": np.dtype("<f8"),
}
"""Little-endian storage of 3D Metadata component types."""

# Material: vertex colours multiply a white base colour; rough dielectric suits façades/roofs.
_ROUGHNESS = 0.9


@dataclass
class MeshContent:
    """One primitive of tile content, in the Z-up tile frame, relative to ``origin``."""

    positions: npt.NDArray[np.float64]
    """(n, 3) metres in the 3D Tiles frame (Z-up), relative to ``origin``."""
    normals: npt.NDArray[np.float32] | None
    """(n, 3) unit vectors, Z-up; renormalised on write."""
    colors: npt.NDArray[np.uint8] | None
    """(n, 4) RGBA as authored (sRGB); any alpha below 255 makes the material BLEND."""
    feature_ids: npt.NDArray[np.integer[Any]] | None
    """(n,) feature index per vertex (0..k-1) into the property table."""
    indices: npt.NDArray[np.uint32] | None
    """(m, 3) triangles, or None for a POINTS primitive."""
    origin: npt.NDArray[np.float64]
    """(3,) in the tile frame (Z-up); written as the glTF node translation (Y-up)."""


@dataclass
class PropertyTable:
    """Per-feature attributes: one column per class property, k values each."""

    class_name: str
    columns: dict[str, npt.NDArray[Any] | list[str]]


def z_up_to_y_up(xyz: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Convert (..., 3) Z-up tile-frame vectors to glTF Y-up: (x, y, z) -> (x, z, -y)."""
    v = np.asarray(xyz, dtype=np.float64)
    return np.stack([v[..., 0], v[..., 2], -v[..., 1]], axis=-1)


class _BinaryBuilder:
    """Collects buffer views in one binary buffer, each 8-byte aligned."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.length = 0
        self.buffer_views: list[dict[str, Any]] = []

    def add_view(self, payload: bytes, *, target: int | None = None) -> int:
        """Append ``payload`` as a new buffer view; return its index."""
        if not payload:
            raise ValueError("glTF buffer views cannot be empty")
        pad = -self.length % _BUFFER_VIEW_ALIGNMENT
        if pad:
            self.chunks.append(b"\0" * pad)
            self.length += pad
        view: dict[str, Any] = {"buffer": 0, "byteOffset": self.length, "byteLength": len(payload)}
        if target is not None:
            view["target"] = target
        self.chunks.append(payload)
        self.length += len(payload)
        self.buffer_views.append(view)
        return len(self.buffer_views) - 1

    def data(self) -> bytes:
        """The buffer, zero-padded to a multiple of 8 bytes."""
        out = b"".join(self.chunks)
        return out + b"\0" * (-len(out) % _BUFFER_VIEW_ALIGNMENT)


class _AccessorBuilder:
    """Vertex and index accessors, one tightly packed buffer view each."""

    def __init__(self, binary: _BinaryBuilder) -> None:
        self.binary = binary
        self.accessors: list[dict[str, Any]] = []

    def add(
        self,
        array: npt.NDArray[Any],
        *,
        component_type: int,
        accessor_type: str,
        target: int,
        normalized: bool = False,
        min_max: bool = False,
    ) -> int:
        """Store ``array`` (already in its final dtype, little-endian) as a new accessor."""
        array = np.ascontiguousarray(array)
        view = self.binary.add_view(array.tobytes(), target=target)
        accessor: dict[str, Any] = {
            "bufferView": view,
            "componentType": component_type,
        }
        if normalized:
            accessor["normalized"] = True
        accessor["count"] = int(array.shape[0])
        accessor["type"] = accessor_type
        if min_max:
            # From the values actually stored, so the validator's exact comparison passes;
            # float32 -> Python float is exact and json writes the shortest round-trip repr.
            flat = array.reshape(array.shape[0], -1)
            accessor["max"] = [_json_number(v) for v in flat.max(axis=0)]
            accessor["min"] = [_json_number(v) for v in flat.min(axis=0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def _json_number(value: Any) -> int | float:
    """A numpy scalar as a plain JSON number (ints stay ints)."""
    if isinstance(value, np.integer):
        return int(value)
    return float(value)


def _validated_mesh(
    mesh: MeshContent,
) -> tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32] | None,
    npt.NDArray[np.uint8] | None,
    npt.NDArray[np.int64] | None,
    npt.NDArray[np.int64] | None,
    npt.NDArray[np.float64],
]:
    """Check shapes and values; return Y-up float32 positions/normals and checked arrays."""
    positions = np.asarray(mesh.positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3 or positions.shape[0] == 0:
        raise ValueError(f"positions must be a non-empty (n, 3) array, got shape {positions.shape}")
    if not np.isfinite(positions).all():
        raise ValueError("positions contain NaN or infinite values")
    n = positions.shape[0]
    origin = np.asarray(mesh.origin, dtype=np.float64)
    if origin.shape != (3,) or not np.isfinite(origin).all():
        raise ValueError(f"origin must be 3 finite numbers, got {mesh.origin!r}")
    positions_gltf = z_up_to_y_up(positions).astype("<f4")

    normals_gltf = None
    if mesh.normals is not None:
        normals = np.asarray(mesh.normals, dtype=np.float64)
        if normals.shape != (n, 3):
            raise ValueError(f"normals must have shape ({n}, 3), got {normals.shape}")
        length = np.linalg.norm(normals, axis=1)
        if not (np.isfinite(length).all() and (length > 1e-12).all()):
            raise ValueError("normals contain zero-length or non-finite vectors")
        # Renormalise after the float32 cast too: the glTF validator checks unit length.
        unit = z_up_to_y_up(normals / length[:, None]).astype("<f4")
        normals_gltf = (unit / np.linalg.norm(unit, axis=1, keepdims=True)).astype("<f4")

    colors = None
    if mesh.colors is not None:
        colors_in = np.asarray(mesh.colors)
        if colors_in.shape != (n, 4):
            raise ValueError(f"colors must have shape ({n}, 4) RGBA, got {colors_in.shape}")
        if colors_in.dtype != np.uint8:
            if colors_in.min(initial=0) < 0 or colors_in.max(initial=0) > 255:
                raise ValueError("colors must be uint8 RGBA values 0..255")
        colors = colors_in.astype(np.uint8)

    feature_ids = None
    if mesh.feature_ids is not None:
        ids = np.asarray(mesh.feature_ids)
        if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"feature_ids must be an integer array of shape ({n},)")
        if ids.min() < 0 or ids.max() >= _MAX_FLOAT_FEATURE_ID:
            raise ValueError(f"feature_ids must lie in 0..{_MAX_FLOAT_FEATURE_ID - 1}")
        feature_ids = ids.astype(np.int64)

    indices = None
    if mesh.indices is not None:
        tri = np.asarray(mesh.indices)
        if tri.ndim != 2 or tri.shape[1] != 3 or tri.shape[0] == 0:
            raise ValueError(f"indices must be a non-empty (m, 3) array, got shape {tri.shape}")
        if not np.issubdtype(tri.dtype, np.integer) or tri.min() < 0 or tri.max() >= n:
            raise ValueError(f"indices must be integers in 0..{n - 1}")
        indices = tri.astype(np.int64)
    return positions_gltf, normals_gltf, colors, feature_ids, indices, origin


def _material(*, points: bool, blend: bool) -> dict[str, Any]:
    """One PBR material whose base colour is multiplied by COLOR_0."""
    material: dict[str, Any] = {
        "pbrMetallicRoughness": {
            "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
            "metallicFactor": 0.0,
            "roughnessFactor": _ROUGHNESS,
        },
    }
    if blend:
        material["alphaMode"] = "BLEND"
    # Normals are oriented outward by the mesh ops, so back faces can be culled.
    material["doubleSided"] = False
    if points:
        # Points carry no normals: shade them unlit instead of with a made-up normal.
        material["extensions"] = {"KHR_materials_unlit": {}}
    return material


def _schema_properties(schema: dict[str, Any], class_name: str) -> dict[str, Any]:
    """The property definitions of ``class_name`` in a 3D Metadata schema."""
    classes = schema.get("classes", {})
    if class_name not in classes:
        raise ValueError(f"property table class {class_name!r} is not in the metadata schema")
    properties: dict[str, Any] = classes[class_name].get("properties", {})
    return properties


def _string_column(
    binary: _BinaryBuilder, name: str, values: Any, definition: dict[str, Any], count: int
) -> dict[str, Any]:
    """Encode a STRING column: UTF-8 bytes plus count+1 UINT32 byte offsets."""
    encoded: list[bytes] = []
    for row, value in enumerate(values):
        if value is None:
            if "noData" not in definition:
                raise ValueError(f"column {name!r} row {row} is None and the schema has no noData")
            value = definition["noData"]
        if not isinstance(value, str):
            raise ValueError(f"column {name!r} row {row} is not a string: {value!r}")
        encoded.append(value.encode("utf-8"))
    offsets = np.zeros(count + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    if offsets[-1] >= 2**32:
        raise ValueError(f"column {name!r} holds more than 4 GiB of string data")
    payload = b"".join(encoded)
    # A buffer view cannot be empty; a column of empty strings keeps one padding byte (the
    # offsets, all 0, say every string is empty).
    values_view = binary.add_view(payload or b"\0")
    offsets_view = binary.add_view(offsets.astype("<u4").tobytes())
    return {"values": values_view, "stringOffsets": offsets_view, "stringOffsetType": "UINT32"}


def _scalar_column(
    binary: _BinaryBuilder, name: str, values: Any, definition: dict[str, Any]
) -> dict[str, Any]:
    """Encode a SCALAR column in its componentType's little-endian layout, refusing lossy casts."""
    component = definition.get("componentType")
    if component not in _METADATA_DTYPES:
        raise ValueError(f"column {name!r}: unsupported componentType {component!r}")
    dtype = _METADATA_DTYPES[component]
    source = np.asarray(values)
    if source.dtype.kind not in "biuf":
        raise ValueError(f"column {name!r} is not numeric (dtype {source.dtype})")
    if source.dtype.kind == "f" and dtype.kind in "iu":
        missing = np.isnan(source)
        if missing.any():
            if "noData" not in definition:
                raise ValueError(f"column {name!r} has NaN values and the schema has no noData")
            source = np.where(missing, definition["noData"], source)
    if dtype.kind in "iu":
        # Range and integrality first: casting out-of-range floats is undefined in numpy.
        info = np.iinfo(dtype)
        if source.dtype.kind == "f":
            fits = (source == np.round(source)) & (source >= info.min) & (source <= info.max)
        else:
            fits = (source >= info.min) & (source <= info.max)
        if not fits.all():
            raise ValueError(f"column {name!r} does not fit {component} without loss")
        stored = source.astype(dtype)
    else:
        # Rounding to FLOAT32 is expected; only overflow to infinity is an error.
        with np.errstate(over="ignore"):
            stored = source.astype(dtype)
        if (np.isinf(stored) & ~np.isinf(source)).any():
            raise ValueError(f"column {name!r} overflows {component}")
    return {"values": binary.add_view(stored.tobytes())}


def _boolean_column(binary: _BinaryBuilder, name: str, values: Any) -> dict[str, Any]:
    """Encode a BOOLEAN column as a bitstream, least significant bit first."""
    source = np.asarray(values)
    if source.dtype != np.bool_:
        raise ValueError(f"column {name!r} is BOOLEAN but has dtype {source.dtype}")
    return {"values": binary.add_view(np.packbits(source, bitorder="little").tobytes())}


def _property_table(
    binary: _BinaryBuilder, schema: dict[str, Any], table: PropertyTable
) -> dict[str, Any]:
    """Encode the EXT_structural_metadata property table for ``table``."""
    definitions = _schema_properties(schema, table.class_name)
    counts = {name: len(values) for name, values in table.columns.items()}
    if not counts:
        raise ValueError(f"property table {table.class_name!r} has no columns")
    count = next(iter(counts.values()))
    if count == 0 or any(c != count for c in counts.values()):
        raise ValueError(f"property table columns must have the same non-zero length: {counts}")
    for name, definition in definitions.items():
        if definition.get("required") and name not in table.columns:
            raise ValueError(f"required property {name!r} of {table.class_name!r} has no column")
    properties: dict[str, Any] = {}
    for name, values in table.columns.items():
        if name not in definitions:
            raise ValueError(
                f"column {name!r} is not a property of class {table.class_name!r} in the schema"
            )
        definition = definitions[name]
        if definition.get("array"):
            raise ValueError(f"column {name!r}: array properties are not supported")
        kind = definition.get("type")
        if kind == "STRING":
            properties[name] = _string_column(binary, name, values, definition, count)
        elif kind == "SCALAR":
            properties[name] = _scalar_column(binary, name, values, definition)
        elif kind == "BOOLEAN":
            properties[name] = _boolean_column(binary, name, values)
        else:
            raise ValueError(f"column {name!r}: property type {kind!r} is not supported")
    return {"class": table.class_name, "count": count, "properties": properties}


def write_glb(
    mesh: MeshContent,
    *,
    schema: dict[str, Any] | None = None,
    table: PropertyTable | None = None,
    generator: str = GENERATOR,
    position_step: float | None = None,
    compact_normals: bool = False,
) -> bytes:
    """Encode one mesh (triangles, or points when ``indices`` is None) as a byte-stable GLB.

    ``position_step`` (m) stores positions as UNSIGNED_SHORT when the mesh's extent allows
    that step or a finer one, and ``compact_normals`` stores normals as normalized BYTE (both
    KHR_mesh_quantization): 20 instead of 32 bytes a vertex.
    """
    positions, normals, colors, feature_ids, indices, origin = _validated_mesh(mesh)
    if table is not None and schema is None:
        raise ValueError("a property table needs the metadata schema that defines its class")
    points = indices is None
    n = positions.shape[0]

    binary = _BinaryBuilder()
    accessors = _AccessorBuilder(binary)
    node: dict[str, Any] = {"mesh": 0, "translation": [float(v) for v in z_up_to_y_up(origin)]}
    quantized_extension = False
    quantized = _quantize(z_up_to_y_up(np.asarray(mesh.positions, np.float64)), position_step)
    if quantized is not None:
        values, lo, step = quantized
        attributes: dict[str, int] = {
            "POSITION": _strided_accessor(
                accessors, values, _UNSIGNED_SHORT, "VEC3", min_max=True
            )
        }
        # The node carries the dequantisation: position = translation + scale * value.
        node["translation"] = [float(v) for v in z_up_to_y_up(origin) + lo]
        node["scale"] = [step, step, step]
        quantized_extension = True
    else:
        attributes = {
            "POSITION": accessors.add(
                positions,
                component_type=_FLOAT,
                accessor_type="VEC3",
                target=_ARRAY_BUFFER,
                min_max=True,
            )
        }
    if normals is not None and compact_normals:
        packed = np.clip(np.rint(normals.astype(np.float64) * 127.0), -127, 127).astype(np.int8)
        attributes["NORMAL"] = _strided_accessor(
            accessors, packed, _BYTE, "VEC3", normalized=True
        )
        quantized_extension = True
    elif normals is not None:
        attributes["NORMAL"] = accessors.add(
            normals, component_type=_FLOAT, accessor_type="VEC3", target=_ARRAY_BUFFER
        )
    if colors is not None:
        attributes["COLOR_0"] = accessors.add(
            colors,
            component_type=_UNSIGNED_BYTE,
            accessor_type="VEC4",
            target=_ARRAY_BUFFER,
            normalized=True,
        )
    if feature_ids is not None:
        # FLOAT holds every id up to 2**24 exactly and needs no byteStride padding.
        attributes["_FEATURE_ID_0"] = accessors.add(
            feature_ids.astype("<f4"),
            component_type=_FLOAT,
            accessor_type="SCALAR",
            target=_ARRAY_BUFFER,
        )

    primitive: dict[str, Any] = {"attributes": attributes}
    if indices is not None:
        # n < 65536 keeps every index below 65535, the primitive-restart value of UNSIGNED_SHORT.
        small = n < 65536
        primitive["indices"] = accessors.add(
            indices.reshape(-1).astype("<u2" if small else "<u4"),
            component_type=_UNSIGNED_SHORT if small else _UNSIGNED_INT,
            accessor_type="SCALAR",
            target=_ELEMENT_ARRAY_BUFFER,
        )
    primitive["material"] = 0
    primitive["mode"] = _MODE_POINTS if points else _MODE_TRIANGLES

    extensions_used: set[str] = set()
    if points:
        extensions_used.add("KHR_materials_unlit")
    if feature_ids is not None:
        feature_id: dict[str, Any] = {
            # The spec's featureCount is the number of distinct ids in the attribute.
            "featureCount": int(np.unique(feature_ids).size),
            "attribute": 0,
        }
        if table is not None:
            feature_id["propertyTable"] = 0
        primitive["extensions"] = {"EXT_mesh_features": {"featureIds": [feature_id]}}
        extensions_used.add("EXT_mesh_features")

    root_extensions: dict[str, Any] = {}
    if schema is not None:
        metadata: dict[str, Any] = {"schema": schema}
        if table is not None:
            property_table = _property_table(binary, schema, table)
            if feature_ids is not None and feature_ids.max() >= property_table["count"]:
                raise ValueError(
                    f"feature id {int(feature_ids.max())} is outside the property table "
                    f"of {property_table['count']} rows"
                )
            metadata["propertyTables"] = [property_table]
        root_extensions["EXT_structural_metadata"] = metadata
        extensions_used.add("EXT_structural_metadata")

    blend = colors is not None and bool((colors[:, 3] < 255).any())
    bin_data = binary.data()
    gltf: dict[str, Any] = {"asset": {"generator": generator, "version": "2.0"}}
    if quantized_extension:
        extensions_used.add("KHR_mesh_quantization")
    if extensions_used:
        gltf["extensionsUsed"] = sorted(extensions_used)
    if quantized_extension:
        gltf["extensionsRequired"] = ["KHR_mesh_quantization"]
    gltf["scene"] = 0
    gltf["scenes"] = [{"nodes": [0]}]
    gltf["nodes"] = [node]
    gltf["meshes"] = [{"primitives": [primitive]}]
    gltf["materials"] = [_material(points=points, blend=blend)]
    gltf["accessors"] = accessors.accessors
    gltf["bufferViews"] = binary.buffer_views
    gltf["buffers"] = [{"byteLength": len(bin_data)}]
    if root_extensions:
        gltf["extensions"] = root_extensions
    return _glb_bytes(gltf, bin_data)


def _glb_bytes(gltf: dict[str, Any], bin_data: bytes) -> bytes:
    """Assemble header, JSON chunk (space-padded) and BIN chunk (zero-padded)."""
    text = json.dumps(gltf, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    json_bytes = text.encode("utf-8")
    # Header (12) + JSON chunk header (8) + JSON + BIN chunk header (8) puts the BIN data at
    # 28 + len(JSON); padding JSON to 4 mod 8 makes that a multiple of 8.
    json_bytes += b" " * ((4 - len(json_bytes)) % 8)
    total = 12 + 8 + len(json_bytes) + 8 + len(bin_data)
    return b"".join(
        [
            struct.pack("<III", _GLB_MAGIC, 2, total),
            struct.pack("<II", len(json_bytes), _CHUNK_JSON),
            json_bytes,
            struct.pack("<II", len(bin_data), _CHUNK_BIN),
            bin_data,
        ]
    )


# --- point clouds ------------------------------------------------------------------------------

_COMPONENT_TYPES: dict[str, int] = {
    "i1": 5120,
    "u1": _UNSIGNED_BYTE,
    "i2": 5122,
    "u2": _UNSIGNED_SHORT,
    "u4": _UNSIGNED_INT,
    "f4": _FLOAT,
}
"""numpy dtype kind+size -> glTF componentType of vertex attributes."""
_VERTEX_ALIGNMENT = 4
"""glTF: every element of a vertex attribute starts on a 4-byte boundary (byteStride)."""
_MAX_UINT16 = 65535


@dataclass
class PointContent:
    """One POINTS primitive of tile content, in the Z-up tile frame, relative to ``origin``."""

    positions: npt.NDArray[np.float64] | None
    """(n, 3) metres in the 3D Tiles frame (Z-up), relative to ``origin``; None when
    ``quantized`` holds them."""
    origin: npt.NDArray[np.float64]
    """(3,) in the tile frame (Z-up); written as the glTF node translation (Y-up)."""
    colors: npt.NDArray[np.uint8] | None = None
    """(n, 3) linear RGB bytes (glTF COLOR_0 is linear), or None; (n, 4) when the caller
    already padded each colour to 4 bytes (the 4th byte is stored but not used)."""
    attributes: dict[str, npt.NDArray[Any]] | None = None
    """Extra scalar vertex attributes by semantic (``_CLASSIFICATION``...), uint8/uint16/
    int8/int16/float32."""
    quantization_step: float | None = None
    """If given, positions are stored as UNSIGNED_SHORT (KHR_mesh_quantization) with at most
    this step (m), when the extent fits 65535 steps; else, and if None, as FLOAT."""
    quantized: npt.NDArray[np.uint16] | None = None
    """(n, 3) positions already quantized by the caller: Z-up steps of ``quantization_step``
    from ``origin`` (exact integer arithmetic upstream; ``positions`` is then ignored)."""


@dataclass
class PropertyAttribute:
    """EXT_structural_metadata property attribute: class properties stored as vertex
    attributes (property id -> attribute semantic)."""

    class_name: str
    properties: dict[str, str]


def write_points_glb(
    points: PointContent,
    *,
    schema: dict[str, Any] | None = None,
    property_attribute: PropertyAttribute | None = None,
    generator: str = GENERATOR,
) -> bytes:
    """Encode a point cloud as a byte-stable GLB: one POINTS primitive, unlit material,
    positions quantized when asked (KHR_mesh_quantization), per-point properties as
    EXT_structural_metadata property attributes."""
    if points.quantized is not None:
        positions = np.asarray(points.quantized)
        if positions.dtype != np.uint16 or not points.quantization_step:
            raise ValueError("quantized positions must be uint16 with a quantization_step")
    else:
        positions = np.asarray(points.positions, dtype=np.float64)
        if not np.isfinite(positions).all():
            raise ValueError("positions contain NaN or infinite values")
    if positions.ndim != 2 or positions.shape[1] != 3 or positions.shape[0] == 0:
        raise ValueError(f"positions must be a non-empty (n, 3) array, got shape {positions.shape}")
    n = positions.shape[0]
    origin = np.asarray(points.origin, dtype=np.float64)
    if origin.shape != (3,) or not np.isfinite(origin).all():
        raise ValueError(f"origin must be 3 finite numbers, got {points.origin!r}")
    if property_attribute is not None and schema is None:
        raise ValueError("a property attribute needs the metadata schema that defines its class")

    binary = _BinaryBuilder()
    accessors = _AccessorBuilder(binary)
    extensions_used = {"KHR_materials_unlit"}
    extensions_required: set[str] = set()
    node: dict[str, Any] = {"mesh": 0}
    if points.quantized is not None:
        assert points.quantization_step is not None
        step = float(points.quantization_step)
        # Y-up (x, z, -y): the third axis counts down from the largest y step.
        y_top = int(positions[:, 1].max())
        values = np.empty((n, 3), dtype="<u2")
        values[:, 0] = positions[:, 0]
        values[:, 1] = positions[:, 2]
        np.subtract(y_top, positions[:, 1], out=values[:, 2], casting="unsafe")
        quantized = (values, np.array([0.0, 0.0, -y_top * step]), step)
        y_up = None
    else:
        y_up = z_up_to_y_up(positions)
        quantized = _quantize(y_up, points.quantization_step)
    if quantized is not None:
        values, lo, step = quantized
        position = _strided_accessor(accessors, values, _UNSIGNED_SHORT, "VEC3", min_max=True)
        node["translation"] = [float(v) for v in z_up_to_y_up(origin) + lo]
        node["scale"] = [step, step, step]
        extensions_used.add("KHR_mesh_quantization")
        extensions_required.add("KHR_mesh_quantization")
    else:
        assert y_up is not None
        position = accessors.add(
            y_up.astype("<f4"),
            component_type=_FLOAT,
            accessor_type="VEC3",
            target=_ARRAY_BUFFER,
            min_max=True,
        )
        node["translation"] = [float(v) for v in z_up_to_y_up(origin)]
    attributes: dict[str, int] = {"POSITION": position}
    if points.colors is not None:
        colors = np.asarray(points.colors)
        if colors.shape not in ((n, 3), (n, 4)) or colors.dtype != np.uint8:
            raise ValueError(f"colors must be a uint8 array of shape ({n}, 3) or ({n}, 4)")
        attributes["COLOR_0"] = _strided_accessor(
            accessors, colors, _UNSIGNED_BYTE, "VEC3", normalized=True, components=3
        )
    for semantic, values in sorted((points.attributes or {}).items()):
        if not semantic.startswith("_"):
            raise ValueError(f"custom attribute {semantic!r} must start with '_' (glTF 2.0)")
        array = np.asarray(values)
        key = f"{array.dtype.kind}{array.dtype.itemsize}"
        if array.shape != (n,) or key not in _COMPONENT_TYPES:
            raise ValueError(
                f"attribute {semantic!r} must be a ({n},) array of int8/uint8/int16/uint16/"
                f"uint32/float32, got {array.dtype} {array.shape}"
            )
        attributes[semantic] = _strided_accessor(
            accessors, array.astype(array.dtype.newbyteorder("<")), _COMPONENT_TYPES[key],
            "SCALAR",
        )

    primitive: dict[str, Any] = {"attributes": attributes, "material": 0, "mode": _MODE_POINTS}
    root_extensions: dict[str, Any] = {}
    if schema is not None:
        metadata: dict[str, Any] = {"schema": schema}
        if property_attribute is not None:
            definitions = _schema_properties(schema, property_attribute.class_name)
            properties: dict[str, Any] = {}
            for pid, semantic in property_attribute.properties.items():
                if pid not in definitions:
                    raise ValueError(
                        f"property {pid!r} is not in class {property_attribute.class_name!r}"
                    )
                if semantic not in attributes:
                    raise ValueError(f"property {pid!r} names a missing attribute {semantic!r}")
                properties[pid] = {"attribute": semantic}
            metadata["propertyAttributes"] = [
                {"class": property_attribute.class_name, "properties": properties}
            ]
            primitive["extensions"] = {"EXT_structural_metadata": {"propertyAttributes": [0]}}
        root_extensions["EXT_structural_metadata"] = metadata
        extensions_used.add("EXT_structural_metadata")

    bin_data = binary.data()
    gltf: dict[str, Any] = {"asset": {"generator": generator, "version": "2.0"}}
    gltf["extensionsUsed"] = sorted(extensions_used)
    if extensions_required:
        gltf["extensionsRequired"] = sorted(extensions_required)
    gltf["scene"] = 0
    gltf["scenes"] = [{"nodes": [0]}]
    gltf["nodes"] = [node]
    gltf["meshes"] = [{"primitives": [primitive]}]
    gltf["materials"] = [_material(points=True, blend=False)]
    gltf["accessors"] = accessors.accessors
    gltf["bufferViews"] = binary.buffer_views
    gltf["buffers"] = [{"byteLength": len(bin_data)}]
    if root_extensions:
        gltf["extensions"] = root_extensions
    return _glb_bytes(gltf, bin_data)


def _quantize(
    y_up: npt.NDArray[np.float64], step: float | None
) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.float64], float] | None:
    """UNSIGNED_SHORT positions, their offset and step, or None if the extent needs more."""
    if step is None or not step > 0.0:
        return None
    lo = y_up.min(axis=0)
    extent = float((y_up.max(axis=0) - lo).max())
    # The smallest step that spans the extent, if it is within the allowed step: finer is free.
    used = max(extent / _MAX_UINT16, 1e-9)
    if used > step:
        return None
    # A float32 scale in the shaders: use a step float32 represents exactly.
    used = float(np.float32(used * (1.0 + 1e-6)))
    values = np.rint((y_up - lo) / used)
    np.clip(values, 0, _MAX_UINT16, out=values)
    return values.astype("<u2"), lo, used


def _strided_accessor(
    accessors: _AccessorBuilder,
    values: npt.NDArray[Any],
    component_type: int,
    accessor_type: str,
    *,
    normalized: bool = False,
    min_max: bool = False,
    components: int | None = None,
) -> int:
    """A vertex accessor whose elements are padded to a multiple of 4 bytes (byteStride);
    ``components`` < the array's columns means the extra columns are padding already."""
    array = np.ascontiguousarray(values)
    n = array.shape[0]
    flat = array.reshape(n, -1)
    used = components or flat.shape[1]
    element = used * array.dtype.itemsize
    stride = -element % _VERTEX_ALIGNMENT + element
    if used < flat.shape[1]:
        if flat.shape[1] * array.dtype.itemsize != stride:
            raise ValueError(f"{flat.shape[1]} columns are not {used} padded to {stride} bytes")
        payload = flat.tobytes()
        flat = flat[:, :used]
    elif stride != element:
        padded = np.zeros((n, stride // array.dtype.itemsize), dtype=array.dtype)
        padded[:, : flat.shape[1]] = flat
        payload = padded.tobytes()
    else:
        payload = flat.tobytes()
    view = accessors.binary.add_view(payload, target=_ARRAY_BUFFER)
    if stride != element:
        accessors.binary.buffer_views[view]["byteStride"] = stride
    accessor: dict[str, Any] = {"bufferView": view, "componentType": component_type}
    if normalized:
        accessor["normalized"] = True
    accessor["count"] = int(n)
    accessor["type"] = accessor_type
    if min_max:
        accessor["max"] = [_json_number(v) for v in flat.max(axis=0)]
        accessor["min"] = [_json_number(v) for v in flat.min(axis=0)]
    accessors.accessors.append(accessor)
    return len(accessors.accessors) - 1
