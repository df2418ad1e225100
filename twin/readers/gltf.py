"""GLB reader: triangles and points of any GLB in the 3D Tiles Z-up frame, plus the
EXT_mesh_features feature IDs and EXT_structural_metadata property tables.

Used by validation (containment of geometry in bounding volumes), tests and the renderer. It
decodes what ``twin.writers.gltf`` writes and, more generally, GLBs with strided or quantized
accessors (KHR_mesh_quantization), sparse accessors, triangle strips and fans, and node
hierarchies with translation/rotation/scale or matrix transforms. Draco/meshopt compression and
EXT_mesh_gpu_instancing are not decoded (FormatError for the former, the latter is ignored).

Axes: glTF is Y-up; 3D Tiles rotates the glTF scene to Z-up at load time with
(x, y, z)_tiles = (x, -z, y)_gltf, after all node transforms. The reader applies the same
rotation, so positions come back in the frame the tile's ``transform`` maps to its parent.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.errors import FormatError

__all__ = ["DecodedGLB", "DecodedPrimitive", "read_glb"]

_GLB_MAGIC = b"glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942

_COMPONENT_DTYPES: dict[int, np.dtype[Any]] = {
    5120: np.dtype("<i1"),
    5121: np.dtype("<u1"),
    5122: np.dtype("<i2"),
    5123: np.dtype("<u2"),
    5125: np.dtype("<u4"),
    5126: np.dtype("<f4"),
}
_MAX_IMPLICIT_BYTES = 1 << 30
"""Largest accessor without a buffer view (all zeros, maybe sparse) we agree to allocate."""
# Components per element; 3D Metadata's SCALAR/VECN/MATN use the same names and sizes.
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}

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
# glTF Y-up to 3D Tiles Z-up, applied after the node transforms: (x, y, z) -> (x, -z, y).
_Y_UP_TO_Z_UP = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


@dataclass
class DecodedPrimitive:
    """One mesh primitive placed in the 3D Tiles frame by its node (one per node instance)."""

    mode: int
    """glTF primitive mode: 4 triangles (strips and fans are converted), 0 points, 1-3 lines."""
    positions: npt.NDArray[np.float64]
    """(n, 3) Z-up, node transforms applied, dequantized."""
    indices: npt.NDArray[np.int64] | None
    """(m, 3) triangles; None for points and lines."""
    normals: npt.NDArray[np.float64] | None
    """(n, 3) unit vectors in the Z-up frame, node rotation applied."""
    colors: npt.NDArray[np.float64] | None
    """(n, 4) RGBA 0..1 from COLOR_0 (alpha 1 for RGB colours)."""
    feature_ids: npt.NDArray[np.int64] | None
    """(n,) from the first EXT_mesh_features feature ID set (attribute or implicit)."""
    attributes: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    """Every vertex attribute as stored (component dtype, not normalized, not transformed)."""
    node: int = -1
    """Index of the node that placed this primitive."""
    property_table: int | None = None
    """Index (into ``DecodedGLB.property_tables``) of the table the feature IDs refer to."""
    material: int | None = None
    """Index of the primitive's material in the glTF JSON, if it has one."""


@dataclass
class DecodedGLB:
    """A decoded GLB: its JSON, placed primitives and property tables."""

    json: dict[str, Any]
    primitives: list[DecodedPrimitive]
    property_tables: list[dict[str, list[Any] | npt.NDArray[Any]]]
    """EXT_structural_metadata property tables: column name -> values (strings as str)."""


class _Decoder:
    """Accessor and buffer-view access with bounds checks that name the source and offset."""

    def __init__(self, gltf: dict[str, Any], buffers: list[bytes], source: str) -> None:
        self.gltf = gltf
        self.buffers = buffers
        self.source = source
        self.bin_offset = 0  # file offset of the BIN chunk data, for messages

    def fail(self, what: str, where: str) -> FormatError:
        """A FormatError naming the source file and the place in it."""
        return FormatError(f"{self.source}: {what} ({where}); the file is not a valid glTF")

    def item(self, kind: str, index: Any) -> dict[str, Any]:
        """``gltf[kind][index]``, or FormatError if it does not exist."""
        items = self.gltf.get(kind)
        if not isinstance(index, int) or not isinstance(items, list) or not 0 <= index < len(items):
            raise self.fail(f"{kind}[{index!r}] does not exist", f"JSON /{kind}")
        value = items[index]
        if not isinstance(value, dict):
            raise self.fail(f"{kind}[{index}] is not an object", f"JSON /{kind}/{index}")
        return value

    def buffer_view(self, index: int) -> tuple[bytes, int, int, int | None]:
        """(buffer bytes, byteOffset, byteLength, byteStride) of a checked buffer view."""
        view = self.item("bufferViews", index)
        buffer_index = view.get("buffer")
        if not isinstance(buffer_index, int) or not 0 <= buffer_index < len(self.buffers):
            raise self.fail(f"buffer {buffer_index!r} does not exist", f"JSON /bufferViews/{index}")
        buffer = self.buffers[buffer_index]
        offset = view.get("byteOffset", 0)
        length = view.get("byteLength")
        stride = view.get("byteStride")
        if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length < 0:
            raise self.fail("bad byteOffset/byteLength", f"JSON /bufferViews/{index}")
        if offset + length > len(buffer):
            where = f"JSON /bufferViews/{index}"
            if buffer_index == 0:
                where += f", BIN chunk byte offset {self.bin_offset + offset}"
            raise self.fail(
                f"buffer view ends at byte {offset + length} of a {len(buffer)}-byte buffer", where
            )
        return buffer, offset, length, stride

    def accessor(self, index: int) -> tuple[npt.NDArray[Any], dict[str, Any]]:
        """The accessor's elements as stored: (count, components) array, sparse applied."""
        accessor = self.item("accessors", index)
        where = f"JSON /accessors/{index}"
        dtype = _COMPONENT_DTYPES.get(accessor.get("componentType"))  # type: ignore[arg-type]
        components = _TYPE_SIZES.get(accessor.get("type"))  # type: ignore[arg-type]
        count = accessor.get("count")
        if dtype is None or components is None or not isinstance(count, int) or count < 0:
            raise self.fail("bad componentType, type or count", where)
        element = dtype.itemsize * components
        if "bufferView" in accessor:
            buffer, view_offset, view_length, stride = self.buffer_view(accessor["bufferView"])
            stride = stride or element
            offset = accessor.get("byteOffset", 0)
            if not isinstance(offset, int) or offset < 0 or stride < element:
                raise self.fail("bad byteOffset or byteStride", where)
            needed = offset + (stride * (count - 1) + element if count else 0)
            if needed > view_length:
                raise self.fail(
                    f"accessor needs {needed} bytes of a {view_length}-byte buffer view", where
                )
            if offset % dtype.itemsize or (view_offset + offset) % dtype.itemsize:
                # Misaligned data (invalid glTF, but readable): copy instead of viewing.
                raw = np.frombuffer(
                    buffer, np.uint8, count=needed - offset, offset=view_offset + offset
                )
                rows = [raw[i * stride : i * stride + element] for i in range(count)]
                data = np.frombuffer(b"".join(r.tobytes() for r in rows), dtype).reshape(
                    count, components
                )
            else:
                data = np.ndarray(
                    (count, components),
                    dtype,
                    buffer,
                    view_offset + offset,
                    (stride, dtype.itemsize),
                )
            data = data.copy()
        else:
            if count * element > _MAX_IMPLICIT_BYTES:
                raise self.fail(f"implausible count {count} for an accessor without data", where)
            data = np.zeros((count, components), dtype)
        sparse = accessor.get("sparse")
        if sparse is not None:
            data = self._apply_sparse(data, sparse, where)
        return data, accessor

    def _apply_sparse(
        self, data: npt.NDArray[Any], sparse: dict[str, Any], where: str
    ) -> npt.NDArray[Any]:
        """Overwrite the elements listed by a sparse accessor."""
        try:
            n = int(sparse["count"])
            idx_spec, val_spec = sparse["indices"], sparse["values"]
            idx_dtype = _COMPONENT_DTYPES[idx_spec["componentType"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise self.fail(f"bad sparse accessor ({exc})", where) from exc
        indices = self._view_array(
            idx_spec["bufferView"], idx_spec.get("byteOffset", 0), idx_dtype, n, where
        )
        values = self._view_array(
            val_spec["bufferView"],
            val_spec.get("byteOffset", 0),
            data.dtype,
            n * data.shape[1],
            where,
        )
        if n and (indices.max() >= data.shape[0]):
            raise self.fail("sparse index out of range", where)
        data[indices.astype(np.int64)] = values.reshape(n, data.shape[1])
        return data

    def _view_array(
        self, view: int, offset: int, dtype: np.dtype[Any], count: int, where: str
    ) -> npt.NDArray[Any]:
        """``count`` tightly packed values of ``dtype`` from a buffer view."""
        buffer, view_offset, view_length, _ = self.buffer_view(view)
        if offset < 0 or offset + count * dtype.itemsize > view_length:
            raise self.fail(f"data runs past the end of buffer view {view}", where)
        return np.frombuffer(buffer, dtype, count=count, offset=view_offset + offset).copy()

    def float_accessor(self, index: int) -> npt.NDArray[np.float64]:
        """The accessor as float64, integer values dequantized when ``normalized``."""
        data, accessor = self.accessor(index)
        out = data.astype(np.float64)
        if accessor.get("normalized") and data.dtype.kind in "iu":
            info = np.iinfo(data.dtype)
            out /= info.max
            if data.dtype.kind == "i":
                out = np.maximum(out, -1.0)
        return out


def _split_glb(data: bytes, source: str) -> tuple[dict[str, Any], bytes | None, int]:
    """Parse the GLB container: (JSON, BIN chunk or None, file offset of the BIN data)."""
    if len(data) < 12:
        raise FormatError(f"{source}: {len(data)} bytes is too short for a GLB header (byte 0)")
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    if magic != _GLB_MAGIC:
        raise FormatError(f"{source}: invalid GLB signature {magic!r} (byte 0): not a GLB file")
    if version != 2:
        raise FormatError(f"{source}: unsupported GLB version {version} (byte 4): need glTF 2.0")
    if length > len(data):
        raise FormatError(
            f"{source}: header length {length} exceeds the {len(data)} bytes read (byte 8): "
            "the file is truncated"
        )
    offset = 12
    gltf: dict[str, Any] | None = None
    bin_chunk: bytes | None = None
    bin_offset = 0
    while offset < length:
        if offset + 8 > length:
            raise FormatError(f"{source}: truncated chunk header (byte {offset})")
        chunk_length, chunk_type = struct.unpack_from("<II", data, offset)
        start = offset + 8
        end = start + chunk_length
        if end > length:
            raise FormatError(
                f"{source}: chunk of {chunk_length} bytes runs past the end of the file "
                f"(byte {offset})"
            )
        if gltf is None:
            if chunk_type != _CHUNK_JSON:
                raise FormatError(f"{source}: first chunk is not JSON (byte {offset})")
            try:
                parsed = json.loads(data[start:end].decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise FormatError(f"{source}: invalid JSON chunk: {exc} (byte {start})") from exc
            if not isinstance(parsed, dict):
                raise FormatError(f"{source}: JSON chunk is not an object (byte {start})")
            gltf = parsed
        elif chunk_type == _CHUNK_BIN and bin_chunk is None:
            bin_chunk = bytes(data[start:end])
            bin_offset = start
        offset = end + (-end % 4)
    if gltf is None:
        raise FormatError(f"{source}: GLB has no JSON chunk (byte 12)")
    return gltf, bin_chunk, bin_offset


def _load_buffers(gltf: dict[str, Any], bin_chunk: bytes | None, source: str) -> list[bytes]:
    """Buffer bytes: the BIN chunk for the URI-less first buffer, base64 data: URIs decoded."""
    buffers: list[bytes] = []
    for i, buffer in enumerate(gltf.get("buffers", [])):
        uri = buffer.get("uri") if isinstance(buffer, dict) else None
        if uri is None:
            if i != 0 or bin_chunk is None:
                raise FormatError(
                    f"{source}: buffer {i} has no uri and no BIN chunk (JSON /buffers/{i})"
                )
            buffers.append(bin_chunk)
        elif isinstance(uri, str) and uri.startswith("data:") and ";base64," in uri:
            buffers.append(base64.b64decode(uri.split(";base64,", 1)[1]))
        else:
            raise FormatError(
                f"{source}: external buffer {uri!r} is not supported (JSON /buffers/{i}): "
                "embed buffers in the GLB"
            )
    return buffers


def _node_matrix(node: dict[str, Any]) -> npt.NDArray[np.float64]:
    """The local 4x4 transform of a node (column-major ``matrix`` or T * R * S)."""
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T
    t = np.asarray(node.get("translation", [0.0, 0.0, 0.0]), dtype=np.float64)
    x, y, z, w = np.asarray(node.get("rotation", [0.0, 0.0, 0.0, 1.0]), dtype=np.float64)
    s = np.asarray(node.get("scale", [1.0, 1.0, 1.0]), dtype=np.float64)
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * s[None, :]
    matrix[:3, 3] = t
    return matrix


def _placed_nodes(gltf: dict[str, Any], source: str) -> list[tuple[int, npt.NDArray[np.float64]]]:
    """(node index, world matrix) of every node reachable from the scene, depth first."""
    nodes = gltf.get("nodes", [])
    scenes = gltf.get("scenes")
    if scenes:
        scene_index = gltf.get("scene", 0)
        if not isinstance(scene_index, int) or not 0 <= scene_index < len(scenes):
            raise FormatError(f"{source}: scene {scene_index!r} does not exist (JSON /scene)")
        roots = list(scenes[scene_index].get("nodes", []))
    else:
        children = {c for node in nodes for c in node.get("children", [])}
        roots = [i for i in range(len(nodes)) if i not in children]
    placed: list[tuple[int, npt.NDArray[np.float64]]] = []
    stack = [(i, np.eye(4), frozenset[int]()) for i in reversed(roots)]
    while stack:
        index, parent, ancestors = stack.pop()
        if not isinstance(index, int) or not 0 <= index < len(nodes) or index in ancestors:
            raise FormatError(f"{source}: bad or cyclic node reference {index!r} (JSON /nodes)")
        node = nodes[index]
        try:
            world = parent @ _node_matrix(node)
        except (ValueError, TypeError) as exc:
            raise FormatError(f"{source}: bad node transform: {exc} (JSON /nodes/{index})") from exc
        if not np.isfinite(world).all():
            raise FormatError(f"{source}: non-finite node transform (JSON /nodes/{index})")
        placed.append((index, world))
        for child in reversed(node.get("children", [])):
            stack.append((child, world, ancestors | {index}))
    return placed


def _triangles(mode: int, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Triangle list (m, 3) from a TRIANGLES, TRIANGLE_STRIP or TRIANGLE_FAN index sequence."""
    if mode == 4:
        return indices[: len(indices) // 3 * 3].reshape(-1, 3)
    if len(indices) < 3:
        return np.zeros((0, 3), np.int64)
    k = np.arange(len(indices) - 2)
    if mode == 5:
        # Every other strip triangle is flipped to keep the winding consistent.
        even = k % 2 == 0
        a = np.where(even, indices[k], indices[k + 1])
        b = np.where(even, indices[k + 1], indices[k])
        return np.stack([a, b, indices[k + 2]], axis=1)
    return np.stack([np.full_like(k, indices[0]), indices[k + 1], indices[k + 2]], axis=1)


def _feature_ids(decoder: _Decoder, stored: npt.NDArray[Any], where: str) -> npt.NDArray[np.int64]:
    """Integer feature IDs from a stored SCALAR attribute (FLOAT ones hold exact integers)."""
    values = stored[:, 0]
    if values.dtype.kind == "f" and not (np.isfinite(values) & (np.abs(values) < 2**53)).all():
        raise decoder.fail("feature ID attribute holds non-finite values", where)
    return np.rint(values).astype(np.int64)


def _decode_primitive(
    decoder: _Decoder,
    primitive: dict[str, Any],
    world: npt.NDArray[np.float64],
    node: int,
    where: str,
) -> DecodedPrimitive:
    """Decode one primitive and place it with its node's world matrix."""
    extensions = primitive.get("extensions", {})
    for compressed in ("KHR_draco_mesh_compression", "EXT_meshopt_compression"):
        if compressed in extensions:
            raise FormatError(f"{decoder.source}: {compressed} is not supported ({where})")
    attribute_indices = primitive.get("attributes", {})
    if "POSITION" not in attribute_indices:
        raise decoder.fail("primitive has no POSITION", where)
    attributes = {name: decoder.accessor(i)[0] for name, i in attribute_indices.items()}
    to_tiles = _Y_UP_TO_Z_UP @ world

    local = decoder.float_accessor(attribute_indices["POSITION"])
    if not np.isfinite(local).all():
        raise decoder.fail("POSITION holds NaN or infinite values", where)
    positions = local @ to_tiles[:3, :3].T + to_tiles[:3, 3]
    rtc = decoder.gltf.get("extensions", {}).get("CESIUM_RTC", {}).get("center")
    if rtc is not None:
        # CESIUM_RTC's center is given in the Z-up tile frame.
        positions = positions + np.asarray(rtc, dtype=np.float64)
    n = positions.shape[0]

    normals = None
    if "NORMAL" in attribute_indices:
        normal_matrix = np.linalg.inv(to_tiles[:3, :3]).T
        stored_normals = decoder.float_accessor(attribute_indices["NORMAL"])
        if not np.isfinite(stored_normals).all():
            raise decoder.fail("NORMAL holds NaN or infinite values", where)
        normals = stored_normals @ normal_matrix.T
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = normals / np.where(length > 0, length, 1.0)

    colors = None
    if "COLOR_0" in attribute_indices:
        rgba = decoder.float_accessor(attribute_indices["COLOR_0"])
        if rgba.shape[1] == 3:
            rgba = np.hstack([rgba, np.ones((rgba.shape[0], 1))])
        colors = rgba

    feature_ids = None
    property_table = None
    feature_sets = extensions.get("EXT_mesh_features", {}).get("featureIds", [])
    if feature_sets:
        first = feature_sets[0]
        if isinstance(first.get("propertyTable"), int):
            property_table = first["propertyTable"]
        if "attribute" in first:
            name = f"_FEATURE_ID_{first['attribute']}"
            if name not in attributes:
                raise decoder.fail(f"EXT_mesh_features refers to missing attribute {name}", where)
            feature_ids = _feature_ids(decoder, attributes[name], where)
        elif "texture" not in first:
            feature_ids = np.arange(n, dtype=np.int64)  # implicit: the vertex index
    elif "_FEATURE_ID_0" in attributes:
        feature_ids = _feature_ids(decoder, attributes["_FEATURE_ID_0"], where)

    mode = primitive.get("mode", 4)
    indices = None
    if mode in (4, 5, 6):
        if "indices" in primitive:
            flat = decoder.accessor(primitive["indices"])[0].reshape(-1).astype(np.int64)
        else:
            flat = np.arange(n, dtype=np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= n):
            raise decoder.fail(f"index {int(flat.max())} is out of range for {n} vertices", where)
        indices = _triangles(mode, flat)
        mode = 4
    return DecodedPrimitive(
        mode=mode,
        positions=positions,
        indices=indices,
        normals=normals,
        colors=colors,
        feature_ids=feature_ids,
        attributes=attributes,
        node=node,
        property_table=property_table,
        material=primitive["material"] if isinstance(primitive.get("material"), int) else None,
    )


def _offsets(decoder: _Decoder, view: int, kind: str, count: int, where: str) -> npt.NDArray[Any]:
    """``count`` offsets of type ``kind`` (UINT8..UINT64) from a buffer view."""
    dtype = _METADATA_DTYPES.get(kind)
    if dtype is None or dtype.kind != "u":
        raise decoder.fail(f"bad offset type {kind!r}", where)
    return decoder._view_array(view, 0, dtype, count, where).astype(np.int64)


def _decode_property(
    decoder: _Decoder,
    prop: dict[str, Any],
    definition: dict[str, Any],
    enums: dict[str, Any],
    count: int,
    where: str,
) -> list[Any] | npt.NDArray[Any]:
    """Decode one property-table column (scalars, vectors, matrices, strings, booleans, enums,
    fixed or variable-length arrays of them)."""
    kind = definition.get("type")
    if definition.get("array") and "count" not in definition:
        starts = _offsets(
            decoder, prop["arrayOffsets"], prop.get("arrayOffsetType", "UINT32"), count + 1, where
        )
        elements = int(starts[-1])
    else:
        per_row = int(definition.get("count", 1)) if definition.get("array") else 1
        starts = np.arange(count + 1, dtype=np.int64) * per_row
        elements = count * per_row

    values: list[Any] | npt.NDArray[Any]
    if kind == "STRING":
        offsets = _offsets(
            decoder,
            prop["stringOffsets"],
            prop.get("stringOffsetType", "UINT32"),
            elements + 1,
            where,
        )
        buffer, view_offset, view_length, _ = decoder.buffer_view(prop["values"])
        if elements and (offsets[-1] > view_length or (np.diff(offsets) < 0).any()):
            raise decoder.fail("string offsets run past the values buffer view", where)
        raw = buffer[view_offset : view_offset + view_length]
        try:
            values = [
                raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)
            ]
        except UnicodeDecodeError as exc:
            raise decoder.fail(f"string is not UTF-8: {exc}", where) from exc
    elif kind == "BOOLEAN":
        nbytes = (elements + 7) // 8
        bits = decoder._view_array(prop["values"], 0, np.dtype("u1"), nbytes, where)
        values = np.unpackbits(bits, bitorder="little")[:elements].astype(bool)
    elif kind == "ENUM":
        enum = enums.get(definition.get("enumType", ""), {})
        dtype = _METADATA_DTYPES.get(enum.get("valueType", "UINT16"))
        if dtype is None:
            raise decoder.fail("bad enum valueType", where)
        codes = decoder._view_array(prop["values"], 0, dtype, elements, where)
        names = {v["value"]: v["name"] for v in enum.get("values", [])}
        values = [names.get(int(c), int(c)) for c in codes]
    elif kind in _TYPE_SIZES:
        dtype = _METADATA_DTYPES.get(definition.get("componentType", ""))
        if dtype is None:
            raise decoder.fail(f"bad componentType {definition.get('componentType')!r}", where)
        size = _TYPE_SIZES[kind]
        flat = decoder._view_array(prop["values"], 0, dtype, elements * size, where)
        values = flat.reshape(elements, size) if size > 1 else flat
    else:
        raise decoder.fail(f"unsupported property type {kind!r}", where)

    if not definition.get("array"):
        return values
    if isinstance(values, np.ndarray) and "count" in definition:
        return values.reshape(count, int(definition["count"]), *values.shape[1:])
    return [values[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]


def _property_tables(decoder: _Decoder) -> list[dict[str, list[Any] | npt.NDArray[Any]]]:
    """Decode every EXT_structural_metadata property table with its embedded schema."""
    metadata = decoder.gltf.get("extensions", {}).get("EXT_structural_metadata")
    if not metadata:
        return []
    tables_json = metadata.get("propertyTables", [])
    if tables_json and "schema" not in metadata:
        raise decoder.fail(
            "property tables with an external schemaUri cannot be decoded",
            "JSON /extensions/EXT_structural_metadata",
        )
    schema = metadata.get("schema", {})
    tables: list[dict[str, list[Any] | npt.NDArray[Any]]] = []
    for t, table in enumerate(tables_json):
        where = f"JSON /extensions/EXT_structural_metadata/propertyTables/{t}"
        count = table.get("count")
        # Every row takes at least one bit of some buffer: bounds the allocations below.
        if not isinstance(count, int) or not 0 <= count <= 8 * sum(map(len, decoder.buffers)) + 8:
            raise decoder.fail(f"implausible property table count {count!r}", where)
        definitions = schema.get("classes", {}).get(table.get("class"), {}).get("properties")
        if definitions is None:
            raise decoder.fail(f"class {table.get('class')!r} is not in the schema", where)
        columns: dict[str, list[Any] | npt.NDArray[Any]] = {}
        for name, prop in table.get("properties", {}).items():
            if name not in definitions:
                raise decoder.fail(f"property {name!r} is not in the class", where)
            try:
                columns[name] = _decode_property(
                    decoder,
                    prop,
                    definitions[name],
                    schema.get("enums", {}),
                    count,
                    f"{where}/properties/{name}",
                )
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, FormatError):
                    raise
                raise decoder.fail(f"bad property table entry ({exc!r})", where) from exc
        tables.append(columns)
    return tables


def read_glb(data: bytes, *, source: str = "<bytes>") -> DecodedGLB:
    """Decode a GLB: primitives in the Z-up 3D Tiles frame and decoded property tables."""
    gltf, bin_chunk, bin_offset = _split_glb(bytes(data), source)
    primitives: list[DecodedPrimitive] = []
    try:
        decoder = _Decoder(gltf, _load_buffers(gltf, bin_chunk, source), source)
        decoder.bin_offset = bin_offset
        for node_index, world in _placed_nodes(gltf, source):
            node = gltf["nodes"][node_index]
            if "mesh" not in node:
                continue
            mesh = decoder.item("meshes", node["mesh"])
            for p, primitive in enumerate(mesh.get("primitives", [])):
                where = f"JSON /meshes/{node['mesh']}/primitives/{p}"
                primitives.append(_decode_primitive(decoder, primitive, world, node_index, where))
        tables = _property_tables(decoder)
    except FormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # Structurally wrong JSON (wrong types where objects or numbers belong).
        raise FormatError(f"{source}: malformed glTF JSON: {exc!r} (JSON chunk)") from exc
    return DecodedGLB(json=gltf, primitives=primitives, property_tables=tables)
