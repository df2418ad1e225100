"""Building a scene: every layer of a scene definition, then one atomic publish.

A scene folder (docs/scenes.md) holds immutable versions and a ``current`` symlink:

    <out>/<scene>/current -> versions/<version>
    <out>/<scene>/versions/<version>/{manifest.json, tour.json, overlays.geojson,
                                      layers/<layer>/..., epochs/<epoch>/tileset.json}
    <out>/<scene>/.build/parts/<key>/    the cache: one finished pipeline output per key

Incremental: every pipeline run is a *part* keyed by what it depends on (the generator, the
layer's options, the area, the geoid, and the SHA-256 of each input file). A CityGML layer
is one part per source file (M-V publishes 2 km tiles: changing one rebuilds one); LiDAR
layers are one part over the files that reach into the area (the terrain grid needs its
neighbours). A part already in the cache is not rebuilt. Versions are assembled from parts
with hard links, so an unchanged tile is the same file (same inode) in the old and the new
version, and a rebuild that changes nothing publishes nothing.

Atomic: parts are published into the cache by rename; a version is assembled in a temporary
folder and renamed into ``versions/``; ``current`` is replaced by renaming a new symlink over
it. ``kill -9`` at any point leaves the previous version current and complete; the next run
removes the leftovers and completes. The version before the current one is kept, so a
request that resolved ``current`` just before a swap still finds its files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import shapely

from twin import GENERATOR
from twin.crs import EcefTransformer, ecef_to_geodetic
from twin.errors import InputError, NothingToTile, TwinError
from twin.ops.area import area_in_crs
from twin.pipeline.common import Progress, write_tileset_json
from twin.readers.heights import read_heights
from twin.readers.las import read_header
from twin.scene.camera import scene_transformer
from twin.scene.definition import Scene, load_scene, resolve_sources
from twin.scene.overlays import UTM33
from twin.scene.publish import document_bytes, overlay_document, tour_document
from twin.writers.store import STAGING_PREFIX

__all__ = [
    "FORMAT",
    "SceneBuildOptions",
    "SceneBuildReport",
    "build_scene",
    "scene_definitions",
]

FORMAT = "rostock-virtuell-scene/1"

_HASH_CHUNK = 1 << 20


@dataclass(slots=True)
class SceneBuildOptions:
    """Where the data is, where scenes go, and how to build them."""

    data: Path = Path("data/sample")
    """The folder the scene's source globs are relative to."""
    out: Path = Path("build/scenes")
    workers: int = 0
    """Worker processes per pipeline; 0: one per core."""
    geoid: Path | None = None
    """A GCG2016 (or other) grid for DHHN2016 heights; default EGM96."""
    validate: bool = True
    """Run the validation harness (schemas, glTF validator, containment) on new parts."""


@dataclass(slots=True)
class PartReport:
    """One pipeline run of a layer (or its reuse from the cache)."""

    layer: str
    key: str
    sources: list[str]
    cached: bool
    empty: bool = False
    seconds: float = 0.0


@dataclass(slots=True)
class SceneBuildReport:
    """What a scene build did."""

    scene: str
    version: str = ""
    published: bool = False
    """False when the build found the current version up to date."""
    parts: list[PartReport] = field(default_factory=list)
    files: int = 0
    files_written: int = 0
    """Files of the new version that are not hard links to the previous version's files."""
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    out: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def scene_definitions(scenes_dir: Path, name: str) -> list[Path]:
    """The definition files for ``name`` ("all": every scene in ``scenes_dir``)."""
    if name == "all":
        found = sorted(scenes_dir.glob("*.toml"))
        if not found:
            raise InputError(f"{scenes_dir}: no scene definitions (*.toml) here")
        return found
    path = scenes_dir / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(scenes_dir.glob("*.toml"))) or "none"
        raise InputError(f"{path}: no such scene (scenes here: {known}; or 'all')")
    return [path]


def build_scene(
    definition: Path,
    options: SceneBuildOptions | None = None,
    progress: Callable[[str], Progress | None] | None = None,
) -> SceneBuildReport:
    """Build every layer of the scene defined in ``definition`` and publish a new version
    (unless nothing changed). ``progress(stage)`` may return a per-item callback."""
    options = options or SceneBuildOptions()
    started = time.perf_counter()
    scene = load_scene(definition)
    sources = resolve_sources(scene, options.data)
    overlays = scene.overlay_features
    scene_dir = (options.out / scene.id).absolute()
    report = SceneBuildReport(scene=scene.id, out=str(scene_dir / "current"))
    cache = _Cache(scene_dir / ".build")
    cache.clean_leftovers()
    _clean_leftovers(scene_dir)
    vertical = scene_transformer(options.geoid)
    geoid_digest = _file_digest(options.geoid) if options.geoid else "egm96"

    layers: dict[str, list[_Part]] = {}
    for layer_id, layer in scene.layers.items():
        files = sources[layer_id]
        if layer.kind == "citygml":
            layers[layer_id] = [
                _part(scene, layer_id, [path], geoid_digest, cache) for path in files
            ]
        else:
            inside = [p for p in files if _las_reaches(p, scene)]
            if not inside:
                raise InputError(
                    f"{scene.file}: layers.{layer_id}.sources: none of the {len(files)} "
                    f"files reaches into the scene area: check the globs and the area"
                )
            layers[layer_id] = [_part(scene, layer_id, inside, geoid_digest, cache)]

    build_key = _digest_json({
        "generator": GENERATOR,
        "definition": _file_digest(definition),
        "overlays": _file_digest(scene.overlay_path) if scene.overlay_path else "",
        "geoid": geoid_digest,
        "parts": [p.key for parts in layers.values() for p in parts],
    })
    current = _current_manifest(scene_dir)
    if current is not None and current.get("build", {}).get("key") == build_key:
        report.version = current["version"]
        report.parts = [
            PartReport(p.layer, p.key, [str(s) for s in p.sources], cached=True)
            for parts in layers.values() for p in parts
        ]
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    for parts in layers.values():
        for part in parts:
            report.parts.append(_build_part(part, scene, options, cache, progress))

    version_dir, manifest = _assemble(scene, layers, overlays, vertical, options, cache,
                                      build_key, scene_dir, report)
    previous = _current_target(scene_dir)
    _swap_current(scene_dir, version_dir.name)
    report.version = manifest["version"]
    report.published = previous != version_dir.name
    report.files = len(manifest["files"]) + 1
    report.files_written = _count_new_files(version_dir, scene_dir, previous)
    report.bytes = sum((version_dir / p).stat().st_size for p in manifest["files"])
    _collect_garbage(scene_dir, cache, keep={version_dir.name, previous or ""})
    report.seconds = round(time.perf_counter() - started, 3)
    return report


# --- parts -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Part:
    layer: str
    kind: str
    sources: list[Path]
    key: str


class _Cache:
    """Finished pipeline outputs by key: ``parts/<key>/`` or the marker ``parts/<key>.empty``
    for a source that holds nothing in the area."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parts = root / "parts"
        self.digests = root / "digests.json"

    def clean_leftovers(self) -> None:
        if self.parts.is_dir():
            for path in self.parts.iterdir():
                if path.name.startswith(STAGING_PREFIX):
                    shutil.rmtree(path, ignore_errors=True)

    def folder(self, key: str) -> Path:
        return self.parts / key

    def empty_marker(self, key: str) -> Path:
        return self.parts / f"{key}.empty"

    def has(self, key: str) -> bool:
        return self.folder(key).is_dir() or self.empty_marker(key).is_file()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    """SHA-256 of a file, remembered by (path, size, mtime) for the life of the process."""
    stat = path.stat()
    memo = (str(path.absolute()), stat.st_size, stat.st_mtime_ns)
    if memo not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        _DIGESTS[memo] = digest.hexdigest()
    return _DIGESTS[memo]


def _digest_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _part(scene: Scene, layer_id: str, files: list[Path], geoid: str, cache: _Cache) -> _Part:
    layer = scene.layers[layer_id]
    key = _digest_json({
        "generator": GENERATOR,
        "kind": layer.kind,
        "cell": layer.cell if layer.kind == "terrain" else None,
        "area": scene.area_polygon.wkt,
        "geoid": geoid,
        "attribution": scene.attribution,
        "sources": [[p.name, _file_digest(p)] for p in files],
    })[:24]
    return _Part(layer_id, layer.kind, files, key)


def _las_reaches(path: Path, scene: Scene) -> bool:
    """Whether a LAS/LAZ file's header box meets the scene area (a file without a CRS is
    left to the pipeline, which says what is missing)."""
    header = read_header(path)
    if not header.crs_wkt:
        return True
    crs = pyproj.CRS.from_wkt(header.crs_wkt)
    if crs.is_compound:
        crs = crs.sub_crs_list[0]
    area = area_in_crs(scene.area_polygon, UTM33, crs)
    box = shapely.box(header.mins[0], header.mins[1], header.maxs[0], header.maxs[1])
    return bool(box.intersects(area))


def _build_part(
    part: _Part,
    scene: Scene,
    options: SceneBuildOptions,
    cache: _Cache,
    progress: Callable[[str], Progress | None] | None,
) -> PartReport:
    report = PartReport(part.layer, part.key, [str(p) for p in part.sources], cached=True)
    if cache.has(part.key):
        report.empty = cache.empty_marker(part.key).is_file()
        return report
    # Imported here: a rebuild with nothing to do does not load the pipelines.
    from twin.pipeline.citygml import CityGMLOptions, build_citygml
    from twin.pipeline.lidar import LidarOptions, build_lidar
    from twin.validate import validate_tileset

    report.cached = False
    started = time.perf_counter()
    out = cache.folder(part.key)
    attribution = " · ".join(scene.attribution)
    label = f"{scene.id}: {part.layer}" + (
        f" ({part.sources[0].name})" if part.kind == "citygml" else ""
    )
    tick = progress(label) if progress else None
    cache.parts.mkdir(parents=True, exist_ok=True)
    try:
        if part.kind == "citygml":
            build_citygml(part.sources, out, CityGMLOptions(
                geoid=options.geoid, attribution=attribution, workers=options.workers,
                area=scene.area_polygon, area_crs=UTM33,
            ), tick)
        else:
            layer = scene.layers[part.layer]
            build_lidar(part.sources, out, LidarOptions(
                mode="terrain" if part.kind == "terrain" else "points",
                geoid=options.geoid, cell=layer.grid_cell, attribution=attribution,
                workers=options.workers or None, area=scene.area_polygon,
                area_crs=UTM33, write_heights=part.kind == "terrain",
            ), tick)
    except NothingToTile:
        cache.empty_marker(part.key).write_text("nothing in the area\n")
        report.empty = True
        report.seconds = round(time.perf_counter() - started, 3)
        return report
    if options.validate:
        try:
            result = validate_tileset(out)
        except TwinError:
            shutil.rmtree(out, ignore_errors=True)
            raise
        if not result.ok:
            shutil.rmtree(out, ignore_errors=True)
            raise TwinError(
                f"{scene.id}: layer {part.layer}: the tiles fail validation "
                f"({result.summary()}): this is a bug, please report it"
            )
    report.seconds = round(time.perf_counter() - started, 3)
    return report


# --- assembling a version ----------------------------------------------------------------


def _assemble(
    scene: Scene,
    layers: dict[str, list[_Part]],
    overlays: Any,
    vertical: EcefTransformer,
    options: SceneBuildOptions,
    cache: _Cache,
    build_key: str,
    scene_dir: Path,
    report: SceneBuildReport,
) -> tuple[Path, dict[str, Any]]:
    versions = scene_dir / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    staging = versions / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        layer_entries = []
        for layer_id, layer in scene.layers.items():
            parts = [p for p in layers[layer_id] if cache.folder(p.key).is_dir()]
            if not parts:
                report.warnings.append(f"layer {layer_id}: nothing of it lies in the area")
                continue
            target = staging / "layers" / layer_id
            if layer.kind == "citygml":
                children = []
                for part in parts:
                    name = part.sources[0].stem
                    _link_tree(cache.folder(part.key), target / name)
                    children.append(_external_child(target / name / "tileset.json",
                                                    f"{name}/tileset.json"))
                _write_root_tileset(target, children, scene, layer_id)
            else:
                _link_tree(cache.folder(parts[0].key), target)
            tileset = json.loads((target / "tileset.json").read_text(encoding="utf-8"))
            layer_entries.append({
                "id": layer_id,
                "kind": layer.kind,
                "title": layer.title_dict(),
                "tileset": f"layers/{layer_id}/tileset.json",
                "epochs": scene.layer_epochs(layer_id),
                "visible": layer.visible,
                "region": _tileset_region(tileset),
                "tiles": sum(1 for _ in target.rglob("*.glb")),
                "bytes": sum(p.stat().st_size for p in target.rglob("*.glb")),
            })
        if not layer_entries:
            raise NothingToTile(f"{scene.file}: no layer has anything in the scene area")
        heights = None
        terrain = [e for e in layer_entries if e["kind"] == "terrain"]
        if terrain:
            heights = read_heights(staging / "layers" / terrain[0]["id"] / "heights.npz")
        epochs = []
        for epoch_id in scene.epochs:
            members = [e for e in layer_entries if epoch_id in e["epochs"]]
            shown = [e for e in members if e["visible"]]
            folder = staging / "epochs" / epoch_id
            children = [
                _external_child(staging / e["tileset"], f"../../{e['tileset']}") for e in shown
            ]
            _write_root_tileset(folder, children, scene, f"epoch {epoch_id}")
            epochs.append({
                "id": epoch_id,
                "title": scene.epochs[epoch_id].title_dict(),
                "tileset": f"epochs/{epoch_id}/tileset.json",
                "layers": [e["id"] for e in members],
            })
        (staging / "tour.json").write_bytes(document_bytes(tour_document(scene, vertical)))
        (staging / "overlays.geojson").write_bytes(document_bytes(overlay_document(
            scene, overlays, heights.sample if heights is not None else None, vertical)))
        files = {
            path.relative_to(staging).as_posix(): _file_digest(path)
            for path in sorted(staging.rglob("*")) if path.is_file()
        }
        version = _digest_json(files)[:16]
        regions = np.array([e["region"] for e in layer_entries])
        manifest = {
            "format": FORMAT,
            "id": scene.id,
            "version": version,
            "title": scene.title_dict(),
            "description": scene.description_dict(),
            "generator": GENERATOR,
            "crs": UTM33,
            "vertical_model": {
                "name": vertical.vertical_model.name,
                "expected_error_m": vertical.vertical_model.expected_error_m,
                "geoid": options.geoid.name if options.geoid else "egm96_15.gtx",
            },
            "area": _area_lonlat(scene),
            "region": [
                float(regions[:, 0].min()), float(regions[:, 1].min()),
                float(regions[:, 2].max()), float(regions[:, 3].max()),
                float(regions[:, 4].min()), float(regions[:, 5].max()),
            ],
            "attributions": list(scene.attribution),
            "layers": layer_entries,
            "epochs": epochs,
            "default_epoch": scene.default_epoch,
            "tour": "tour.json",
            "overlays": "overlays.geojson",
            "files": files,
            "build": {"key": build_key,
                      "parts": sorted({p.key for ps in layers.values() for p in ps})},
        }
        _write_json(staging / "manifest.json", manifest)
        final = versions / version
        if final.is_dir():
            shutil.rmtree(staging)  # the same content is already there
        else:
            os.rename(staging, final)
        return final, manifest
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link every file of ``source`` into ``target`` (build reports stay behind)."""
    for path in sorted(source.rglob("*")):
        if path.is_dir() or path.name == "build-report.json":
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, destination)


def _external_child(tileset_path: Path, uri: str) -> dict[str, Any]:
    """A tile whose content is the external tileset at ``uri``, bounded by a region."""
    document = json.loads(tileset_path.read_text(encoding="utf-8"))
    west, south, east, north, low, high = _tileset_region(document)
    return {
        "boundingVolume": {"region": [math.radians(west), math.radians(south),
                                      math.radians(east), math.radians(north), low, high]},
        "geometricError": float(document["geometricError"]),
        "content": {"uri": uri},
    }


def _write_root_tileset(
    folder: Path, children: list[dict[str, Any]], scene: Scene, what: str
) -> None:
    """A tileset without content whose children are external tilesets."""
    regions = np.array([c["boundingVolume"]["region"] for c in children]) if children else None
    root: dict[str, Any] = {"geometricError": 0.0, "refine": "ADD", "children": children}
    if regions is not None:
        root["boundingVolume"] = {"region": [
            float(regions[:, 0].min()), float(regions[:, 1].min()),
            float(regions[:, 2].max()), float(regions[:, 3].max()),
            float(regions[:, 4].min()), float(regions[:, 5].max()),
        ]}
        root["geometricError"] = max(c["geometricError"] for c in children)
    else:
        # An epoch with no visible layer: an empty tileset around the area.
        west, south, east, north = _area_bounds_lonlat(scene)
        root["boundingVolume"] = {"region": [math.radians(west), math.radians(south),
                                             math.radians(east), math.radians(north), 0.0, 1.0]}
        del root["children"]
    document = {
        "asset": {"version": "1.1", "generator": GENERATOR},
        "geometricError": root["geometricError"],
        "root": root,
        "extras": {"scene": scene.id, "part": what},
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_tileset_json(folder, document)


def _tileset_region(document: dict[str, Any]) -> list[float]:
    """[west, south, east, north] (degrees) and [min, max] ellipsoidal heights of a
    tileset's root bounding volume, padded so that it contains the box's curved extremes."""
    root = document["root"]
    volume = root["boundingVolume"]
    if "region" in volume:
        w, s, e, n, low, high = volume["region"]
        return [math.degrees(w), math.degrees(s), math.degrees(e), math.degrees(n), low, high]
    box = np.asarray(volume["box"], dtype=np.float64)
    centre, axes = box[:3], box[3:].reshape(3, 3)
    u = np.linspace(-1.0, 1.0, 9)
    a, b, c = np.meshgrid(u, u, np.array([-1.0, 1.0]), indexing="ij")
    local = centre + a.reshape(-1, 1) * axes[0] + b.reshape(-1, 1) * axes[1] \
        + c.reshape(-1, 1) * axes[2]
    transform = np.asarray(root.get("transform", np.eye(4).reshape(-1)), dtype=np.float64)
    matrix = transform.reshape(4, 4).T  # column-major in the JSON
    ecef = local @ matrix[:3, :3].T + matrix[:3, 3]
    lon, lat, h = ecef_to_geodetic(ecef)
    pad = 1e-6  # degrees (~7 cm): the edges between the samples bulge a little
    return [float(lon.min()) - pad, float(lat.min()) - pad, float(lon.max()) + pad,
            float(lat.max()) + pad, float(h.min()) - 1.0, float(h.max()) + 1.0]


def _area_lonlat(scene: Scene) -> dict[str, Any]:
    import pyproj

    transformer = pyproj.Transformer.from_crs(UTM33, "EPSG:4326", always_xy=True)
    ring = np.asarray(scene.area_polygon.exterior.coords)
    lon, lat = transformer.transform(ring[:, 0], ring[:, 1])
    return {"type": "Polygon",
            "coordinates": [[[round(float(x), 7), round(float(y), 7)]
                             for x, y in zip(lon, lat, strict=True)]]}


def _area_bounds_lonlat(scene: Scene) -> tuple[float, float, float, float]:
    ring = np.asarray(_area_lonlat(scene)["coordinates"][0])
    return (float(ring[:, 0].min()), float(ring[:, 1].min()),
            float(ring[:, 0].max()), float(ring[:, 1].max()))


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False, sort_keys=False) + "\n",
                    encoding="utf-8")


# --- publishing ------------------------------------------------------------------------------


def _current_target(scene_dir: Path) -> str | None:
    link = scene_dir / "current"
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def _current_manifest(scene_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((scene_dir / "current" / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _swap_current(scene_dir: Path, version: str) -> None:
    """Point ``current`` at ``versions/<version>`` in one rename."""
    link = scene_dir / f"{STAGING_PREFIX}current-{uuid.uuid4().hex[:8]}"
    os.symlink(f"versions/{version}", link)
    os.replace(link, scene_dir / "current")
    _fsync_dir(scene_dir)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean_leftovers(scene_dir: Path) -> None:
    """Remove what a killed build left: staging versions and half-made symlinks."""
    for folder in (scene_dir, scene_dir / "versions"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.name.startswith(STAGING_PREFIX):
                if path.is_symlink() or path.is_file():
                    path.unlink()
                else:
                    shutil.rmtree(path, ignore_errors=True)


def _count_new_files(version_dir: Path, scene_dir: Path, previous: str | None) -> int:
    """Files of the new version that are not the previous version's files (by inode)."""
    old: set[int] = set()
    if previous and previous != version_dir.name:
        old = {p.stat().st_ino for p in _files(scene_dir / "versions" / previous)}
    elif previous == version_dir.name:
        return 0
    return sum(1 for p in _files(version_dir) if p.stat().st_ino not in old)


def _files(folder: Path) -> Iterator[Path]:
    return (p for p in folder.rglob("*") if p.is_file())


def _collect_garbage(scene_dir: Path, cache: _Cache, keep: set[str]) -> None:
    """Delete versions other than ``keep`` and the cache parts no kept version uses."""
    versions = scene_dir / "versions"
    used: set[str] = set()
    for folder in sorted(versions.iterdir()):
        if folder.name in keep:
            try:
                manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
                used.update(manifest.get("build", {}).get("parts", []))
            except (OSError, ValueError):
                pass
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if cache.parts.is_dir():
        for path in cache.parts.iterdir():
            key = path.name.removesuffix(".empty")
            if key not in used:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
