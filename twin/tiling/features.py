"""An append-only spill store of triangulated features, so tiling never holds a whole city.

During ingest each feature's full mesh and its simplified proxy go to one binary file; only
a small fixed-size record (centre, bounds, sizes, proxy error, offsets) stays in memory, and
the attributes go to a JSON-lines file. Tile writers read back just the features they need.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.ops.mesh import FeatureMesh

# One row per feature; float64 so that bounds stay exact in the local frame.
_RECORD_FIELDS = (
    "centre_x",
    "centre_y",
    "min_x",
    "min_y",
    "min_z",
    "max_x",
    "max_y",
    "max_z",
    "proxy_error",
    "importance",
)


@dataclass(frozen=True, slots=True)
class FeatureInfo:
    """What the store keeps in memory about one feature."""

    gml_id: str
    cls: str
    attributes: dict[str, Any]


@dataclass(slots=True)
class EncodedFeatures:
    """Features serialised in the store's layout, ready to append (made in workers)."""

    geometry: bytes
    attributes: bytes
    meshes: list[tuple[int, int, int, int, int]]
    """Per feature: offset in ``geometry``, full vertices/triangles, proxy vertices/triangles."""
    attribute_spans: list[tuple[int, int]]
    records: list[tuple[float, ...]]
    sizes: list[int]


def encode_features(
    features: list[tuple[FeatureInfo, FeatureMesh, FeatureMesh, float, float]],
) -> EncodedFeatures:
    """Serialise (info, full mesh, proxy mesh, proxy error, importance) tuples."""
    geometry: list[bytes] = []
    attributes: list[bytes] = []
    meshes: list[tuple[int, int, int, int, int]] = []
    spans: list[tuple[int, int]] = []
    records: list[tuple[float, ...]] = []
    sizes: list[int] = []
    g_offset = a_offset = 0
    for info, full, proxy, proxy_error, importance in features:
        lo, hi = full.bounds()
        centre = (lo + hi) / 2.0
        records.append((float(centre[0]), float(centre[1]), *map(float, lo), *map(float, hi),
                        float(proxy_error), float(importance)))
        start = g_offset
        for mesh in (full, proxy):
            for array, dtype in (
                (mesh.vertices, np.float64),
                (mesh.triangles, np.uint32),
                (mesh.normals, np.float32),
                (mesh.colors, np.uint8),
            ):
                data = np.ascontiguousarray(array, dtype=dtype).tobytes()
                geometry.append(data)
                g_offset += len(data)
        meshes.append(
            (start, len(full.vertices), len(full.triangles), len(proxy.vertices),
             len(proxy.triangles))
        )
        line = json.dumps(
            {"id": info.gml_id, "cls": info.cls, "a": info.attributes},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        attributes.append(line + b"\n")
        spans.append((a_offset, len(line)))
        a_offset += len(line) + 1
        # Estimated GLB bytes of the full mesh: position+normal+colour+id per vertex, indices.
        sizes.append(len(full.vertices) * 36 + len(full.triangles) * 12)
    return EncodedFeatures(
        b"".join(geometry), b"".join(attributes), meshes, spans, records, sizes
    )


class FeatureStore:
    """Features spilled to ``directory``: full meshes, LoD proxies, attributes."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._geometry = open(directory / "geometry.bin", "wb+")  # noqa: SIM115 - closed in close()
        self._attributes = open(directory / "attributes.jsonl", "w+b")  # noqa: SIM115
        # Per feature rows as numpy blocks (one per appended batch): about 130 bytes a
        # feature, so memory stays small however many buildings a city has.
        self._records: list[npt.NDArray[np.float64]] = []
        self._mesh_offsets: list[npt.NDArray[np.int64]] = []
        self._attribute_offsets: list[npt.NDArray[np.int64]] = []
        self._sizes: list[npt.NDArray[np.int64]] = []
        self._count = 0
        self._index: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None

    def __len__(self) -> int:
        return self._count

    def append(
        self,
        info: FeatureInfo,
        full: FeatureMesh,
        proxy: FeatureMesh,
        proxy_error: float,
        importance: float,
    ) -> int:
        """Store one feature; returns its index."""
        self.append_encoded(encode_features([(info, full, proxy, proxy_error, importance)]))
        return self._count - 1

    def append_encoded(self, batch: EncodedFeatures) -> None:
        """Store features a worker already serialised (two writes, whatever their number)."""
        geometry_start = self._geometry.tell()
        attributes_start = self._attributes.tell()
        self._geometry.write(batch.geometry)
        self._attributes.write(batch.attributes)
        if not batch.meshes:
            return
        meshes = np.asarray(batch.meshes, dtype=np.int64).reshape(-1, 5)
        meshes[:, 0] += geometry_start
        spans = np.asarray(batch.attribute_spans, dtype=np.int64).reshape(-1, 2)
        spans[:, 0] += attributes_start
        self._mesh_offsets.append(meshes)
        self._attribute_offsets.append(spans)
        self._records.append(np.asarray(batch.records, dtype=np.float64).reshape(-1, 10))
        self._sizes.append(np.asarray(batch.sizes, dtype=np.int64))
        self._count += len(meshes)
        self._index = None

    def finish(self) -> None:
        """Flush writes and save the index; the store is read-only afterwards and other
        processes can open it with ``FeatureStore.open``."""
        self._geometry.flush()
        self._attributes.flush()
        np.savez(
            self.directory / "index.npz",
            mesh_offsets=self._offsets()[0],
            attribute_offsets=self._offsets()[1],
        )

    @classmethod
    def open(cls, directory: Path) -> FeatureStore:
        """Open a finished store read-only (in a worker process, say)."""
        store = cls.__new__(cls)
        store.directory = directory
        store._geometry = open(directory / "geometry.bin", "rb")  # noqa: SIM115
        store._attributes = open(directory / "attributes.jsonl", "rb")  # noqa: SIM115
        with np.load(directory / "index.npz") as index:
            store._mesh_offsets = [index["mesh_offsets"]]
            store._attribute_offsets = [index["attribute_offsets"]]
        store._index = None
        store._count = len(store._mesh_offsets[0])
        store._records = []
        store._sizes = []
        return store

    def _offsets(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Mesh and attribute offsets of all features as two arrays (joined once, cached)."""
        if self._index is None:
            self._index = (
                np.concatenate(self._mesh_offsets or [np.zeros((0, 5), np.int64)]),
                np.concatenate(self._attribute_offsets or [np.zeros((0, 2), np.int64)]),
            )
        return self._index

    def close(self) -> None:
        """Close the files (the directory is the caller's to remove)."""
        self._geometry.close()
        self._attributes.close()

    @property
    def records(self) -> npt.NDArray[np.float64]:
        """(n, 10) array: centre x/y, min xyz, max xyz, proxy error, importance."""
        if not self._records:
            return np.zeros((0, len(_RECORD_FIELDS)))
        return np.concatenate(self._records)

    @property
    def sizes(self) -> npt.NDArray[np.int64]:
        """Estimated content bytes of each feature's full mesh."""
        if not self._sizes:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(self._sizes)

    def _read_mesh(
        self, offset: int, n_vertices: int, n_triangles: int
    ) -> tuple[FeatureMesh, int]:
        fd = self._geometry.fileno()
        parts = []
        for dtype, count in (
            (np.float64, n_vertices * 3),
            (np.uint32, n_triangles * 3),
            (np.float32, n_vertices * 3),
            (np.uint8, n_vertices * 4),
        ):
            size = count * np.dtype(dtype).itemsize
            parts.append(np.frombuffer(os.pread(fd, size, offset), dtype=dtype))
            offset += size
        mesh = FeatureMesh(
            parts[0].reshape(-1, 3),
            parts[1].reshape(-1, 3),
            parts[2].reshape(-1, 3),
            parts[3].reshape(-1, 4),
        )
        return mesh, offset

    def mesh(self, index: int, *, proxy: bool = False) -> FeatureMesh:
        """The full mesh of a feature, or its simplified proxy."""
        start, nv, nt, pv, pt = (int(v) for v in self._offsets()[0][index])
        if not proxy:
            return self._read_mesh(start, nv, nt)[0]
        return self._read_mesh(start + nv * 40 + nt * 12, pv, pt)[0]

    def info(self, index: int) -> FeatureInfo:
        """Id, class and attributes of a feature."""
        start, length = (int(v) for v in self._offsets()[1][index])
        row = json.loads(os.pread(self._attributes.fileno(), length, start))
        return FeatureInfo(row["id"], row["cls"], row["a"])
