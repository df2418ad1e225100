"""CityGML → 3D Tiles 1.1.

``build_citygml`` streams city objects from CityGML files, triangulates and places them in an
east-north-up frame, spills them to disk, builds a quadtree with LoD1 parents, and publishes
tileset.json + GLB tiles atomically.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon

from twin import GENERATOR
from twin.constants import TILING
from twin.crs import (
    EcefTransformer,
    SourceCRS,
    VerticalModel,
    ecef_to_geodetic,
    ecef_transformer,
    enu_to_ecef_matrix,
    geodetic_to_ecef,
    parse_crs_option,
    parse_srs_name,
)
from twin.errors import CRSError, NothingToTile, TwinError
from twin.model.city import CityObject, ReadReport
from twin.ops.area import area_in_frame, contains_xy
from twin.ops.cityobject import BLOCK_COLOR, mesh_city_objects
from twin.ops.mesh import FeatureMesh
from twin.pipeline.common import (
    LocalFrame,
    Progress,
    box_diagonal,
    provenance,
    write_tileset_json,
)
from twin.readers.citygml import CityGMLReader, iter_shards
from twin.tiling.features import EncodedFeatures, FeatureInfo, FeatureStore, encode_features
from twin.tiling.lod import BLOCK_CLASSES, building_blocks, feature_proxy, importance
from twin.tiling.tileset import (
    FEATURE_CLASS,
    FLOAT64_NO_DATA,
    INT32_NO_DATA,
    AttributeCatalogue,
    Tile,
    box_from_bounds,
    column_major,
    metadata_schema,
    tileset_document,
)
from twin.tiling.tree import TileNode, build_quadtree
from twin.writers.gltf import MeshContent, PropertyTable, write_glb
from twin.writers.store import staged_directory

log = logging.getLogger(__name__)

@dataclass(slots=True)
class CityGMLOptions:
    """Options of a CityGML build; defaults suit M-V LoD2 tiles."""

    crs: str | None = None
    """Override of the source CRS (anything ``twin.crs.parse_crs_option`` accepts)."""
    geoid: Path | None = None
    """A geoid/quasigeoid grid (e.g. GCG2016) for normal heights; default EGM96."""
    max_features_per_tile: int = TILING.max_features_per_tile
    max_bytes_per_tile: int = TILING.max_bytes_per_tile
    skip_invalid: bool = False
    attribution: str = ""
    workers: int = 0
    """Worker processes for reading shards of large files; 0 = one per core."""
    area: Polygon | None = None
    """Keep only city objects whose centre (of their bounding box) lies in this polygon."""
    area_crs: str = "EPSG:25833"
    """The CRS of ``area``."""


@dataclass(slots=True)
class BuildReport:
    """What a build did, for the user and for ``build-report.json``."""

    inputs: list[str] = field(default_factory=list)
    citygml_versions: list[str] = field(default_factory=list)
    source_crs: str = ""
    vertical_model: str = ""
    vertical_error_m: float = 0.0
    origin_lon_lat_h: tuple[float, float, float] = (0.0, 0.0, 0.0)
    objects: dict[str, int] = field(default_factory=dict)
    lods: dict[str, int] = field(default_factory=dict)
    features: int = 0
    triangles: int = 0
    degenerate_rings: int = 0
    flipped_shells: int = 0
    unresolved_xlinks: int = 0
    converted_high_lod: int = 0
    skipped_objects: dict[str, int] = field(default_factory=dict)
    outside_area: int = 0
    """City objects left out because they lie outside ``CityGMLOptions.area``."""
    warnings: list[str] = field(default_factory=list)
    tiles: int = 0
    tile_bytes: int = 0
    depth: int = 0
    seconds: float = 0.0
    out: str = ""

    def merge_read_report(self, report: ReadReport) -> None:
        """Add a reader's counts."""
        for cls, n in report.objects.items():
            self.objects[cls] = self.objects.get(cls, 0) + n
        for lod, n in report.lods.items():
            key = f"lod{lod}"
            self.lods[key] = self.lods.get(key, 0) + n
        for cls, n in report.skipped_objects.items():
            self.skipped_objects[cls] = self.skipped_objects.get(cls, 0) + n
        self.degenerate_rings += report.degenerate_rings
        self.unresolved_xlinks += report.unresolved_xlinks
        self.converted_high_lod += report.converted_high_lod
        self.warnings.extend(report.warnings[: max(0, 50 - len(self.warnings))])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _source_crs(
    options: CityGMLOptions,
    srs_name: str | None,
    path: Path,
    where: str,
    cache: dict[str, SourceCRS],
) -> SourceCRS:
    if options.crs:
        key = f"--crs {options.crs}"
        if key not in cache:
            cache[key] = parse_crs_option(options.crs)
        return cache[key]
    if not srs_name:
        raise CRSError(
            f"{path}: {where}: no srsName on the geometry or the file's envelope: "
            "pass --crs (e.g. --crs EPSG:25833+7837)"
        )
    if srs_name not in cache:
        try:
            cache[srs_name] = parse_srs_name(srs_name)
        except CRSError as exc:
            raise CRSError(f"{path}: {where}: {exc}") from None
    return cache[srs_name]


def build_citygml(
    paths: Sequence[Path],
    out: Path,
    options: CityGMLOptions | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Build one 3D Tiles 1.1 tileset from CityGML files and publish it at ``out``."""
    options = options or CityGMLOptions()
    started = time.perf_counter()
    report = BuildReport(inputs=[str(p) for p in paths], out=str(out))
    with staged_directory(out) as staging:
        spill = staging / "_features"
        store = FeatureStore(spill)
        try:
            catalogue = AttributeCatalogue()
            frame = LocalFrame(_frame_origin(paths, options))
            models: set[VerticalModel] = set()
            _ingest(paths, options, store, catalogue, frame, models, report, progress)
            store.finish()
            if len(store) == 0:
                where = " in the area" if options.area is not None else ""
                raise NothingToTile(
                    f"{', '.join(map(str, paths))}: no city object with usable geometry"
                    f"{where}: nothing to tile"
                )
            worst = max(models, key=lambda m: m.expected_error_m)
            report.vertical_model = "; ".join(sorted(m.name for m in models))
            report.vertical_error_m = worst.expected_error_m
            report.origin_lon_lat_h = frame.origin_lon_lat_h()
            _write_tileset(staging, store, catalogue, frame, options, report, progress)
        finally:
            store.close()
            shutil.rmtree(spill, ignore_errors=True)
        report.seconds = round(time.perf_counter() - started, 3)
        (staging / "build-report.json").write_text(
            json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"
        )
    return report


_Result = TypeVar("_Result")

_BATCH = 256
"""City objects triangulated and placed together (vectorised numpy work per batch)."""

_POSITION_STEP = 0.01
"""Tiles up to 655 m across store positions as 16-bit steps of at most 1 cm (rounding <= 5 mm);
larger ones keep float32."""

_SHARD_BYTES = 8 << 20
"""Files are read in shards of whole city objects of about this size, in parallel."""


@dataclass(slots=True)
class _ShardResult:
    """Everything a worker made of one shard, in file order."""

    features: EncodedFeatures
    attribute_types: dict[str, set[type]]
    read_report: ReadReport
    degenerate_rings: int = 0
    flipped_shells: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    outside_area: int = 0
    vertical_models: set[VerticalModel] = field(default_factory=set)
    source_crs: str = ""


def _ingest(
    paths: Sequence[Path],
    options: CityGMLOptions,
    store: FeatureStore,
    catalogue: AttributeCatalogue,
    frame: LocalFrame,
    models: set[VerticalModel],
    report: BuildReport,
    progress: Progress | None,
) -> None:
    """Read every file shard by shard (in worker processes when there are several shards)
    and store the features in file order, so the output does not depend on scheduling."""
    for path in paths:
        header = CityGMLReader(path, skip_invalid=options.skip_invalid).header
        report.citygml_versions.append(header.version)
    assert frame.origin is not None
    origin = frame.origin
    # Planned lazily: workers start on the first shards while the rest are found.
    jobs = (
        (path, shard, options, origin)
        for path in paths
        for shard in iter_shards(path, _SHARD_BYTES)
    )
    workers = options.workers or os.cpu_count() or 1
    for result in _map_in_order(_ingest_shard, jobs, workers):
        store.append_encoded(result.features)
        catalogue.merge(result.attribute_types)
        report.triangles += sum(mesh[2] for mesh in result.features.meshes)
        report.merge_read_report(result.read_report)
        report.degenerate_rings += result.degenerate_rings
        report.flipped_shells += result.flipped_shells
        report.outside_area += result.outside_area
        for cls, n in result.skipped.items():
            report.skipped_objects[cls] = report.skipped_objects.get(cls, 0) + n
        models.update(result.vertical_models)
        report.source_crs = report.source_crs or result.source_crs
        if progress:
            progress(len(result.features.meshes))
    report.features = len(store)


def _map_in_order(
    function: Callable[..., _Result], jobs: Iterable[tuple[Any, ...]], workers: int
) -> Iterator[_Result]:
    """Run jobs in a process pool, at most two per worker in flight, yielding in job order.
    A single job runs here: starting a pool costs more than it would save."""
    queue = iter(jobs)
    first = list(itertools.islice(queue, 2))
    queue = itertools.chain(first, queue)
    if workers <= 1 or len(first) < 2:
        for job in queue:
            yield function(*job)
        return
    context = multiprocessing.get_context("forkserver")
    # Import the pipeline once in the fork server rather than in every worker.
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_freeze_imports
    ) as pool:
        pending: deque[Future[_Result]] = deque()
        for job in itertools.islice(queue, 2 * workers):
            pending.append(pool.submit(function, *job))
        while pending:
            result = pending.popleft().result()
            for job in itertools.islice(queue, 1):
                pending.append(pool.submit(function, *job))
            yield result


def _freeze_imports() -> None:
    """In a worker: move what the imports made out of the cyclic garbage collector's sight.
    Reading makes many small objects, and every collection would walk the modules again
    (3.5 % of a worker's instructions, measured with callgrind)."""
    gc.freeze()


def _frame_origin(paths: Sequence[Path], options: CityGMLOptions) -> npt.NDArray[np.float64]:
    """The tileset frame's origin: on the ellipsoid below the first vertex of the first
    object with geometry, so that it is the same however the files are sharded."""
    crs_cache: dict[str, SourceCRS] = {}
    for path in paths:
        reader = CityGMLReader(path, skip_invalid=options.skip_invalid)
        for obj in reader:
            if not obj.surfaces:
                continue
            where = f"line {obj.line} (gml:id {obj.gml_id})"
            source = _source_crs(
                options, obj.srs_name or reader.header.srs_name, path, where, crs_cache
            )
            ecef = ecef_transformer(source, options.geoid).to_ecef(obj.surfaces[0].exterior[:1])
            lon, lat, _ = ecef_to_geodetic(ecef)
            return np.asarray(geodetic_to_ecef(lon, lat, np.zeros(1)), dtype=np.float64).reshape(3)
    raise NothingToTile(
        f"{', '.join(map(str, paths))}: no city object with geometry: nothing to tile"
    )


def _ingest_shard(
    path: Path,
    shard: tuple[int, int, int] | None,
    options: CityGMLOptions,
    origin: npt.NDArray[np.float64],
) -> _ShardResult:
    """Read, triangulate, place and simplify the city objects of one shard of a file."""
    reader = CityGMLReader(path, skip_invalid=options.skip_invalid, fragment=shard)
    header = reader.header
    frame = LocalFrame(origin)
    result = _ShardResult(encode_features([]), {}, reader.report)
    features: list[tuple[FeatureInfo, FeatureMesh, FeatureMesh, float, float]] = []
    crs_cache: dict[str, SourceCRS] = {}
    by_transformer: dict[EcefTransformer, Callable[[npt.NDArray[np.float64]], Any]] = {}
    batch: list[CityObject] = []
    converters: list[Callable[[npt.NDArray[np.float64]], Any]] = []
    area = None
    if options.area is not None:
        area = area_in_frame(options.area, options.area_crs, origin)
    for obj in reader:
        where = f"line {obj.line} (gml:id {obj.gml_id})"
        source = _source_crs(options, obj.srs_name or header.srs_name, path, where, crs_cache)
        result.source_crs = result.source_crs or source.text
        transformer = ecef_transformer(source, options.geoid)
        if transformer not in by_transformer:
            result.vertical_models.add(transformer.vertical_model)
            by_transformer[transformer] = frame.to_local(transformer)
        batch.append(obj)
        converters.append(by_transformer[transformer])
        if len(batch) >= _BATCH:
            _mesh_batch(path, batch, converters, result, features, area)
            batch, converters = [], []
    if batch:
        _mesh_batch(path, batch, converters, result, features, area)
    # Serialised here, so the main process only appends two blobs per shard.
    result.features = encode_features(features)
    catalogue = AttributeCatalogue()
    for info, *_ in features:
        catalogue.add(info.attributes)
    result.attribute_types = catalogue.types
    return result


def _mesh_batch(
    path: Path,
    batch: list[CityObject],
    converters: list[Callable[[npt.NDArray[np.float64]], Any]],
    result: _ShardResult,
    features: list[tuple[FeatureInfo, FeatureMesh, FeatureMesh, float, float]],
    area: Polygon | None,
) -> None:
    try:
        placed_batch = mesh_city_objects(batch, converters)
    except TwinError as exc:
        raise type(exc)(f"{path}: objects from line {batch[0].line}: {exc}") from None
    if area is not None:
        centres = np.array([
            (p.mesh.vertices[:, :2].min(axis=0) + p.mesh.vertices[:, :2].max(axis=0)) / 2.0
            if not p.mesh.is_empty else (np.nan, np.nan)
            for p in placed_batch
        ]).reshape(-1, 2)
        inside = contains_xy(area, centres[:, 0], centres[:, 1])
        inside |= np.isnan(centres[:, 0])  # empty ones are counted as skipped below
        result.outside_area += int((~inside).sum())
        batch = [obj for obj, keep in zip(batch, inside, strict=True) if keep]
        placed_batch = [p for p, keep in zip(placed_batch, inside, strict=True) if keep]
    # Buildings with ground polygons (all of M-V's) get their blocks in one vectorised call;
    # the rest one by one.
    simple = [
        i
        for i, (obj, placed) in enumerate(zip(batch, placed_batch, strict=True))
        if obj.cls in BLOCK_CLASSES and placed.ground_rings and not placed.mesh.is_empty
    ]
    blocks = dict(
        zip(
            simple,
            building_blocks(
                [placed_batch[i].mesh for i in simple],
                [placed_batch[i].ground_rings for i in simple],
                BLOCK_COLOR,
            ),
            strict=True,
        )
    )
    for i, (obj, placed) in enumerate(zip(batch, placed_batch, strict=True)):
        result.degenerate_rings += placed.degenerate_rings
        result.flipped_shells += int(placed.flipped)
        if placed.mesh.is_empty:
            result.skipped[obj.cls] = result.skipped.get(obj.cls, 0) + 1
            continue
        if i in blocks:
            proxy, error = blocks[i]
        else:
            proxy, error = feature_proxy(obj.cls, placed.mesh, placed.ground, BLOCK_COLOR)
        features.append(
            (
                FeatureInfo(obj.gml_id, obj.cls, obj.attributes),
                placed.mesh,
                proxy,
                error,
                importance(placed.mesh),
            )
        )


def _write_tileset(
    staging: Path,
    store: FeatureStore,
    catalogue: AttributeCatalogue,
    frame: LocalFrame,
    options: CityGMLOptions,
    report: BuildReport,
    progress: Progress | None,
) -> None:
    records = store.records
    tree = build_quadtree(
        records[:, 0:2],
        store.sizes,
        max_features=options.max_features_per_tile,
        max_weight=options.max_bytes_per_tile,
        max_depth=TILING.max_depth,
    )
    properties = catalogue.properties()
    schema = metadata_schema(properties)
    (staging / "tiles").mkdir()
    writer = _TileWriter(staging, store, records, properties, schema, options)
    root = writer.write(tree)
    assert frame.origin is not None
    root["transform"] = column_major(enu_to_ecef_matrix(frame.origin))
    root["refine"] = "REPLACE"
    # Not drawing the tileset at all leaves out everything in the root's box: declaring its
    # diagonal makes clients show the LoD1 overview whenever the tileset is in view, rather
    # than nothing from a few kilometres away.
    document = tileset_document(
        root,
        round(max(root["geometricError"], box_diagonal(root)), 3),
        schema,
        provenance(report, options.attribution),
    )
    write_tileset_json(staging, document)
    report.tiles = writer.tiles
    report.tile_bytes = writer.bytes
    report.depth = writer.depth


class _TileWriter:
    """Chooses every node's content, writes the GLBs (in worker processes when there are
    many), and returns the tile JSON tree with boxes that hold content and children."""

    def __init__(
        self,
        staging: Path,
        store: FeatureStore,
        records: npt.NDArray[np.float64],
        properties: dict[str, tuple[str, dict[str, Any]]],
        schema: dict[str, Any],
        options: CityGMLOptions,
    ) -> None:
        self.staging = staging
        self.store = store
        self.records = records
        self.properties = properties
        self.schema = schema
        self.options = options
        self.tiles = 0
        self.bytes = 0
        self.depth = 0

    def write(self, root: TileNode) -> Tile:
        """Write every node's content; return the root tile object."""
        nodes = root.walk()
        self.depth = max(n.level for n in nodes)
        errors: dict[str, float] = {}
        jobs: list[tuple[str, npt.NDArray[np.int64], bool]] = []
        for node in reversed(nodes):  # children before parents
            if node.is_leaf:
                shown, error = node.features, 0.0
            else:
                shown, error = self._parent_selection(node.features)
                error = max([error] + [errors[c.address] for c in node.children])
            errors[node.address] = error
            jobs.append((node.address, shown, not node.is_leaf))
        jobs.reverse()
        # A few tiles per task: the schema and property list travel once per task.
        per_task = max(1, len(jobs) // (8 * max(1, self.options.workers or os.cpu_count() or 1)))
        tasks = [
            (self.store.directory, self.staging / "tiles", jobs[i:i + per_task],
             self.properties, self.schema)
            for i in range(0, len(jobs), per_task)
        ]
        workers = self.options.workers or os.cpu_count() or 1
        bounds: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
        for written in _map_in_order(_write_tiles, tasks, workers if len(jobs) > 16 else 1):
            for address, lo, hi, size in written:
                bounds[address] = (lo, hi)
                self.tiles += 1
                self.bytes += size
        return self._tile(root, errors, bounds)

    def _tile(
        self,
        node: TileNode,
        errors: dict[str, float],
        bounds: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    ) -> Tile:
        children = [self._tile(child, errors, bounds) for child in node.children]
        lo, hi = bounds[node.address]
        for child in children:
            box = child["boundingVolume"]["box"]
            c = np.array(box[:3])
            half = np.array([box[3], box[7], box[11]])
            lo, hi = np.minimum(lo, c - half), np.maximum(hi, c + half)
        error = errors[node.address]
        tile: Tile = {
            "boundingVolume": box_from_bounds(lo, hi),
            "geometricError": round(float(error), 3) if error else 0.0,
            "content": {"uri": f"tiles/{node.address}.glb"},
        }
        if children:
            tile["children"] = children
        return tile

    def _parent_selection(
        self, features: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], float]:
        """Proxies a parent shows (the most important, bounded) and the error it makes."""
        limit = self.options.max_features_per_tile
        records = self.records[features]
        if len(features) > limit:
            # Stable order: importance descending, then index (determinism on ties).
            order = np.lexsort((features, -records[:, 9]))
            shown, dropped = features[order[:limit]], features[order[limit:]]
            dropped_size = float(
                np.linalg.norm(
                    self.records[dropped, 5:8] - self.records[dropped, 2:5], axis=1
                ).max()
            )
        else:
            shown, dropped_size = features, 0.0
        error = max(float(self.records[shown, 8].max()), dropped_size)
        return np.sort(shown), error


def _write_tiles(
    store_directory: Path,
    tiles_directory: Path,
    jobs: list[tuple[str, npt.NDArray[np.int64], bool]],
    properties: dict[str, tuple[str, dict[str, Any]]],
    schema: dict[str, Any],
) -> list[tuple[str, npt.NDArray[np.float64], npt.NDArray[np.float64], int]]:
    """Write the GLBs of some tiles; (address, content min, content max, bytes) of each."""
    store = FeatureStore.open(store_directory)
    try:
        written = []
        for address, features, proxy in jobs:
            meshes = [store.mesh(int(i), proxy=proxy) for i in features]
            counts = [len(m.vertices) for m in meshes]
            vertices = np.concatenate([m.vertices for m in meshes])
            offsets = np.cumsum([0] + counts[:-1]).astype(np.uint32)
            triangles = np.concatenate(
                [m.triangles + off for m, off in zip(meshes, offsets, strict=True)]
            )
            lo, hi = vertices.min(axis=0), vertices.max(axis=0)
            origin = np.round((lo + hi) / 2.0, 2)
            content = MeshContent(
                positions=vertices - origin,
                normals=np.concatenate([m.normals for m in meshes]),
                colors=np.concatenate([m.colors for m in meshes]),
                feature_ids=np.repeat(np.arange(len(meshes), dtype=np.uint32), counts),
                indices=triangles,
                origin=origin,
            )
            infos = [store.info(int(i)) for i in features]
            data = write_glb(
                content,
                schema=schema,
                table=PropertyTable(FEATURE_CLASS, _columns(infos, properties)),
                generator=GENERATOR,
                position_step=_POSITION_STEP,
                compact_normals=True,
            )
            (tiles_directory / f"{address}.glb").write_bytes(data)
            # Quantised positions may round outward by half a step: widen the box by a step.
            written.append((address, lo - _POSITION_STEP, hi + _POSITION_STEP, len(data)))
        return written
    finally:
        store.close()


def _columns(
    infos: list[FeatureInfo], properties: dict[str, tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """The property table of a tile's features, typed by the schema."""
    columns: dict[str, Any] = {
        "gml_id": [f.gml_id for f in infos],
        "citygml_class": [f.cls for f in infos],
    }
    for name, (pid, prop) in properties.items():
        values = [f.attributes.get(name) for f in infos]
        if prop["type"] == "STRING":
            columns[pid] = ["" if v is None else str(v) for v in values]
        elif prop["componentType"] == "INT32":
            columns[pid] = np.array(
                [INT32_NO_DATA if v is None else v for v in values], dtype=np.int32
            )
        else:
            columns[pid] = np.array(
                [FLOAT64_NO_DATA if v is None else v for v in values], dtype=np.float64
            )
    return columns
