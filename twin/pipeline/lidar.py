"""LiDAR (LAS/LAZ/COPC) → 3D Tiles 1.1: point-cloud tiles, a terrain mesh, or both.

``build_lidar`` checks every header, resolves each file's CRS (``--crs`` overrides; none is an
error), places points in one east-north-up frame, and runs the out-of-core tiler of
``twin.tiling.points`` in a process pool:

1. ingest: each worker decodes a range of points of one file (LAZ seeks by its chunk table),
   places the points and spills them to per-cell files;
2. cells: each worker builds the octree below one cell (bounded points, so bounded memory);
3. merge: the nodes above the cells, deepest level first.

Memory does not grow with the input: a worker holds one chunk (ingest) or one cell (tiling),
and the cell size comes from ``--memory-budget``. The output is deterministic (the same
inputs and options give byte-identical tiles whatever the number of workers) and published
atomically: built in a staging folder, then renamed over ``out``.

The terrain (``--mode terrain|both``) streams the same files once more, into
``twin.ops.terrain.TerrainGridBuilder`` in this process, and is tiled by
``twin.tiling.terrain``.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyproj
from shapely.geometry import Polygon

from twin.crs import (
    CRS_HINT,
    EcefTransformer,
    SourceCRS,
    ecef_transformer,
    enu_to_ecef_matrix,
    parse_crs_option,
    source_crs_from_pyproj,
)
from twin.errors import CRSError, InputError, NothingToTile, TwinError
from twin.model.heights import HeightGrid
from twin.model.points import PointCloudHeader
from twin.ops.area import area_in_crs
from twin.pipeline.common import (
    LocalFrame,
    Progress,
    box_diagonal,
    provenance,
    write_tileset_json,
)
from twin.readers.las import LasSource, read_header, sample_rgb_max
from twin.tiling.points import (
    POINT_TILING,
    UNIT,
    CellTask,
    GridTransform,
    IngestResult,
    IngestTask,
    MergeTask,
    NodeInfo,
    RootCube,
    SplitTask,
    TileOptions,
    build_cell,
    cell_files,
    fit_grid_transform,
    ingest_points,
    merge_node,
    point_schema,
    split_cell,
)
from twin.tiling.tileset import Tile, box_from_bounds, column_major, metadata_schema
from twin.tiling.tileset import tileset_document as make_tileset_document
from twin.writers.heights import write_heights
from twin.writers.store import staged_directory

log = logging.getLogger(__name__)

MODES = ("points", "terrain", "both")

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class LidarBudget:
    """How memory is planned (bytes); measured on this project's workers."""

    main_process: int = 160 << 20
    """The coordinating process: Python, numpy, pyproj, laspy, the tile index."""
    worker_process: int = 110 << 20
    """A worker without data: Python, numpy, laspy/lazrs, pyproj (laspy imports it)."""
    ingest_worker: int = 70 << 20
    """A worker's data while decoding and spilling one chunk."""
    bytes_per_cell_point: int = 100
    """A worker's data per point of the cell it tiles (records, codes, sorting, pools)."""
    min_cell_points: int = 50_000


BUDGET = LidarBudget()
DEFAULT_MEMORY_BUDGET = 2 << 30
POINTS_PER_INGEST_TASK = 2_000_000
"""Points decoded by one ingest task: enough tasks to keep every worker busy."""
WORKER_MODULES = ("twin.tiling.points", "twin.readers.las")
"""What the worker processes import before their first task."""
INLINE_POINTS = 500_000
MAX_CELL_LEVEL = 14
"""Deepest cell level (cells of side 2**-14 of the root: about 1 cm for 1 km)."""
"""Below this many points the work runs in this process: starting workers costs more."""


@dataclass(slots=True)
class LidarOptions:
    """Options of a LiDAR build."""

    mode: str = "points"
    crs: str | None = None
    geoid: Path | None = None
    classes: tuple[int, ...] | None = None
    """Keep only these ASPRS classes (points and terrain); None keeps all."""
    cell: float = 1.0
    """Terrain grid cell (m)."""
    dsm: bool = False
    """Terrain as a surface model (highest return per cell) instead of the ground (DTM)."""
    workers: int | None = None
    """Worker processes; None: one per CPU core."""
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    """Bytes the whole process tree may use."""
    max_points_per_tile: int = POINT_TILING.max_points_per_tile
    attribution: str = ""
    area: Polygon | None = None
    """Keep only points in this polygon (the terrain: its bounding box)."""
    area_crs: str = "EPSG:25833"
    """The CRS of ``area``."""
    write_heights: bool = False
    """Also write the terrain grid as ``heights.npz`` (see twin/writers/heights.py)."""


@dataclass(slots=True)
class LidarBuildReport:
    """What a LiDAR build did, for the user and for ``build-report.json``."""

    inputs: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    mode: str = "points"
    source_crs: str = ""
    vertical_model: str = ""
    vertical_error_m: float = 0.0
    origin_lon_lat_h: tuple[float, float, float] = (0.0, 0.0, 0.0)
    points_read: int = 0
    points_kept: int = 0
    points_in_tiles: int = 0
    duplicates_dropped: int = 0
    classes_read: dict[str, int] = field(default_factory=dict)
    class_filter: list[int] | None = None
    rgb: bool = False
    tiles: int = 0
    tile_bytes: int = 0
    depth: int = 0
    root_geometric_error: float = 0.0
    terrain_tiles: int = 0
    terrain_bytes: int = 0
    terrain_cells: int = 0
    terrain_surface: str = ""
    """"dtm (classes 2)", "dtm (lowest-point filter (PMF))" or "dsm"."""
    terrain_filled_fraction: float = 0.0
    """Share of terrain cells without points, filled by interpolation (water, buildings)."""
    workers: int = 1
    memory_budget: int = 0
    cell_points: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seconds_by_stage: dict[str, float] = field(default_factory=dict)
    out: str = ""

    @property
    def points_per_second(self) -> float:
        """Points read per second of the whole build."""
        return self.points_read / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_memory(text: str) -> int:
    """Bytes of "2GB", "1.5GiB", "800M", "512MB", "1000000" (binary multiples)."""
    match = _SIZE.match(text)
    if match is None:
        raise InputError(f"memory budget {text!r} is not a size: write e.g. 2GB, 800MB")
    value = float(match[1]) * 1024 ** " kmgt".index((match[2] or " ").lower())
    return int(value)


@dataclass
class _Input:
    """One input file with everything the ingest needs."""

    header: PointCloudHeader
    source: SourceCRS
    transformer: EcefTransformer
    transform: GridTransform | None = None
    rgb_bits: int = 0
    area: Polygon | None = None
    """The build's area in this file's x/y, if any."""
    lo: npt.NDArray[np.float64] | None = None
    hi: npt.NDArray[np.float64] | None = None


def build_lidar(
    paths: Sequence[Path],
    out: Path,
    options: LidarOptions | None = None,
    progress: Progress | None = None,
) -> LidarBuildReport:
    """Build one 3D Tiles 1.1 tileset from LAS/LAZ/COPC files and publish it at ``out``."""
    options = options or LidarOptions()
    if options.mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, not {options.mode!r}")
    started = time.perf_counter()
    report = LidarBuildReport(
        inputs=[str(p) for p in paths],
        mode=options.mode,
        out=str(out),
        memory_budget=options.memory_budget,
        class_filter=sorted(options.classes) if options.classes is not None else None,
    )
    stage = _Stages(report)
    inputs = _inputs(paths, options, report)
    frame = LocalFrame()
    _place(inputs, frame, report)
    stage.done("headers")
    workers, cell_points = _plan(options, sum(i.header.point_count for i in inputs))
    report.workers, report.cell_points = workers, cell_points
    with staged_directory(out) as staging:
        root_tiles: list[Tile] = []
        if options.mode in ("points", "both"):
            root_tiles.append(
                _build_points(inputs, frame, options, staging, workers, cell_points, report,
                              stage, progress)
            )
        if options.mode in ("terrain", "both"):
            root_tiles.append(_build_terrain(inputs, frame, options, staging, report, progress))
            stage.done("terrain")
        _write_tileset(staging, root_tiles, frame, options, report)
        report.seconds = round(time.perf_counter() - started, 3)
        (staging / "build-report.json").write_text(
            json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"
        )
    return report


class _Stages:
    """Seconds per stage, for the report."""

    def __init__(self, report: LidarBuildReport) -> None:
        self.report = report
        self.last = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.report.seconds_by_stage[name] = round(now - self.last, 3)
        self.last = now


# --- inputs and placement ------------------------------------------------------------------


def _inputs(
    paths: Sequence[Path], options: LidarOptions, report: LidarBuildReport
) -> list[_Input]:
    if not paths:
        raise InputError("no input files: pass one or more LAS/LAZ/COPC files")
    override = parse_crs_option(options.crs) if options.crs else None
    inputs: list[_Input] = []
    for path in paths:
        header = read_header(Path(path))
        report.formats.append(f"{header.format} {header.version} format {header.point_format}")
        if header.point_count == 0:
            report.warnings.append(f"{path}: holds no points; skipped")
            continue
        source = override or _file_crs(header)
        try:
            transformer = ecef_transformer(source, options.geoid)
        except CRSError as exc:
            raise type(exc)(f"{path}: {exc}") from None
        item = _Input(header, source, transformer)
        if options.area is not None:
            item.area = area_in_crs(options.area, options.area_crs, source.horizontal)
            if _area_bounds(item) is None:
                report.warnings.append(f"{path}: outside the area; skipped")
                continue
        inputs.append(item)
    if not inputs and options.area is not None:
        raise NothingToTile(f"{', '.join(map(str, paths))}: no file reaches into the area")
    if not inputs:
        raise InputError(
            f"{', '.join(map(str, paths))}: no points in the input (the header says 0): "
            "nothing to tile"
        )
    labels = sorted({i.source.label for i in inputs})
    report.source_crs = "; ".join(labels)
    models = {i.transformer.vertical_model for i in inputs}
    report.vertical_model = "; ".join(sorted(m.name for m in models))
    report.vertical_error_m = max(m.expected_error_m for m in models)
    return inputs


def _area_bounds(item: _Input) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """The file's header bounds, cut to the area's bounding box (None: they do not meet)."""
    mins = np.asarray(item.header.mins, dtype=np.float64).copy()
    maxs = np.asarray(item.header.maxs, dtype=np.float64).copy()
    if item.area is not None:
        xmin, ymin, xmax, ymax = item.area.bounds
        mins[:2] = np.maximum(mins[:2], (xmin, ymin))
        maxs[:2] = np.minimum(maxs[:2], (xmax, ymax))
        if (mins[:2] > maxs[:2]).any():
            return None
    return mins, maxs


def _file_crs(header: PointCloudHeader) -> SourceCRS:
    if not header.crs_wkt:
        why = f" ({header.crs_problem})" if header.crs_problem else ""
        raise CRSError(f"{header.path}: the file declares no usable CRS{why}: {CRS_HINT}")
    try:
        crs = pyproj.CRS.from_wkt(header.crs_wkt)
        # LAS writes x = easting/longitude, y = northing/latitude whatever the CRS says.
        return source_crs_from_pyproj(crs, header.crs_name, xy_order=True)
    except (CRSError, pyproj.exceptions.CRSError) as exc:
        raise CRSError(f"{header.path}: {header.crs_record} CRS record: {exc}") from None


def _z_factor(source: SourceCRS) -> float:
    """Metres per height unit: without a vertical CRS, heights of a projected CRS in feet are
    taken in its unit (the usual practice of US data); everything else is metres."""
    if source.vertical is not None or source.is_geographic:
        return 1.0
    axes = source.horizontal.axis_info
    factor = axes[0].unit_conversion_factor if axes else 1.0
    return float(factor) if factor and math.isfinite(factor) else 1.0


def _place(inputs: list[_Input], frame: LocalFrame, report: LidarBuildReport) -> None:
    """Fix the frame at the first file's centre; fit each file's placement lattice."""
    converters: dict[EcefTransformer, Callable[[npt.NDArray[np.float64]], Any]] = {}
    for item in inputs:
        try:
            _place_file(item, converters, frame, report)
        except TwinError as exc:
            if str(item.header.path) in str(exc):
                raise
            raise type(exc)(
                f"{item.header.path}: {exc} (header bounds "
                f"{', '.join(f'{v:g}' for v in item.header.mins)} to "
                f"{', '.join(f'{v:g}' for v in item.header.maxs)}: absurd coordinates or the "
                "wrong CRS?)"
            ) from None
    assert frame.origin is not None
    report.origin_lon_lat_h = frame.origin_lon_lat_h()


def _place_file(
    item: _Input,
    converters: dict[EcefTransformer, Callable[[npt.NDArray[np.float64]], Any]],
    frame: LocalFrame,
    report: LidarBuildReport,
) -> None:
    """Fit one file's placement lattice (the first file fixes the frame)."""
    header = item.header
    if item.transformer not in converters:
        converters[item.transformer] = frame.to_local(item.transformer)
    exact = converters[item.transformer]
    bounds = _area_bounds(item)
    assert bounds is not None
    mins, maxs = bounds
    z_factor = _z_factor(item.source)
    if z_factor != 1.0:
        report.warnings.append(
            f"{header.path}: no vertical CRS; heights taken in the horizontal CRS's unit "
            f"({z_factor:g} m)"
        )
    if frame.origin is None:
        centre = (mins + maxs) / 2.0
        centre[2] *= z_factor
        exact(centre[None, :])  # the first call fixes the frame's origin
    item.transform = fit_grid_transform(
        exact, header.mins, header.maxs, z_factor=z_factor, where=str(header.path)
    )
    # ENU bounds: the box's surface through the lattice (the map is smooth and nearly
    # affine, so its extremes lie on the boundary).
    u = np.linspace(0.0, 1.0, 17)
    gx, gy = np.meshgrid(mins[0] + u * (maxs[0] - mins[0]), mins[1] + u * (maxs[1] - mins[1]))
    corners = []
    for z in (mins[2], maxs[2]):
        east, north, up = item.transform.apply(
            gx.ravel(), gy.ravel(), np.full(gx.size, float(z))
        )
        corners.append(np.column_stack([east, north, up]))
    stacked = np.vstack(corners)
    item.lo, item.hi = stacked.min(axis=0), stacked.max(axis=0)
    item.rgb_bits = _rgb_bits(header)


def _rgb_bits(header: PointCloudHeader) -> int:
    """8 or 16 for the file's colours, 0 without (or with all-black, i.e. unset) colours."""
    largest = sample_rgb_max(header)
    if largest == 0:
        return 0
    return 8 if largest <= 255 else 16


def _plan(options: LidarOptions, points: int) -> tuple[int, int]:
    """Workers and points per cell that fit the memory budget."""
    workers = options.workers or os.cpu_count() or 1
    workers = max(1, min(workers, 64))
    budget = options.memory_budget
    while True:
        per_worker = (budget - BUDGET.main_process) // workers - BUDGET.worker_process
        cell_points = min(POINT_TILING.cell_points, per_worker // BUDGET.bytes_per_cell_point)
        if cell_points >= BUDGET.min_cell_points and per_worker >= BUDGET.ingest_worker:
            return workers, int(cell_points)
        if workers == 1:
            need = (
                BUDGET.main_process
                + BUDGET.worker_process
                + max(BUDGET.ingest_worker, BUDGET.min_cell_points * BUDGET.bytes_per_cell_point)
            )
            raise InputError(
                f"memory budget of {budget / 2**20:.0f} MiB is too small: a build needs at "
                f"least {need / 2**20:.0f} MiB (pass --memory-budget)"
            )
        workers -= 1


# --- point tiles ---------------------------------------------------------------------------


def _build_points(
    inputs: list[_Input],
    frame: LocalFrame,
    options: LidarOptions,
    staging: Path,
    workers: int,
    cell_points: int,
    report: LidarBuildReport,
    stage: _Stages,
    progress: Progress | None,
) -> Tile:
    lo = np.min([i.lo for i in inputs], axis=0)
    hi = np.max([i.hi for i in inputs], axis=0)
    root = RootCube.around(lo, hi)
    total = sum(i.header.point_count for i in inputs)
    cell_level = _cell_level(root, lo, hi, total, cell_points)
    spill_dir = staging / "_spill"
    pending_dir = staging / "_pending"
    tiles_dir = staging / "tiles"
    for folder in (spill_dir, pending_dir, tiles_dir):
        folder.mkdir()
    tasks: list[IngestTask] = []
    for item in inputs:
        header = item.header
        assert item.transform is not None
        tolerance = tuple(abs(s) for s in header.scales)
        # COPC's chunks vary in size and cannot be sought: one task reads such a file.
        per_task = POINTS_PER_INGEST_TASK if header.seekable else header.point_count
        for start in range(0, header.point_count, per_task):
            stop = min(header.point_count, start + per_task)
            tasks.append(
                IngestTask(
                    index=len(tasks),
                    source=LasSource(header.path, start, stop),
                    transform=item.transform,
                    root=root,
                    cell_level=cell_level,
                    spill_dir=spill_dir,
                    header_mins=header.mins,
                    header_maxs=header.maxs,
                    bounds_tolerance=(tolerance[0], tolerance[1], tolerance[2]),
                    classes=options.classes,
                    rgb_bits=item.rgb_bits,
                    area=item.area,
                )
            )
    colors = any(i.rgb_bits for i in inputs)
    report.rgb = colors
    scale = min(_finest_step_m(i) for i in inputs)
    provenance_class = metadata_schema({})["classes"]["tileset"]
    tile_options = TileOptions(
        root=root,
        tiles_dir=tiles_dir,
        pending_dir=pending_dir,
        max_points_per_tile=options.max_points_per_tile,
        quantization_step=max(scale / 2.0, UNIT),
        colors=colors,
        schema=point_schema(provenance_class),
    )
    inline = workers == 1 or total <= INLINE_POINTS
    with _Runner(1 if inline else workers) as runner:
        results: list[IngestResult] = []
        sizes = {t.index: t.source.stop - t.source.start for t in tasks}
        for result in runner.map(ingest_points, tasks, key=lambda t: sizes[t.index]):
            results.append(result)
            if progress:
                progress(result.points_read)
        stage.done("ingest")
        counts = _aggregate(results, inputs, options, report)
        cells = _split_dense_cells(
            runner, {(cell_level, c): n for c, n in counts.items()}, cell_points, root, spill_dir
        )
        infos: dict[tuple[int, int], NodeInfo] = {}
        cell_tasks = [
            CellTask(level, cell, cell_files(spill_dir, level, cell), tile_options)
            for level, cell in sorted(cells)
        ]
        for nodes in runner.map(
            build_cell, cell_tasks, key=lambda t: cells[(t.level, t.prefix)]
        ):
            _collect(infos, nodes, progress)
        shutil.rmtree(spill_dir, ignore_errors=True)
        stage.done("cells")
        # Every ancestor of a cell is merged, deepest first (cells may sit at several levels).
        waiting = set(cells)
        for level in range(max(lvl for lvl, _ in cells) - 1, -1, -1):
            parents: dict[int, list[int]] = {}
            for lvl, prefix in sorted(waiting):
                if lvl == level + 1:
                    parents.setdefault(prefix >> 3, []).append(prefix)
            merge_tasks = [
                MergeTask(level, p, tuple(children), tile_options)
                for p, children in sorted(parents.items())
            ]
            for nodes in runner.map(merge_node, merge_tasks, key=lambda t: len(t.children)):
                _collect(infos, nodes, progress)
            waiting = {n for n in waiting if n[0] != level + 1} | {(level, p) for p in parents}
        stage.done("merge")
    shutil.rmtree(pending_dir, ignore_errors=True)
    return _tile_tree(infos, root, report)


def _split_dense_cells(
    runner: _Runner,
    cells: dict[tuple[int, int], int],
    cell_points: int,
    root: RootCube,
    spill_dir: Path,
) -> dict[tuple[int, int], int]:
    """Cells whose points would not fit a worker's memory are split further (dense spots:
    cells are sized for an even density), until every cell fits or is as deep as allowed."""
    limit = 2 * cell_points
    while True:
        dense = [
            (key, n) for key, n in sorted(cells.items())
            if n > limit and key[0] < MAX_CELL_LEVEL
        ]
        if not dense:
            return cells
        tasks = []
        for (level, prefix), n in dense:
            levels = min(MAX_CELL_LEVEL - level, max(1, math.ceil(math.log(n / cell_points, 4))))
            tasks.append(SplitTask(level, prefix, levels, cell_files(spill_dir, level, prefix),
                                   root, spill_dir))
            del cells[(level, prefix)]
        for task, counts in zip(tasks, runner.map(split_cell, tasks, key=lambda t: 0),
                                strict=True):
            for cell, n in counts.items():
                key = (task.level + task.levels, cell)
                cells[key] = cells.get(key, 0) + n


_METRES_PER_DEGREE = 111_320.0
"""At the equator; the finest step of geographic coordinates is at most this."""


def _finest_step_m(item: _Input) -> float:
    """The smallest coordinate step of a file in metres (its scales in the CRS's units)."""
    sx, sy, sz = (abs(s) for s in item.header.scales)
    factor = _z_factor(item.source)
    horizontal = min(sx, sy) * (_METRES_PER_DEGREE if item.source.is_geographic else factor)
    return min(horizontal, sz * factor)


def _cell_level(
    root: RootCube, lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64], points: int,
    cell_points: int,
) -> int:
    """The octree level whose nodes hold about ``cell_points`` points if the points cover
    the horizontal extent evenly (airborne LiDAR does, roughly)."""
    area = max(float((hi[0] - lo[0]) * (hi[1] - lo[1])), 1.0)
    if points <= cell_points:
        return 0
    side = math.sqrt(area * cell_points / points)
    return max(0, min(MAX_CELL_LEVEL, math.ceil(math.log2(root.side / side))))


def _aggregate(
    results: list[IngestResult],
    inputs: list[_Input],
    options: LidarOptions,
    report: LidarBuildReport,
) -> dict[int, int]:
    cells: dict[int, int] = {}
    classes = np.zeros(256, dtype=np.int64)
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for result in results:
        report.points_read += result.points_read
        report.points_kept += result.points_kept
        classes += result.classes
        lo, hi = np.minimum(lo, result.lo), np.maximum(hi, result.hi)
        for cell, n in result.cells.items():
            cells[cell] = cells.get(cell, 0) + n
    report.classes_read = {str(c): int(n) for c, n in enumerate(classes) if n}
    names = ", ".join(str(i.header.path) for i in inputs)
    if report.points_kept == 0:
        if options.classes is not None:
            raise InputError(
                f"{names}: no point has one of the classes {sorted(options.classes)} "
                f"(classes present: {', '.join(report.classes_read) or 'none'}): change --classes"
            )
        raise InputError(f"{names}: no points: nothing to tile")
    if float(np.max(hi - lo)) < UNIT:
        raise InputError(
            f"{names}: all {report.points_kept} points lie at one position "
            f"(ENU {', '.join(f'{v:.3f}' for v in lo)} m in the tileset frame): a point cloud "
            "without extent cannot be tiled; check the file's coordinates and scale"
        )
    return cells


def _collect(
    infos: dict[tuple[int, int], NodeInfo], nodes: Iterable[NodeInfo], progress: Progress | None
) -> None:
    """Merge the node records of one task: a node's structure comes from the task where it was
    the top node, its tile from the task of its parent."""
    for node in nodes:
        key = (node.level, node.prefix)
        known = infos.get(key)
        if known is None:
            infos[key] = node
        elif node.tile:
            known.count, known.lo, known.hi, known.bytes = node.count, node.lo, node.hi, node.bytes
            known.tile = True
            known.duplicates_dropped += node.duplicates_dropped
        else:
            known.children, known.sampling_error = node.children, node.sampling_error
            known.duplicates_dropped += node.duplicates_dropped
        if progress and node.bytes:
            progress(node.count)


def _tile_tree(
    infos: dict[tuple[int, int], NodeInfo], root: RootCube, report: LidarBuildReport
) -> Tile:
    """The tile JSON of the octree, children first (errors and boxes grow upwards)."""
    depth = 0

    def build(level: int, prefix: int) -> tuple[Tile | None, float]:
        nonlocal depth
        node = infos[(level, prefix)]
        report.duplicates_dropped += node.duplicates_dropped
        children: list[Tile] = []
        errors: list[float] = []
        for child in sorted(node.children):
            tile, error = build(level + 1, child)
            if tile is not None:
                children.append(tile)
                errors.append(error)
        if node.lo is None and not children:
            return None, 0.0
        depth = max(depth, level)
        error = node.sampling_error + max(errors) if children else 0.0
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        if node.lo is not None and node.hi is not None:
            lo, hi = np.asarray(node.lo), np.asarray(node.hi)
            report.tiles += 1
            report.tile_bytes += node.bytes
            report.points_in_tiles += node.count
        for child in children:
            box = child["boundingVolume"]["box"]
            centre = np.array(box[:3])
            half = np.array([box[3], box[7], box[11]])
            lo, hi = np.minimum(lo, centre - half), np.maximum(hi, centre + half)
        tile: Tile = {
            "boundingVolume": box_from_bounds(lo, hi),
            "geometricError": _ceil_mm(error),
        }
        if node.lo is not None:
            tile["content"] = {"uri": f"tiles/{node.address}.glb"}
        if children:
            tile["children"] = children
        return tile, _ceil_mm(error)

    tile, _ = build(0, 0)
    assert tile is not None
    tile["refine"] = "ADD"
    report.depth = depth
    report.root_geometric_error = tile["geometricError"]
    return tile


def _ceil_mm(value: float) -> float:
    """Round an error up to the millimetre (so a parent never rounds below a child)."""
    return math.ceil(value * 1000.0) / 1000.0 if value > 0 else 0.0


# --- terrain -------------------------------------------------------------------------------


def _build_terrain(
    inputs: list[_Input],
    frame: LocalFrame,
    options: LidarOptions,
    staging: Path,
    report: LidarBuildReport,
    progress: Progress | None,
) -> Tile:
    from twin.ops.terrain import TerrainGridBuilder
    from twin.tiling.terrain import write_terrain_tiles

    labels = {i.source.label for i in inputs}
    if len(labels) > 1:
        raise InputError(
            f"the terrain grid needs one CRS, the inputs have {len(labels)} "
            f"({'; '.join(sorted(labels))}): pass --crs or build them separately"
        )
    bounds = [_area_bounds(i) for i in inputs]
    mins = np.min([b[0] for b in bounds if b is not None], axis=0)
    maxs = np.max([b[1] for b in bounds if b is not None], axis=0)
    builder = TerrainGridBuilder(
        (float(mins[0]), float(mins[1]), float(maxs[0]), float(maxs[1])),
        options.cell,
        surface="dsm" if options.dsm else "dtm",
    )
    keep = None
    if options.classes is not None:
        keep = np.zeros(256, dtype=bool)
        keep[list(options.classes)] = True
    for item in inputs:
        factor = _z_factor(item.source)
        source = LasSource(item.header.path, 0, item.header.point_count)
        for chunk in source.chunks(POINT_TILING.points_per_chunk):
            if keep is not None:
                chunk = chunk.select(keep[chunk.classification])
            z = chunk.z * factor if factor != 1.0 else chunk.z
            builder.add(chunk.x, chunk.y, z, chunk.classification)
    grid = builder.finish()
    report.terrain_cells = int(grid.heights.size)
    report.terrain_surface = grid.surface + (
        f" ({grid.ground_filter})" if grid.ground_filter else ""
    )
    report.terrain_filled_fraction = round(float(grid.filled.mean()), 4)
    first = inputs[0]
    if options.write_heights:
        write_heights(
            staging / "heights.npz",
            HeightGrid(grid.x0, grid.y0, grid.cell, grid.heights.astype(np.float32),
                       first.source.label),
        )
    exact = frame.to_local(first.transformer)
    prefix = "terrain/" if options.mode == "both" else "tiles/"
    before = _folder_stats(staging / prefix)
    tile = write_terrain_tiles(grid, exact, staging / prefix, uri_prefix=prefix)
    after = _folder_stats(staging / prefix)
    report.terrain_tiles = after[0] - before[0]
    report.terrain_bytes = after[1] - before[1]
    if "refine" not in tile:
        tile["refine"] = "REPLACE"
    return tile


def _folder_stats(folder: Path) -> tuple[int, int]:
    if not folder.is_dir():
        return 0, 0
    files = [p for p in folder.iterdir() if p.suffix == ".glb"]
    return len(files), sum(p.stat().st_size for p in files)


# --- tileset.json --------------------------------------------------------------------------


def _write_tileset(
    staging: Path,
    tiles: list[Tile],
    frame: LocalFrame,
    options: LidarOptions,
    report: LidarBuildReport,
) -> None:
    assert frame.origin is not None
    if len(tiles) == 1:
        root = tiles[0]
    else:
        # Points (ADD) and terrain (REPLACE) side by side under a root without content.
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for tile in tiles:
            box = tile["boundingVolume"]["box"]
            centre, half = np.array(box[:3]), np.array([box[3], box[7], box[11]])
            lo, hi = np.minimum(lo, centre - half), np.maximum(hi, centre + half)
        root = {
            "boundingVolume": box_from_bounds(lo, hi),
            "geometricError": max(t["geometricError"] for t in tiles),
            "refine": "ADD",
            "children": tiles,
        }
    root["transform"] = column_major(enu_to_ecef_matrix(frame.origin))
    schema = point_schema(metadata_schema({})["classes"]["tileset"])
    document = make_tileset_document(
        root,
        _ceil_mm(max(root["geometricError"], box_diagonal(root))),
        schema,
        provenance(report, options.attribution),
    )
    write_tileset_json(staging, document)


# --- the process pool ----------------------------------------------------------------------


class _Runner:
    """Runs tasks in this process (one worker) or a pool of spawned processes; results come
    back in task order, so the output does not depend on scheduling."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None

    def __enter__(self) -> _Runner:
        if self.workers > 1:
            # forkserver: workers fork from a clean server that imported only the task modules
            # (not this process's memory, not the command line's imports, no threads), so they
            # start at once and stay small. The default preload ("__main__") would import the
            # whole ``twin`` command into every worker.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(WORKER_MODULES))
            self.pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def map(
        self, function: Callable[[_T], _R], tasks: Sequence[_T], key: Callable[[_T], int]
    ) -> Iterator[_R]:
        """``function(task)`` for every task, in task order; largest tasks start first."""
        if self.pool is None:
            for task in tasks:
                yield function(task)
            return
        order = sorted(range(len(tasks)), key=lambda i: -key(tasks[i]))
        futures = {i: self.pool.submit(function, tasks[i]) for i in order}
        try:
            for i in range(len(tasks)):
                try:
                    result = futures[i].result()
                except concurrent.futures.process.BrokenProcessPool:
                    raise TwinError(
                        f"a worker process died while running {_describe(tasks[i])} (killed "
                        "for lack of memory, or a crash decoding damaged LAZ data): lower "
                        "--workers or check the file"
                    ) from None
                yield result
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise


def _describe(task: object) -> str:
    source = getattr(task, "source", None)
    if source is not None:
        return f"{source.path} (points {source.start} to {source.stop})"
    return f"{type(task).__name__} {getattr(task, 'level', '')}/{getattr(task, 'prefix', '')}"
