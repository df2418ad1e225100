"""Out-of-core point-cloud tiling: placement, spill to disk, octree with grid-subsampled LOD.

The stages, each a picklable task for a process pool (the pipeline schedules them):

1. ``ingest_points`` (one task per range of points of one file): decode, filter classes, place
   in the tileset's east-north-up frame (``GridTransform``: exact transforms on a lattice,
   bilinear in between, checked to ``TOLERANCE.placement``), quantize to ``UNIT`` (0.1 mm) on
   the root cube, and append each point to the spill file of its *cell* (the octree node at a
   fixed level whose subtree fits in a worker's memory if the density is even). File names
   carry the task index, so a cell's points are read back in file order whatever order the
   tasks ran in. Spill files hold columns (``PointColumns``), appended in blocks.
   ``split_cell`` moves the points of a cell that turned out too dense a few levels down.
2. ``build_cell`` (one task per cell): sort the cell's points by Morton code, split nodes
   until they hold at most ``max_points_per_tile``, and fill parents bottom-up with one point
   per voxel of a 128³ grid over the node (the point nearest the voxel centre: well spread,
   deterministic, no random numbers). Every node's tile is written as soon as its parent has
   taken its sample; the cell root's points wait in a *pending* file.
3. ``merge_node`` (one task per node above the cells, deepest level first): the same
   subsampling over the children's pending points.

Refinement is ADD, the classic for point clouds (Potree, Entwine, py3dtiles): a parent's points
are not repeated in its children, so the tileset holds every kept point exactly once (no byte
spent twice), a refined view draws parent + children, and a parent's sample is always shown.
REPLACE would store the top levels' points again in every level below.

Geometric error: a node's own error is the largest distance from a point of its sampling pool
to the point chosen for its voxel (measured, not assumed; at most the voxel diagonal), plus the
largest error among its children (a point two levels down is within the child's error of a
child point, which is within the measured distance of a parent point). Leaves: 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon

from twin import GENERATOR
from twin.errors import GeometryError, InputError
from twin.model.points import PointSource
from twin.ops.area import contains_xy
from twin.writers.gltf import PointContent, PropertyAttribute, write_points_glb

__all__ = [
    "POINT_CLASS",
    "POINT_TILING",
    "CellTask",
    "GridTransform",
    "IngestResult",
    "IngestTask",
    "MergeTask",
    "NodeInfo",
    "PointColumns",
    "RootCube",
    "SplitTask",
    "TileOptions",
    "build_cell",
    "cell_files",
    "fit_grid_transform",
    "ingest_points",
    "merge_node",
    "morton_axes",
    "node_address",
    "point_schema",
    "split_cell",
    "srgb16_to_linear8",
]

FloatArray = npt.NDArray[np.float64]

UNIT = 1e-4
"""Metres per step of the integer positions spilled to disk (0.1 mm)."""
MORTON_BITS = 21
"""Bits per axis of the Morton codes (3 x 21 = 63 bits): the deepest octree level."""
POSITION_BITS = 32
"""Spilled positions are uint32 steps of UNIT from the root cube's corner (429 km)."""
MAX_EXTENT_M = UNIT * 2**POSITION_BITS * 0.9
"""Points spanning more than this (m) are not one survey: wrong CRS, scale or offset."""


@dataclass(frozen=True, slots=True)
class PointTilingDefaults:
    """Defaults of the point-cloud tree and its level of detail."""

    max_points_per_tile: int = 100_000
    """Leaves split above this; parents coarsen their sampling grid to stay below it."""
    grid_bits: int = 7
    """Parents keep one point per voxel of a (2**grid_bits)³ grid over the node (128³)."""
    points_per_chunk: int = 262_144
    """Points decoded at a time by one reader."""
    block: int = 65_536
    """Points per numpy pass: temporaries stay in the CPU cache (2-4x faster here)."""
    spill_buffer_bytes: int = 16 << 20
    """Spill records held per ingest task before they are appended to the cell files."""
    cell_points: int = 1 << 19
    """Target points per cell (one worker holds one cell's points, ~100 bytes each): larger
    cells save little time (fewer merges) and cost memory in every worker."""


@dataclass(frozen=True, slots=True)
class PlacementTolerances:
    """How exact placement must be (m)."""

    placement: float = 2e-4
    """Bilinear lattice against the exact CRS transform, checked at every cell centre."""
    lattice_max_nodes: int = 256
    """Lattice nodes per axis at most; beyond, points are transformed exactly one by one."""


POINT_TILING = PointTilingDefaults()
TOLERANCE = PlacementTolerances()

POINT_CLASS = "point"
"""Metadata class of the per-point properties (EXT_structural_metadata property attributes)."""
POINT_ATTRIBUTES = {"classification": "_CLASSIFICATION", "intensity": "_INTENSITY"}
"""Property id -> glTF vertex attribute semantic."""

COLUMNS: tuple[tuple[str, str], ...] = (
    ("ex", "<u4"),
    ("ey", "<u4"),
    ("ez", "<u4"),
    ("rgba", "<u4"),
    ("intensity", "<u2"),
    ("classification", "u1"),
)
"""Per-point columns on disk and in memory: position in UNIT steps from the root corner,
linear RGB bytes packed as R | G << 8 | B << 16 | 255 << 24 (COLOR_0 with its padding byte),
attributes. Columns, not records: gathering 4-byte items is 30x faster than 18-byte records."""
_BLOCK_HEADER = np.dtype("<i8")
_OPAQUE = np.uint32(0xFF000000)


@dataclass
class PointColumns:
    """A set of points as columns (see COLUMNS)."""

    ex: npt.NDArray[np.uint32]
    ey: npt.NDArray[np.uint32]
    ez: npt.NDArray[np.uint32]
    rgba: npt.NDArray[np.uint32]
    intensity: npt.NDArray[np.uint16]
    classification: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.ex.shape[0])

    def take(self, index: npt.NDArray[np.intp] | slice) -> PointColumns:
        """The points at ``index`` (an index array or a slice)."""
        return PointColumns(*(getattr(self, name)[index] for name, _ in COLUMNS))

    @staticmethod
    def concatenate(parts: list[PointColumns]) -> PointColumns:
        """All points of ``parts`` in order."""
        if len(parts) == 1:
            return parts[0]
        return PointColumns(
            *(np.concatenate([getattr(p, name) for p in parts]) for name, _ in COLUMNS)
        )

    def write_block(self, f: Any) -> None:
        """Append the points as one block: count, then each column, 8-byte aligned."""
        n = len(self)
        np.array([n], dtype=_BLOCK_HEADER).tofile(f)
        written = 0
        for name, dtype in COLUMNS:
            column = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            column.tofile(f)
            written += column.nbytes
        if written % 8:
            f.write(b"\0" * (-written % 8))

    @staticmethod
    def read(path: Path) -> PointColumns:
        """Every block of a file written by write_block, in order."""
        data = np.fromfile(path, dtype=np.uint8)
        parts: list[PointColumns] = []
        offset = 0
        while offset < data.size:
            n = int(data[offset : offset + 8].view(_BLOCK_HEADER)[0])
            offset += 8
            arrays = []
            for _, dtype in COLUMNS:
                size = n * np.dtype(dtype).itemsize
                arrays.append(data[offset : offset + size].view(dtype))
                offset += size
            offset += -offset % 8
            parts.append(PointColumns(*arrays))
        if not parts:
            return PointColumns(*(np.empty(0, dtype) for _, dtype in COLUMNS))
        return PointColumns.concatenate(parts)


def point_schema(provenance_class: dict[str, Any]) -> dict[str, Any]:
    """The 3D Metadata schema of point tiles (and the tileset's provenance class)."""
    return {
        "id": "rostock_virtuell_points",
        "classes": {
            POINT_CLASS: {
                "name": "LiDAR point",
                "properties": {
                    "classification": {
                        "type": "SCALAR",
                        "componentType": "UINT8",
                        "description": "ASPRS LAS classification (2 ground, 6 building, ...)",
                    },
                    "intensity": {
                        "type": "SCALAR",
                        "componentType": "UINT16",
                        "description": "LAS intensity as recorded (0..65535)",
                    },
                },
            },
            "tileset": provenance_class,
        },
    }


def srgb16_to_linear8(bits: int) -> npt.NDArray[np.uint8]:
    """Lookup table: sRGB colour values of ``bits`` bits (8 or 16) -> linear bytes (COLOR_0)."""
    top = (1 << bits) - 1
    c = np.arange(top + 1, dtype=np.float64) / top
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return np.rint(linear * 255.0).astype(np.uint8)


# --- placement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridTransform:
    """Source CRS (x, y, z) -> local ENU metres, exact on a lattice, bilinear in between.

    Heights enter every CRS transform affinely (ECEF = P(lon, lat) + h * up(lon, lat) with
    h = H + N(lon, lat)), so ENU = F(x, y) + z * G(x, y) with smooth F and G; both are
    interpolated bilinearly on a lattice over the file's bounds whose spacing was halved until
    the interpolation matched the exact transform within ``TOLERANCE.placement`` at every cell
    centre, at the lowest and highest height. The tables hold per-cell coefficients, so one
    gather per coefficient places a point.
    """

    x0: float
    y0: float
    step: float
    nx: int
    """Cells along x (the lattice has nx + 1 nodes)."""
    ny: int
    coefficients: FloatArray
    """(24, nx * ny): for F then G, per ENU axis, c0, cu, cv, cuv of each cell."""
    z_factor: float = 1.0
    """Metres per height unit of the file (US feet when the CRS is in feet and has no height)."""
    max_error_m: float = 0.0
    """Largest difference to the exact transform seen when checking."""

    def apply(
        self, x: FloatArray, y: FloatArray, z: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """ENU east, north, up (m) of source points; the arrays may be of any length."""
        u = (x - self.x0) * (1.0 / self.step)
        v = (y - self.y0) * (1.0 / self.step)
        iu = np.clip(u, 0, self.nx - 1).astype(np.intp)
        iv = np.clip(v, 0, self.ny - 1).astype(np.intp)
        u -= iu
        v -= iv
        k = iv * self.nx
        k += iu
        zz = z * self.z_factor if self.z_factor != 1.0 else z
        out = []
        table = self.coefficients
        for axis in range(3):
            f = _bilinear(table, 4 * axis, k, u, v)
            g = _bilinear(table, 12 + 4 * axis, k, u, v)
            g *= zz
            f += g
            out.append(f)
        return out[0], out[1], out[2]


def _bilinear(table: FloatArray, row: int, k: Any, u: FloatArray, v: FloatArray) -> FloatArray:
    c0 = np.take(table[row], k)
    cu = np.take(table[row + 1], k)
    cv = np.take(table[row + 2], k)
    cuv = np.take(table[row + 3], k)
    cuv *= u
    cuv += cv
    cuv *= v
    cu *= u
    c0 += cu
    c0 += cuv
    return c0


def fit_grid_transform(
    exact: Callable[[FloatArray], FloatArray],
    mins: tuple[float, float, float],
    maxs: tuple[float, float, float],
    *,
    z_factor: float = 1.0,
    where: str = "",
) -> GridTransform:
    """A GridTransform over the box ``mins``..``maxs`` matching ``exact`` (source (n, 3) ->
    ENU (n, 3)) within TOLERANCE.placement, or InputError if no lattice small enough does."""
    x0, y0, z0 = mins
    x1, y1, z1 = maxs
    z_lo, z_hi = z0 * z_factor, z1 * z_factor
    span = max(x1 - x0, y1 - y0)
    nodes = 8
    while True:
        step = max(span / nodes, 1e-9)
        nx = max(1, math.ceil((x1 - x0) / step))
        ny = max(1, math.ceil((y1 - y0) / step))
        xs = x0 + step * np.arange(nx + 1)
        ys = y0 + step * np.arange(ny + 1)
        gx, gy = np.meshgrid(xs, ys)
        flat_x, flat_y = gx.ravel(), gy.ravel()
        f = exact(np.column_stack([flat_x, flat_y, np.zeros_like(flat_x)]))
        g = exact(np.column_stack([flat_x, flat_y, np.ones_like(flat_x)])) - f
        coefficients = np.vstack(
            [_cell_coefficients(f[:, a].reshape(ny + 1, nx + 1)) for a in range(3)]
            + [_cell_coefficients(g[:, a].reshape(ny + 1, nx + 1)) for a in range(3)]
        )
        transform = GridTransform(x0, y0, step, nx, ny, coefficients, 1.0)
        # Check at cell centres (worst case of bilinear interpolation) and the two heights.
        cx = (xs[:-1] + step / 2)[None, :].repeat(ny, axis=0).ravel()
        cy = (ys[:-1] + step / 2)[:, None].repeat(nx, axis=1).ravel()
        error = 0.0
        for h in (z_lo, z_hi, (z_lo + z_hi) / 2):
            hz = np.full_like(cx, h)
            want = exact(np.column_stack([cx, cy, hz]))
            got = np.column_stack(transform.apply(cx.copy(), cy.copy(), hz))
            error = max(error, float(np.abs(got - want).max()))
        if error <= TOLERANCE.placement:
            return GridTransform(x0, y0, step, nx, ny, coefficients, z_factor, error)
        if max(nx, ny) * 2 > TOLERANCE.lattice_max_nodes:
            raise InputError(
                f"{where}: the source CRS cannot be approximated within "
                f"{TOLERANCE.placement * 1000:.1f} mm over the file's extent of {span:.0f} "
                "units (is the CRS right?); split the file into smaller tiles"
            )
        nodes *= 2


def _cell_coefficients(values: FloatArray) -> FloatArray:
    """(ny+1, nx+1) node values -> (4, ny*nx) bilinear coefficients c0, cu, cv, cuv per cell."""
    v00 = values[:-1, :-1]
    v10 = values[:-1, 1:]
    v01 = values[1:, :-1]
    v11 = values[1:, 1:]
    return np.stack(
        [v00.ravel(), (v10 - v00).ravel(), (v01 - v00).ravel(), (v11 - v10 - v01 + v00).ravel()]
    )


# --- the root cube and Morton codes ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RootCube:
    """The octree's root: a cube of 2**(MORTON_BITS + shift) UNIT steps from ``corner``."""

    corner: tuple[float, float, float]
    """ENU metres of the cube's lowest corner."""
    shift: int
    """Spilled positions >> shift = 21-bit Morton coordinates."""

    @property
    def side(self) -> float:
        """Edge length in metres."""
        return UNIT * 2 ** (MORTON_BITS + self.shift)

    def node_side(self, level: int) -> float:
        """Edge length of an octree node at ``level`` (m)."""
        return self.side / 2**level

    @staticmethod
    def around(lo: FloatArray, hi: FloatArray, margin: float = 1.0) -> RootCube:
        """The smallest root cube holding lo..hi with ``margin`` metres around."""
        extent = float(np.max(hi - lo)) + 2 * margin
        if not math.isfinite(extent) or extent > MAX_EXTENT_M:
            raise GeometryError(
                f"the points span {extent / 1000:.0f} km: not one survey; check the CRS "
                "(--crs), the header's scale and offset, or split the input"
            )
        steps = max(1, math.ceil(extent / UNIT))
        shift = max(0, math.ceil(math.log2(steps)) - MORTON_BITS)
        corner = np.floor((lo - margin) / UNIT) * UNIT
        return RootCube((float(corner[0]), float(corner[1]), float(corner[2])), shift)


def _spread_table(bits: int) -> npt.NDArray[np.uint64]:
    """Lookup table: value -> its bits spread out with two zero bits after each."""
    values = np.arange(1 << bits, dtype=np.uint64)
    out = np.zeros_like(values)
    for bit in range(bits):
        out |= ((values >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit)
    return out


_SPREAD_LOW = _spread_table(11)
_SPREAD_HIGH = _SPREAD_LOW << np.uint64(33)
_LOW_MASK = np.uint32(0x7FF)


def morton_axes(
    x: npt.NDArray[np.uint32], y: npt.NDArray[np.uint32], z: npt.NDArray[np.uint32]
) -> npt.NDArray[np.uint64]:
    """21-bit coordinates -> 63-bit Morton codes (x lowest bit, then y, then z)."""
    code = np.take(_SPREAD_LOW, x & _LOW_MASK)
    code |= np.take(_SPREAD_HIGH, x >> np.uint32(11))
    for axis, values in ((1, y), (2, z)):
        part = np.take(_SPREAD_LOW, values & _LOW_MASK)
        part |= np.take(_SPREAD_HIGH, values >> np.uint32(11))
        part <<= np.uint64(axis)
        code |= part
    return code


def morton_codes(q: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint64]:
    """(n, 3) 21-bit coordinates -> 63-bit Morton codes (x lowest, then y, then z)."""
    return morton_axes(q[:, 0], q[:, 1], q[:, 2])


def node_address(level: int, prefix: int) -> str:
    """"r" followed by the octant digits (0-7) from the root down to the node."""
    digits = "".join(str((prefix >> (3 * (level - 1 - i))) & 7) for i in range(level))
    return "r" + digits


# --- 1. ingest -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestTask:
    """Decode one range of one file and spill its points to cell files."""

    index: int
    source: PointSource
    transform: GridTransform
    root: RootCube
    cell_level: int
    spill_dir: Path
    header_mins: tuple[float, float, float]
    header_maxs: tuple[float, float, float]
    bounds_tolerance: tuple[float, float, float]
    classes: tuple[int, ...] | None = None
    rgb_bits: int = 0
    """8 or 16: colours of the file; 0: none (white if the tileset has colours)."""
    area: Polygon | None = None
    """Keep only points in this polygon (file x/y)."""
    points_per_chunk: int = POINT_TILING.points_per_chunk


@dataclass
class IngestResult:
    """What one ingest task read and spilled."""

    index: int
    points_read: int = 0
    points_kept: int = 0
    classes: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(256, np.int64))
    cells: dict[int, int] = field(default_factory=dict)
    """Cell (Morton prefix at the cell level) -> points spilled."""
    lo: FloatArray = field(default_factory=lambda: np.full(3, np.inf))
    hi: FloatArray = field(default_factory=lambda: np.full(3, -np.inf))


def spill_path(spill_dir: Path, level: int, cell: int, task: int) -> Path:
    """The spill file of one cell written by one ingest task."""
    return spill_dir / node_address(level, cell) / f"t{task:06d}.bin"


def ingest_points(task: IngestTask) -> IngestResult:
    """Read, filter, place and spill one range of points (runs in a worker process)."""
    result = IngestResult(task.index)
    keep_class = None
    if task.classes is not None:
        keep_class = np.zeros(256, dtype=bool)
        keep_class[list(task.classes)] = True
    lut = srgb16_to_linear8(task.rgb_bits) if task.rgb_bits else None
    spill = _SpillWriter(task.spill_dir, task.cell_level, task.index)
    lo_allowed = np.asarray(task.header_mins) - np.asarray(task.bounds_tolerance)
    hi_allowed = np.asarray(task.header_maxs) + np.asarray(task.bounds_tolerance)
    cell_shift = np.uint32(task.root.shift + MORTON_BITS - task.cell_level)
    corner = task.root.corner
    limit = float(2 ** (MORTON_BITS + task.root.shift))
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for chunk in task.source.chunks(task.points_per_chunk):
        n = len(chunk)
        result.points_read += n
        _check_bounds(task, chunk.x, chunk.y, chunk.z, chunk.start, lo_allowed, hi_allowed)
        result.classes += np.bincount(chunk.classification, minlength=256)
        if keep_class is not None:
            mask = keep_class[chunk.classification]
            if not mask.all():
                chunk = chunk.select(mask)
                n = len(chunk)
        if task.area is not None and n:
            mask = contains_xy(task.area, chunk.x, chunk.y)
            if not mask.all():
                chunk = chunk.select(mask)
                n = len(chunk)
        if n == 0:
            continue
        if lut is not None and chunk.rgb is not None:
            rgb = chunk.rgb if task.rgb_bits == 16 else np.minimum(chunk.rgb, 255)
            rgba = np.take(lut, rgb[:, 0]).astype(np.uint32)
            rgba |= np.take(lut, rgb[:, 1]).astype(np.uint32) << np.uint32(8)
            rgba |= np.take(lut, rgb[:, 2]).astype(np.uint32) << np.uint32(16)
            rgba |= _OPAQUE
        else:
            rgba = np.full(n, 0xFFFFFFFF, dtype=np.uint32)
        points = PointColumns(
            np.empty(n, np.uint32),
            np.empty(n, np.uint32),
            np.empty(n, np.uint32),
            rgba,
            chunk.intensity,
            chunk.classification,
        )
        e = (points.ex, points.ey, points.ez)
        cells = np.empty(n, dtype=np.int64)
        for start in range(0, n, POINT_TILING.block):
            stop = min(n, start + POINT_TILING.block)
            placed = task.transform.apply(
                chunk.x[start:stop], chunk.y[start:stop], chunk.z[start:stop]
            )
            cell_axes = []
            for axis, values in enumerate(placed):
                values -= corner[axis]
                values *= 1.0 / UNIT
                np.rint(values, out=values)
                low, high = float(values.min()), float(values.max())
                if low < 0 or high >= limit:
                    raise GeometryError(
                        f"{task.source.path}: point {chunk.start + start} lies outside the "
                        "extent computed from the header bounds: the header is inconsistent; "
                        "repair it (e.g. lasinfo -repair_bb, pdal translate)"
                    )
                lo[axis] = min(lo[axis], low)
                hi[axis] = max(hi[axis], high)
                steps = e[axis][start:stop]
                steps[:] = values
                cell_axes.append(steps >> cell_shift)
            cells[start:stop] = morton_axes(*cell_axes).view(np.int64)
        spill.add(points, cells, result.cells)
        result.points_kept += n
    spill.flush()
    result.lo = lo * UNIT + np.asarray(corner)
    result.hi = hi * UNIT + np.asarray(corner)
    return result


def _check_bounds(
    task: IngestTask,
    x: FloatArray,
    y: FloatArray,
    z: FloatArray,
    start: int,
    lo: FloatArray,
    hi: FloatArray,
) -> None:
    """GeometryError naming the first point outside the header's bounding box."""
    for axis, values in enumerate((x, y, z)):
        if values.size and (values.min() < lo[axis] or values.max() > hi[axis]):
            bad = np.flatnonzero((values < lo[axis]) | (values > hi[axis]))[0]
            raise GeometryError(
                f"{task.source.path}: point {start + int(bad)} at ({x[bad]:.3f}, {y[bad]:.3f}, "
                f"{z[bad]:.3f}) lies outside the bounding box its header declares "
                f"({', '.join(f'{v:.3f}' for v in task.header_mins)} to "
                f"{', '.join(f'{v:.3f}' for v in task.header_maxs)}): the header is "
                "inconsistent; repair it (e.g. lasinfo -repair_bb, pdal translate)"
            )


class _SpillWriter:
    """Buffers points per cell and appends them to the cell files in large writes."""

    def __init__(self, spill_dir: Path, level: int, task: int) -> None:
        self.spill_dir = spill_dir
        self.level = level
        self.task = task
        self.buffers: dict[int, list[PointColumns]] = {}
        self.points = 0

    def add(
        self, points: PointColumns, cells: npt.NDArray[np.int64], counts: dict[int, int]
    ) -> None:
        """Queue ``points`` under their cells (file order kept within each cell)."""
        small = cells.max() < 2**16
        order = np.argsort(cells.astype(np.uint16) if small else cells, kind="stable")
        ordered = cells[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], len(order)]
        grouped = points.take(order)
        for s, t in zip(starts.tolist(), ends.tolist(), strict=True):
            cell = int(ordered[s])
            self.buffers.setdefault(cell, []).append(grouped.take(slice(s, t)))
            counts[cell] = counts.get(cell, 0) + (t - s)
        self.points += len(points)
        if self.points * _POINT_BYTES >= POINT_TILING.spill_buffer_bytes:
            self.flush()

    def flush(self) -> None:
        """Append every queued point to its cell's file, one block per cell."""
        for cell, parts in self.buffers.items():
            path = spill_path(self.spill_dir, self.level, cell, self.task)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as f:
                PointColumns.concatenate(parts).write_block(f)
        self.buffers.clear()
        self.points = 0


_POINT_BYTES = sum(np.dtype(dtype).itemsize for _, dtype in COLUMNS)


# --- 2./3. the octree ----------------------------------------------------------------------


@dataclass
class NodeInfo:
    """One octree node as the tileset needs it."""

    level: int
    prefix: int
    count: int = 0
    """Points in the node's own tile."""
    lo: tuple[float, float, float] | None = None
    hi: tuple[float, float, float] | None = None
    """ENU bounds of the node's own points (None without points)."""
    sampling_error: float = 0.0
    """Largest distance (m) from a point of the sampling pool to its voxel's chosen point."""
    children: list[int] = field(default_factory=list)
    """Prefixes of the children (level + 1)."""
    bytes: int = 0
    duplicates_dropped: int = 0
    tile: bool = False
    """True if this record carries the node's final tile (count, lo, hi, bytes)."""

    @property
    def address(self) -> str:
        """Octant path, e.g. "r0374"."""
        return node_address(self.level, self.prefix)


@dataclass(frozen=True)
class TileOptions:
    """What every tile-writing task needs to know."""

    root: RootCube
    tiles_dir: Path
    pending_dir: Path
    max_points_per_tile: int = POINT_TILING.max_points_per_tile
    grid_bits: int = POINT_TILING.grid_bits
    quantization_step: float = 0.005
    """Largest position step in a tile (m): half the finest scale of the inputs."""
    colors: bool = True
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class CellTask:
    """Build the subtree of one cell from its spill files."""

    level: int
    prefix: int
    files: tuple[Path, ...]
    options: TileOptions


@dataclass(frozen=True)
class MergeTask:
    """Subsample one node above the cells from its children's pending points."""

    level: int
    prefix: int
    children: tuple[int, ...]
    options: TileOptions


def pending_path(pending_dir: Path, level: int, prefix: int) -> Path:
    """Where a node's points wait until its parent has taken its sample."""
    return pending_dir / f"{node_address(level, prefix)}.bin"


def build_cell(task: CellTask) -> list[NodeInfo]:
    """Subtree of one cell: tiles of every node below the cell root, the root's points
    pending (or its tile, if the cell is the octree root)."""
    points = PointColumns.concatenate([PointColumns.read(p) for p in sorted(task.files)])
    for path in task.files:
        path.unlink()  # read back: free the disk space now
    tree = _Subtree(points, task.options)
    del points
    root = tree.build(task.level, task.prefix, 0, tree.size)
    tree.finish_root(root)
    return tree.infos


def merge_node(task: MergeTask) -> list[NodeInfo]:
    """A node above the cells: sample its children's pending points, write their tiles."""
    options = task.options
    paths = [pending_path(options.pending_dir, task.level + 1, c) for c in sorted(task.children)]
    points = PointColumns.concatenate([PointColumns.read(path) for path in paths])
    # Each pending file is in Morton order and the children come in octant order: so is all.
    tree = _Subtree(points, options, presorted=True)
    del points
    node = NodeInfo(task.level, task.prefix, children=sorted(task.children))
    tree.owner[:] = task.level + 1
    ranges = tree.child_ranges(task.level, task.prefix, 0, tree.size)
    tree.sample(node, 0, tree.size)
    for prefix, start, stop in ranges:
        # The child's structure (children, error) came from its own task; this is its tile.
        tree.write_tile(NodeInfo(task.level + 1, prefix), start, stop)
    tree.finish_root(node)
    for path in paths:
        path.unlink()
    return tree.infos


class _Subtree:
    """Points of one region in Morton order (as columns), with the level of the node that
    owns each point (-1: dropped duplicate)."""

    def __init__(
        self, points: PointColumns, options: TileOptions, *, presorted: bool = False
    ) -> None:
        self.options = options
        self.size = n = len(points)
        shift = np.uint32(options.root.shift)
        self.ex, self.ey, self.ez = points.ex, points.ey, points.ez
        codes = np.empty(n, dtype=np.uint64)
        for a in range(0, n, POINT_TILING.block):
            b = min(n, a + POINT_TILING.block)
            codes[a:b] = morton_axes(self.ex[a:b] >> shift, self.ey[a:b] >> shift,
                                     self.ez[a:b] >> shift)
        if not presorted:
            order = _stable_order(codes)
            codes = codes[order]
            points = points.take(order)
        self.points = points
        self.ex, self.ey, self.ez = points.ex, points.ey, points.ez
        self.codes = codes
        self.owner = np.full(n, -1, dtype=np.int8)
        self.infos: list[NodeInfo] = []

    def child_ranges(
        self, level: int, prefix: int, a: int, b: int
    ) -> list[tuple[int, int, int]]:
        """(child prefix, start, stop) of the non-empty children of a node's range."""
        shift = np.uint64(3 * (MORTON_BITS - level - 1))
        base = prefix << 3
        keys = np.array([(base + k) for k in range(1, 8)], dtype=np.uint64) << shift
        cuts = (np.searchsorted(self.codes[a:b], keys) + a).tolist()
        edges = [a, *cuts, b]
        return [
            (base + k, edges[k], edges[k + 1]) for k in range(8) if edges[k + 1] > edges[k]
        ]

    def build(self, level: int, prefix: int, a: int, b: int) -> NodeInfo:
        """Split ``a``..``b`` into the subtree of node (level, prefix); sample bottom-up."""
        node = NodeInfo(level, prefix)
        limit = self.options.max_points_per_tile
        if b - a <= limit or level == MORTON_BITS:
            keep = b - a
            if keep > limit:
                # Every point here has the same 21-bit code (a sub-millimetre cube at most
                # metres wide roots): duplicates for display; keep the first ``limit``.
                node.duplicates_dropped = keep - limit
                keep = limit
            self.owner[a : a + keep] = level
            return node
        ranges = self.child_ranges(level, prefix, a, b)
        children = [self.build(level + 1, p, s, t) for p, s, t in ranges]
        node.children = [c.prefix for c in children]
        self.sample(node, a, b)
        for child, (_, s, t) in zip(children, ranges, strict=True):
            self.write_tile(child, s, t)
        return node

    def sample(self, node: NodeInfo, a: int, b: int) -> None:
        """Move one point per occupied voxel of the node's grid from the children's points
        (owner == level + 1) up to the node; record the sampling error."""
        level = node.level
        pool = np.flatnonzero(self.owner[a:b] == level + 1)
        if pool.size == 0:
            return
        pool += a
        codes = self.codes[pool]
        bits = max(0, MORTON_BITS - level - self.options.grid_bits)
        while True:
            voxel = codes >> np.uint64(3 * bits)
            starts = np.flatnonzero(np.r_[True, voxel[1:] != voxel[:-1]])
            if starts.size <= self.options.max_points_per_tile or bits >= MORTON_BITS - level:
                break
            bits += 1
        lengths = np.diff(np.r_[starts, pool.size])
        shift = np.uint32(self.options.root.shift)
        axes = [values[pool] for values in (self.ex, self.ey, self.ez)]
        d2 = np.zeros(pool.size, dtype=np.int64)
        if bits > 0:
            half = np.int64(1 << (bits - 1))
            for values in axes:
                q = (values >> shift).astype(np.int64)
                d = q & np.int64((1 << bits) - 1)
                d -= half
                d *= d
                d2 += d
        best = np.minimum.reduceat(d2, starts)
        candidates = np.flatnonzero(d2 == np.repeat(best, lengths))
        run = np.repeat(np.arange(starts.size), lengths)[candidates]
        chosen = candidates[np.r_[True, run[1:] != run[:-1]]]
        self.owner[pool[chosen]] = level
        squared = np.zeros(pool.size, dtype=np.float64)
        for values in axes:
            offset = values.astype(np.float64)
            offset -= np.repeat(offset[chosen], lengths)
            offset *= offset
            squared += offset
        node.sampling_error = math.sqrt(float(squared.max())) * UNIT

    def write_tile(self, node: NodeInfo, a: int, b: int) -> None:
        """Write the tile of a node whose points are final (owner == its level)."""
        idx = np.flatnonzero(self.owner[a:b] == node.level)
        node.tile = True
        self.infos.append(node)
        if idx.size == 0:
            return
        idx += a
        options = self.options
        axes = [values[idx] for values in (self.ex, self.ey, self.ez)]
        lo_steps = [int(v.min()) for v in axes]
        hi_steps = [int(v.max()) for v in axes]
        corner = options.root.corner
        lo = tuple(corner[i] + lo_steps[i] * UNIT for i in range(3))
        hi = tuple(corner[i] + hi_steps[i] * UNIT for i in range(3))
        extent = max(h - low for h, low in zip(hi_steps, lo_steps, strict=True))
        # Integer steps of UNIT per quantum: exact, and within the allowed step.
        per_quantum = max(1, -(-extent // 65535))
        attributes = {
            "_CLASSIFICATION": self.points.classification[idx],
            "_INTENSITY": self.points.intensity[idx],
        }
        colors = self.points.rgba[idx].view(np.uint8).reshape(-1, 4) if options.colors else None
        if per_quantum * UNIT <= options.quantization_step:
            quantized = np.empty((idx.size, 3), dtype=np.uint16)
            for i, values in enumerate(axes):
                values -= np.uint32(lo_steps[i])
                if per_quantum > 1:
                    values += np.uint32(per_quantum // 2)
                    values //= np.uint32(per_quantum)
                    np.minimum(values, 65535, out=values)
                quantized[:, i] = values
            content = PointContent(
                positions=None,
                origin=np.asarray(lo),
                colors=colors,
                attributes=attributes,
                quantization_step=per_quantum * UNIT,
                quantized=quantized,
            )
        else:
            origin = np.round((np.asarray(lo) + np.asarray(hi)) / 2.0, 2)
            positions = np.column_stack(
                [v.astype(np.float64) * UNIT + (corner[i] - origin[i]) for i, v in enumerate(axes)]
            )
            content = PointContent(
                positions=positions, origin=origin, colors=colors, attributes=attributes
            )
        data = write_points_glb(
            content,
            schema=options.schema,
            property_attribute=PropertyAttribute(POINT_CLASS, dict(POINT_ATTRIBUTES)),
            generator=GENERATOR,
        )
        (options.tiles_dir / f"{node.address}.glb").write_bytes(data)
        node.count = int(idx.size)
        node.lo = (float(lo[0]), float(lo[1]), float(lo[2]))
        node.hi = (float(hi[0]), float(hi[1]), float(hi[2]))
        node.bytes = len(data)

    def finish_root(self, node: NodeInfo) -> None:
        """The region's top node: its tile if it is the octree root, else pending points."""
        if node.level == 0:
            self.write_tile(node, 0, self.size)
            return
        idx = np.flatnonzero(self.owner == node.level)
        with open(pending_path(self.options.pending_dir, node.level, node.prefix), "wb") as f:
            self.points.take(idx).write_block(f)
        node.count = int(idx.size)
        self.infos.append(node)


def _stable_order(codes: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
    """Sorting permutation of ``codes`` with ties in input order, on every machine.

    numpy's default sort is the fastest but may order equal keys differently with and
    without SIMD sorting; equal Morton codes (points within a fraction of a millimetre) are
    rare, so they are put back in input order afterwards instead of paying for a stable sort.
    """
    order = np.argsort(codes)
    ordered = codes[order]
    tied = np.flatnonzero(ordered[1:] == ordered[:-1])
    if tied.size:
        mark = np.zeros(codes.size, dtype=bool)
        mark[tied] = True
        mark[tied + 1] = True
        members = np.flatnonzero(mark)
        run = np.cumsum(np.r_[True, ordered[members[1:]] != ordered[members[:-1]]])
        run += np.cumsum(np.r_[False, members[1:] != members[:-1] + 1])
        within = np.lexsort((order[members], run))
        order[members] = order[members][within]
    return order


def cell_files(spill_dir: Path, level: int, cell: int) -> tuple[Path, ...]:
    """The spill files of one cell, in task order."""
    folder = spill_dir / node_address(level, cell)
    return tuple(sorted(folder.iterdir())) if folder.is_dir() else ()


@dataclass(frozen=True)
class SplitTask:
    """Redistribute the points of a cell too dense for a worker's memory to its descendants
    ``levels`` levels down (read one spill file at a time: bounded memory)."""

    level: int
    prefix: int
    levels: int
    files: tuple[Path, ...]
    root: RootCube
    spill_dir: Path


def split_cell(task: SplitTask) -> dict[int, int]:
    """Spill a cell's points into its descendants' cells; returns their point counts."""
    new_level = task.level + task.levels
    shift = np.uint32(task.root.shift + MORTON_BITS - new_level)
    counts: dict[int, int] = {}
    for path in sorted(task.files):
        points = PointColumns.read(path)
        index = int(path.stem[1:])
        writer = _SpillWriter(task.spill_dir, new_level, index)
        for a in range(0, len(points), POINT_TILING.points_per_chunk):
            block = points.take(slice(a, a + POINT_TILING.points_per_chunk))
            cells = morton_axes(block.ex >> shift, block.ey >> shift, block.ez >> shift)
            writer.add(block, cells.view(np.int64), counts)
        writer.flush()
        del points
        path.unlink()
    return counts
