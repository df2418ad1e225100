"""Tileset validation: the official 3D Tiles 1.1 JSON schemas, the Khronos glTF validator on
every GLB, and containment of decoded geometry and child volumes in bounding volumes.

What is checked, file by file through the tile tree (external tilesets included):

- tileset JSON against the 3D Tiles 1.1 schemas (Draft 2020-12), ``asset.version == "1.1"``,
  ``refine`` on each tileset's root tile, geometric errors non-increasing from parent to child;
- every GLB content through the Khronos glTF validator (one Node.js process for all files;
  validator errors are errors, validator warnings are warnings);
- every vertex of every GLB inside its tile's ``boundingVolume`` (and ``content.boundingVolume``
  where given), after the accumulated tile ``transform``s; every child volume inside its parent's.

The glTF validator does not know EXT_mesh_features/EXT_structural_metadata (it reports them as
infos, which are not surfaced); the decoding in ``twin.readers.gltf`` covers their structure.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from jsonschema import Draft202012Validator
from pyproj import Transformer
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from twin.errors import FormatError, ToolMissingError, ValidationError
from twin.readers.gltf import read_glb

__all__ = [
    "ContainmentTolerance",
    "ValidationReport",
    "find_node_modules",
    "find_schemas_dir",
    "validate_tileset",
]

logger = logging.getLogger(__name__)

SCHEMAS_ENV = "TWIN_3DTILES_SCHEMAS"
NODE_MODULES_ENV = "TWIN_NODE_MODULES"
_PACKAGE_DIR = Path(__file__).resolve().parent
_BUNDLED_SCHEMAS = _PACKAGE_DIR / "schemas" / "3d-tiles-1.1"
_VALIDATOR_SCRIPT = _PACKAGE_DIR / "gltf_validator.mjs"
_ENTRY_SCHEMA = "tileset.schema.json"
_SETUP_HINT = (
    "run the README's setup command, ./tools/setup, which runs `npm ci` in the repository root"
)

_WGS84_A = 6378137.0
"""Equatorial radius: converts small angles of a region to metres for distances."""


@dataclass(frozen=True)
class ContainmentTolerance:
    """How far geometry may stick out of a bounding volume before it counts as outside."""

    absolute: float = 1e-3
    """Metres: GLB positions are float32 relative to a tile origin."""
    relative: float = 1e-6
    """Times the volume's size (largest half-axis, radius or region extent in metres)."""

    def allowed(self, size: float) -> float:
        """Allowed distance outside a volume of the given size, in metres."""
        return self.absolute + self.relative * size


TOLERANCE = ContainmentTolerance()


@dataclass
class ValidationReport:
    """Findings of one tileset validation; each entry reads ``<file>: <what> (<where>)``."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tiles: int = 0
    glbs: int = 0

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors


# ---------------------------------------------------------------------------------------------
# Finding the schemas and the Node.js validator


def find_schemas_dir(schemas_dir: Path | None = None) -> Path:
    """The 3D Tiles 1.1 schema folder: argument, else $TWIN_3DTILES_SCHEMAS, else bundled."""
    if schemas_dir is None:
        env = os.environ.get(SCHEMAS_ENV)
        schemas_dir = Path(env) if env else _BUNDLED_SCHEMAS
    if not (schemas_dir / _ENTRY_SCHEMA).is_file():
        raise ToolMissingError(
            f"{schemas_dir}: no {_ENTRY_SCHEMA} here; point {SCHEMAS_ENV} at the 3D Tiles 1.1 "
            "schema folder or reinstall the package (it bundles twin/schemas/3d-tiles-1.1)"
        )
    return schemas_dir


@functools.cache
def _schema_validator(schemas_dir: Path) -> Draft202012Validator:
    """A validator for tileset.json whose relative $refs resolve inside ``schemas_dir``."""
    resources: list[tuple[str, Resource[Any]]] = []
    for path in sorted(schemas_dir.rglob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        # The official schemas use bare-file-name $ids and folder-relative $refs, so a $ref
        # may arrive as either form: register both.
        resources.append((path.relative_to(schemas_dir).as_posix(), resource))
        if "$id" in contents:
            resources.append((contents["$id"], resource))
    registry: Registry[Any] = Registry().with_resources(resources)
    entry = json.loads((schemas_dir / _ENTRY_SCHEMA).read_text(encoding="utf-8"))
    return Draft202012Validator(entry, registry=registry)


def find_node_modules() -> Path:
    """A node_modules folder holding gltf-validator: $TWIN_NODE_MODULES, else the nearest one
    above the package folder or the working directory."""
    env = os.environ.get(NODE_MODULES_ENV)
    if env:
        folder = Path(env)
        if (folder / "gltf-validator" / "package.json").is_file():
            return folder
        raise ToolMissingError(
            f"{NODE_MODULES_ENV}={env} has no gltf-validator package: {_SETUP_HINT}"
        )
    for start in (_PACKAGE_DIR, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            candidate = folder / "node_modules"
            if (candidate / "gltf-validator" / "package.json").is_file():
                return candidate
    raise ToolMissingError(
        "npm package gltf-validator not found in any node_modules above the package or the "
        f"working directory (or set {NODE_MODULES_ENV}): {_SETUP_HINT}"
    )


def _find_node() -> str:
    """The node executable, or ToolMissingError with the way out."""
    node = shutil.which("node")
    if node is None:
        raise ToolMissingError(
            f"node (Node.js >= 18) is not on PATH: install it, then {_SETUP_HINT}"
        )
    return node


def _run_gltf_validator(paths: list[Path]) -> list[dict[str, Any]]:
    """Khronos validator results for ``paths``, from one Node.js process."""
    node = _find_node()
    node_modules = find_node_modules()
    logger.debug("glTF validator: %d files with %s and %s", len(paths), node, node_modules)
    try:
        completed = subprocess.run(
            [node, str(_VALIDATOR_SCRIPT), str(node_modules)],
            input=json.dumps([str(p) for p in paths]).encode("utf-8"),
            capture_output=True,
            timeout=120 + 10 * len(paths),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ValidationError(f"glTF validator timed out after {exc.timeout:.0f} s") from exc
    stderr = completed.stderr.decode("utf-8", "replace").strip()
    if completed.returncode != 0:
        if "Cannot find module" in stderr:
            raise ToolMissingError(
                f"gltf-validator cannot be loaded from {node_modules}: {_SETUP_HINT}"
            )
        last = stderr.splitlines()[-1] if stderr else f"exit status {completed.returncode}"
        raise ValidationError(f"glTF validator failed: {last}")
    results = [json.loads(line) for line in completed.stdout.decode("utf-8").splitlines() if line]
    if len(results) != len(paths):
        raise ValidationError(f"glTF validator answered for {len(results)} of {len(paths)} files")
    return results


# ---------------------------------------------------------------------------------------------
# Bounding volumes in one world frame (the frame of the root tileset's coordinates, e.g. ECEF)


@dataclass(frozen=True)
class _Box:
    center: npt.NDArray[np.float64]
    half_axes: npt.NDArray[np.float64]
    """(3, 3): columns are the half-axis vectors."""


@dataclass(frozen=True)
class _Sphere:
    center: npt.NDArray[np.float64]
    radius: float


@dataclass(frozen=True)
class _Region:
    west: float
    south: float
    east: float
    north: float
    min_height: float
    max_height: float


_Volume = _Box | _Sphere | _Region


def _volume_kind(volume: _Volume) -> str:
    return {_Box: "box", _Sphere: "sphere", _Region: "region"}[type(volume)]


def _world_volume(bounding_volume: Any, world: npt.NDArray[np.float64]) -> _Volume | None:
    """The volume in world coordinates (regions are EPSG:4979 and ignore transforms)."""
    if not isinstance(bounding_volume, dict):
        return None
    try:
        if "box" in bounding_volume:
            box = np.asarray(bounding_volume["box"], dtype=np.float64)
            center = world[:3, :3] @ box[:3] + world[:3, 3]
            return _Box(center, world[:3, :3] @ box[3:].reshape(3, 3).T)
        if "region" in bounding_volume:
            return _Region(*(float(v) for v in bounding_volume["region"]))
        if "sphere" in bounding_volume:
            sphere = np.asarray(bounding_volume["sphere"], dtype=np.float64)
            scale = float(np.linalg.norm(world[:3, :3], axis=0).max())
            return _Sphere(world[:3, :3] @ sphere[:3] + world[:3, 3], float(sphere[3]) * scale)
    except (TypeError, ValueError):
        return None  # wrong lengths/types: the schema check reports it
    return None


def _box_frame(box: _Box) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(unit axis directions as columns, half-lengths); zero axes of flat boxes completed."""
    lengths = np.linalg.norm(box.half_axes, axis=0)
    scale = max(float(lengths.max()), 1.0)
    directions = np.zeros((3, 3))
    real = lengths > 1e-12 * scale
    directions[:, real] = box.half_axes[:, real] / lengths[real]
    for i in np.flatnonzero(~real):
        # Complete with a unit vector orthogonal to the axes found so far (Gram-Schmidt).
        for candidate in np.eye(3):
            v = candidate - directions @ (directions.T @ candidate)
            if np.linalg.norm(v) > 0.5:
                directions[:, i] = v / np.linalg.norm(v)
                break
    return directions, np.where(real, lengths, 0.0)


def _box_coordinates(box: _Box, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(n, 3) metres along each box axis from the centre."""
    directions, _ = _box_frame(box)
    offsets = (points - box.center).T
    try:
        return np.linalg.solve(directions, offsets).T
    except np.linalg.LinAlgError:
        # Two parallel axes: a flat box with a malformed axis; least squares still measures.
        return np.linalg.lstsq(directions, offsets, rcond=None)[0].T


@functools.cache
def _ecef_to_geodetic() -> Transformer:
    return Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


@functools.cache
def _geodetic_to_ecef() -> Transformer:
    return Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)


def _region_outside(
    region: _Region,
    lon: npt.NDArray[np.float64],
    lat: npt.NDArray[np.float64],
    height: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Metres outside the region of geodetic points (radians, metres)."""
    tau = 2.0 * math.pi
    width = region.east - region.west
    if width < 0:
        width += tau  # the region crosses the antimeridian
    relative = np.mod(lon - region.west, tau)
    lon_out = np.where(relative <= width, 0.0, np.minimum(relative - width, tau - relative))
    lat_out = np.maximum(np.maximum(region.south - lat, lat - region.north), 0.0)
    h_out = np.maximum(np.maximum(region.min_height - height, height - region.max_height), 0.0)
    return np.sqrt((lon_out * _WGS84_A * np.cos(lat)) ** 2 + (lat_out * _WGS84_A) ** 2 + h_out**2)


def _outside_distance(volume: _Volume, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Metres by which each world point lies outside ``volume`` (0 inside)."""
    if isinstance(volume, _Box):
        _, lengths = _box_frame(volume)
        excess = np.maximum(np.abs(_box_coordinates(volume, points)) - lengths, 0.0)
        return np.sqrt((excess**2).sum(axis=1))
    if isinstance(volume, _Sphere):
        return np.maximum(np.linalg.norm(points - volume.center, axis=1) - volume.radius, 0.0)
    lon, lat, height = _ecef_to_geodetic().transform(points[:, 0], points[:, 1], points[:, 2])
    return _region_outside(volume, np.radians(lon), np.radians(lat), np.asarray(height))


def _volume_size(volume: _Volume) -> float:
    """A length scale of the volume in metres, for the relative tolerance."""
    if isinstance(volume, _Box):
        return float(np.linalg.norm(volume.half_axes, axis=0).max())
    if isinstance(volume, _Sphere):
        return volume.radius
    width = (volume.east - volume.west) % (2 * math.pi)
    mid = 0.5 * (volume.south + volume.north)
    return max(
        width * _WGS84_A * math.cos(mid),
        (volume.north - volume.south) * _WGS84_A,
        volume.max_height - volume.min_height,
    )


def _region_geodetic_samples(region: _Region, steps: int) -> tuple[npt.NDArray[np.float64], ...]:
    """Geodetic grid over a region: ``steps`` longitudes x latitudes, min and max height."""
    width = region.east - region.west
    if width < 0:
        width += 2 * math.pi
    lon = region.west + np.linspace(0.0, width, steps)
    lon = np.mod(lon + math.pi, 2 * math.pi) - math.pi
    lat = np.linspace(region.south, region.north, steps)
    heights = np.array([region.min_height, region.max_height])
    grid = np.meshgrid(lon, lat, heights, indexing="ij")
    return tuple(g.reshape(-1) for g in grid)


def _volume_samples(volume: _Volume) -> npt.NDArray[np.float64]:
    """World points that stand for the volume when testing it against another volume."""
    if isinstance(volume, _Box):
        # Corners, edge midpoints and face centres: corners suffice for box and sphere parents,
        # the rest catches a flat face dipping below a region's curved minimum height.
        u = np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"))
        return volume.center + u.reshape(3, -1).T @ volume.half_axes.T
    if isinstance(volume, _Sphere):
        u = np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"))
        d = u.reshape(3, -1).T
        d = d[np.abs(d).sum(axis=1) > 0].astype(np.float64)
        return volume.center + volume.radius * d / np.linalg.norm(d, axis=1, keepdims=True)
    lon, lat, height = _region_geodetic_samples(volume, 9)
    x, y, z = _geodetic_to_ecef().transform(np.degrees(lon), np.degrees(lat), height)
    return np.column_stack([x, y, z])


def _child_outside(parent: _Volume, child: _Volume) -> float:
    """Metres by which ``child`` sticks out of ``parent`` (0 inside)."""
    if isinstance(parent, _Region) and isinstance(child, _Region):
        lon, lat, height = _region_geodetic_samples(child, 2)  # the 8 corners are exact here
        return float(_region_outside(parent, lon, lat, height).max())
    if isinstance(child, _Sphere) and isinstance(parent, _Box):
        _, lengths = _box_frame(parent)
        w = np.abs(_box_coordinates(parent, child.center[None, :]))[0] + child.radius
        return float(np.sqrt((np.maximum(w - lengths, 0.0) ** 2).sum()))
    if isinstance(child, _Sphere) and isinstance(parent, _Sphere):
        gap = np.linalg.norm(child.center - parent.center) + child.radius - parent.radius
        return max(float(gap), 0.0)
    return float(_outside_distance(parent, _volume_samples(child)).max())


# ---------------------------------------------------------------------------------------------
# Walking the tile tree


@dataclass
class _GlbUse:
    """One GLB referenced by one tile content, with the volumes its vertices must lie in."""

    path: Path
    label: str
    """Where the reference is: "<tileset file> <json pointer>"."""
    world: npt.NDArray[np.float64]
    volumes: list[tuple[str, _Volume]]


@dataclass
class _Walk:
    """State of one validation run."""

    root_dir: Path
    schemas_dir: Path
    containment: bool
    report: ValidationReport
    glb_uses: list[_GlbUse] = field(default_factory=list)

    def name(self, path: Path) -> str:
        """A path as shown in messages: relative to the root tileset's folder."""
        return Path(os.path.relpath(path, self.root_dir)).as_posix()

    def error(self, path: Path, what: str, where: str) -> None:
        self.report.errors.append(f"{self.name(path)}: {what} ({where})")

    def warning(self, path: Path, what: str, where: str) -> None:
        self.report.warnings.append(f"{self.name(path)}: {what} ({where})")


@dataclass
class _Parent:
    """What a tile inherits from its parent tile (or from the tile referring to its tileset)."""

    world: npt.NDArray[np.float64]
    volume: _Volume | None
    geometric_error: float | None
    label: str


def _json_pointer(parts: Iterator[Any] | list[Any]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _content_uri(content: Any) -> str | None:
    if not isinstance(content, dict):
        return None
    uri = content.get("uri", content.get("url"))  # "url" is 3D Tiles 1.0-era spelling
    return uri if isinstance(uri, str) else None


def _tile_contents(tile: dict[str, Any]) -> list[tuple[str, Any]]:
    """(pointer suffix, content) of a tile's ``content`` and ``contents``."""
    found: list[tuple[str, Any]] = []
    if "content" in tile:
        found.append(("/content", tile["content"]))
    contents = tile.get("contents")
    if isinstance(contents, list):
        found.extend((f"/contents/{i}", c) for i, c in enumerate(contents))
    return found


def _transform(tile: dict[str, Any]) -> npt.NDArray[np.float64]:
    """The tile's 4x4 transform (3D Tiles stores it column-major)."""
    values = tile.get("transform")
    if values is None:
        return np.eye(4)
    try:
        matrix = np.asarray(values, dtype=np.float64).reshape(4, 4).T
    except (TypeError, ValueError):
        return np.eye(4)  # the schema check reports it
    return matrix


def _check_tileset_file(
    walk: _Walk, path: Path, parent: _Parent | None, chain: tuple[Path, ...]
) -> None:
    """Schema-check one tileset JSON and walk its tiles (recursing into external tilesets)."""
    where_ref = parent.label if parent else "root tileset"
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        walk.error(path, "tileset file does not exist", f"referenced from {where_ref}")
        return
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        walk.error(path, f"cannot read tileset JSON: {exc}", f"referenced from {where_ref}")
        return
    validator = _schema_validator(walk.schemas_dir)
    schema_errors = sorted(
        validator.iter_errors(document),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    for schema_error in schema_errors:
        pointer = _json_pointer(list(schema_error.absolute_path))
        walk.error(path, f"schema: {schema_error.message}", pointer)
    if not isinstance(document, dict):
        return
    asset = document.get("asset")
    version = asset.get("version") if isinstance(asset, dict) else None
    if version != "1.1":
        walk.error(path, f"asset.version is {version!r}, expected '1.1'", "/asset/version")
    root = document.get("root")
    if not isinstance(root, dict):
        return
    if "refine" not in root:
        walk.error(path, "the root tile has no refine ('ADD' or 'REPLACE')", "/root")
    tileset_error = document.get("geometricError")
    root_error = root.get("geometricError")
    if _is_number(tileset_error) and _is_number(root_error) and root_error > tileset_error:
        walk.warning(
            path,
            f"root geometricError {root_error} exceeds the tileset's {tileset_error}",
            "/root/geometricError",
        )
    if parent is None:
        parent = _Parent(np.eye(4), None, None, "root tileset")
    _walk_tiles(walk, path, root, parent, chain)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _walk_tiles(
    walk: _Walk, path: Path, root: dict[str, Any], parent: _Parent, chain: tuple[Path, ...]
) -> None:
    """Walk one tileset file's tiles depth first."""
    stack: list[tuple[dict[str, Any], list[Any], _Parent]] = [(root, ["root"], parent)]
    while stack:
        tile, parts, inherited = stack.pop()
        walk.report.tiles += 1
        pointer = _json_pointer(parts)
        world = inherited.world @ _transform(tile)
        volume = _world_volume(tile.get("boundingVolume"), world)
        label = f"{walk.name(path)} {pointer}"

        if walk.containment and volume is not None and inherited.volume is not None:
            _check_child_volume(walk, path, pointer, inherited, volume)
        error = tile.get("geometricError")
        if (
            _is_number(error)
            and inherited.geometric_error is not None
            and error > inherited.geometric_error
        ):
            walk.error(
                path,
                f"geometricError {error} is larger than {inherited.geometric_error}, the "
                f"parent tile's at {inherited.label}",
                f"{pointer}/geometricError",
            )
        refine = tile.get("refine")
        if isinstance(refine, str) and refine not in ("ADD", "REPLACE"):
            # The schema accepts any string (for forward compatibility); 1.1 defines two.
            walk.error(path, f"refine is {refine!r}, not 'ADD' or 'REPLACE'", f"{pointer}/refine")
        if "implicitTiling" in tile:
            walk.warning(path, "implicit tiling subtrees are not checked", pointer)

        for suffix, content in _tile_contents(tile):
            uri = _content_uri(content)
            if uri is None:
                continue  # the schema check reports a missing uri
            _check_content(
                walk, path, pointer + suffix, content, uri, world, volume, tile, label, chain
            )

        children = tile.get("children")
        if isinstance(children, list):
            here = _Parent(world, volume, error if _is_number(error) else None, label)
            for i in reversed(range(len(children))):
                if isinstance(children[i], dict):
                    stack.append((children[i], [*parts, "children", i], here))


def _check_child_volume(
    walk: _Walk, path: Path, pointer: str, parent: _Parent, volume: _Volume
) -> None:
    """Error when a tile's bounding volume sticks out of its parent's."""
    assert parent.volume is not None
    outside = _child_outside(parent.volume, volume)
    if outside > TOLERANCE.allowed(_volume_size(parent.volume)):
        walk.error(
            path,
            f"containment: boundingVolume ({_volume_kind(volume)}) sticks out of the parent "
            f"tile's {_volume_kind(parent.volume)} at {parent.label} by {outside:.3f} m",
            f"{pointer}/boundingVolume",
        )


def _check_content(
    walk: _Walk,
    path: Path,
    pointer: str,
    content: dict[str, Any],
    uri: str,
    world: npt.NDArray[np.float64],
    volume: _Volume | None,
    tile: dict[str, Any],
    label: str,
    chain: tuple[Path, ...],
) -> None:
    """Follow one content URI: recurse into external tilesets, queue GLBs for checking."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme or parsed.netloc:
        walk.warning(path, f"remote content {uri!r} is not checked", pointer)
        return
    if "{" in parsed.path:
        walk.warning(path, f"template content URI {uri!r} is not checked", pointer)
        return
    target = (path.parent / urllib.parse.unquote(parsed.path)).resolve()
    suffix = target.suffix.lower()
    if suffix == ".json":
        if target in chain:
            walk.error(path, f"external tileset {uri!r} refers back to itself", pointer)
            return
        error = tile.get("geometricError")
        inherited = _Parent(
            world, volume, error if _is_number(error) else None, f"{walk.name(path)} {pointer}"
        )
        _check_tileset_file(walk, target, inherited, (*chain, target))
        return
    if suffix != ".glb":
        walk.warning(path, f"content {uri!r} is not GLB and is not checked", pointer)
        return
    if not target.is_file():
        walk.error(path, f"content file {uri!r} does not exist", pointer)
        return
    volumes: list[tuple[str, _Volume]] = []
    if volume is not None:
        volumes.append(("tile boundingVolume", volume))
    content_volume = _world_volume(content.get("boundingVolume"), world)
    if content_volume is not None:
        volumes.append(("content boundingVolume", content_volume))
    walk.glb_uses.append(_GlbUse(target, f"{walk.name(path)} {pointer}", world, volumes))


def _check_glb_containment(walk: _Walk, path: Path, uses: list[_GlbUse]) -> None:
    """Decode a GLB once and error on vertices outside the volumes of each tile using it."""
    try:
        decoded = read_glb(path.read_bytes(), source=walk.name(path))
    except (FormatError, OSError) as exc:
        walk.report.errors.append(f"{exc} (decoding for {uses[0].label})")
        return
    if not decoded.primitives:
        return
    local = np.vstack([p.positions for p in decoded.primitives])
    for use in uses:
        _check_points_in_volumes(walk, use, local @ use.world[:3, :3].T + use.world[:3, 3])


def _check_points_in_volumes(walk: _Walk, use: _GlbUse, points: npt.NDArray[np.float64]) -> None:
    """Error for each volume of ``use`` that some of the world ``points`` lie outside."""
    for name, volume in use.volumes:
        distance = _outside_distance(volume, points)
        outside = distance > TOLERANCE.allowed(_volume_size(volume))
        if outside.any():
            worst = int(np.argmax(distance))
            walk.error(
                use.path,
                f"containment: {int(outside.sum())} of {len(points)} vertices lie outside the "
                f"{name} ({_volume_kind(volume)}), worst by {distance[worst]:.3f} m at vertex "
                f"{worst}",
                use.label,
            )


def _check_glbs_with_khronos(walk: _Walk, paths: list[Path]) -> None:
    """Run the Khronos validator on every GLB and turn its issues into errors and warnings."""
    for result in _run_gltf_validator(paths):
        path = Path(result["path"])
        if "failure" in result:
            walk.error(path, f"glTF validator could not read the file: {result['failure']}", "GLB")
            continue
        listed = {0: 0, 1: 0}
        for message in result.get("messages", []):
            severity = message.get("severity")
            if severity not in (0, 1):
                continue
            listed[severity] += 1
            place = message.get("pointer")
            where = f"glTF {place}" if place else f"byte {message.get('offset', '?')}"
            text = f"glTF validator {message.get('code')}: {message.get('message')}"
            (walk.error if severity == 0 else walk.warning)(path, text, where)
        more_errors = int(result.get("numErrors", 0)) - listed[0]
        if more_errors > 0:
            walk.error(path, f"glTF validator: {more_errors} more errors not listed", "GLB")
        more_warnings = int(result.get("numWarnings", 0)) - listed[1]
        if more_warnings > 0:
            walk.warning(path, f"glTF validator: {more_warnings} more warnings not listed", "GLB")


def validate_tileset(
    tileset_path: Path,
    *,
    schemas_dir: Path | None = None,
    gltf: bool = True,
    containment: bool = True,
) -> ValidationReport:
    """Validate a tileset (tileset.json or its folder) and everything it references; problems
    are collected in the report, only missing tools raise."""
    tileset_path = Path(tileset_path)
    if tileset_path.is_dir():
        tileset_path = tileset_path / "tileset.json"
    tileset_path = tileset_path.resolve()
    schemas = find_schemas_dir(schemas_dir).resolve()
    walk = _Walk(
        root_dir=tileset_path.parent,
        schemas_dir=schemas,
        containment=containment,
        report=ValidationReport(),
    )
    _check_tileset_file(walk, tileset_path, None, (tileset_path,))

    paths = sorted({use.path for use in walk.glb_uses})
    walk.report.glbs = len(paths)
    if gltf and paths:
        _check_glbs_with_khronos(walk, paths)
    if containment:
        for path in paths:
            _check_glb_containment(walk, path, [u for u in walk.glb_uses if u.path == path])
    return walk.report
