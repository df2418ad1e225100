"""3D Tiles 1.1 reader for published tilesets: the tile tree (external tilesets followed
lazily), screen-space-error level-of-detail selection for a camera, and tile content decoded
to meshes with vertex colours, feature IDs and their property tables.

Frames: every tile's ``transform`` maps its frame to its parent's; the product along the path
from the root (external tilesets included) maps tile content to ECEF. Bounding volumes are
kept in ECEF as boxes (centre and three half-axis vectors) or spheres; ``region`` volumes
(longitude/latitude radians and ellipsoidal heights, never transformed) become the box of
their samples in the east-north-up frame at their centre.

Selection follows the 3D Tiles traversal that CesiumJS uses: a tile outside the view frustum
is skipped; a tile whose screen-space error ``geometricError · height / (2 · distance ·
tan(fovy / 2))`` exceeds the limit is refined into its children (REPLACE: the children
instead of it; ADD: the children as well); otherwise its content is drawn. A tile whose
content is an external tileset always refers to that tileset's root.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import numpy.typing as npt

from twin.crs import ecef_to_enu_matrix, enu_to_ecef_matrix, geodetic_to_ecef
from twin.errors import FormatError
from twin.readers.gltf import read_glb

__all__ = [
    "Bounds",
    "Selection",
    "TileMesh",
    "TileNode",
    "Tileset",
    "ViewFrustum",
    "read_tile_meshes",
]

FloatArray = npt.NDArray[np.float64]

_REBUILD = "rebuild the scene with `twin build scene`"
_MIN_DISTANCE = 1e-3
"""Distances (m) below this count as inside the volume: the tile is refined."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """A bounding volume in ECEF: an oriented box (``axes`` rows are half-axis vectors) or,
    with ``axes`` None, a sphere of ``radius``. ``radius`` always bounds the volume."""

    center: FloatArray
    axes: FloatArray | None
    radius: float

    def distance(self, point: FloatArray) -> float:
        """Distance (m) from ``point`` to the volume; 0 inside."""
        offset = np.asarray(point, dtype=np.float64) - self.center
        if self.axes is None:
            return max(0.0, float(np.linalg.norm(offset)) - self.radius)
        try:
            # Coordinates in the box's unit frame; clamping them finds the nearest point.
            local = np.linalg.solve(self.axes.T, offset)
        except np.linalg.LinAlgError:  # a flat box: fall back to its sphere
            return max(0.0, float(np.linalg.norm(offset)) - self.radius)
        nearest = self.center + np.clip(local, -1.0, 1.0) @ self.axes
        return float(np.linalg.norm(np.asarray(point) - nearest))


@dataclass(frozen=True, slots=True)
class ViewFrustum:
    """A perspective camera in ECEF, as tile selection needs it."""

    position: FloatArray
    direction: FloatArray
    """Unit view direction."""
    up: FloatArray
    """Unit up vector, perpendicular to ``direction``."""
    fov_y: float
    """Vertical field of view (radians)."""
    aspect: float
    """Width / height."""
    height_px: int

    def planes(self) -> list[tuple[FloatArray, float]]:
        """Inward unit normals and offsets (n · x + d >= 0 inside) of the near and side planes."""
        d = self.direction
        right = np.cross(d, self.up)
        right /= np.linalg.norm(right)
        tan_y = math.tan(self.fov_y / 2.0)
        tan_x = tan_y * self.aspect
        normals = [d, d * tan_x - right, d * tan_x + right, d * tan_y - self.up,
                   d * tan_y + self.up]
        planes = []
        for n in normals:
            unit = n / np.linalg.norm(n)
            planes.append((unit, -float(unit @ self.position)))
        return planes

    def sees(self, bounds: Bounds, planes: list[tuple[FloatArray, float]]) -> bool:
        """False when the volume's bounding sphere lies wholly outside a frustum plane."""
        return all(float(n @ bounds.center) + d >= -bounds.radius for n, d in planes)

    def screen_space_error(self, geometric_error: float, distance: float) -> float:
        """Pixels that ``geometric_error`` metres span at ``distance``."""
        if geometric_error <= 0.0:
            return 0.0
        if distance < _MIN_DISTANCE:
            return math.inf
        return geometric_error * self.height_px / (2.0 * distance * math.tan(self.fov_y / 2.0))


@dataclass(slots=True)
class TileNode:
    """One tile of the tree, placed in ECEF."""

    address: str
    """``<tileset path>#<JSON pointer>``, paths relative to the tree's root folder."""
    tileset: Path
    depth: int
    world: FloatArray
    """4x4: tile frame -> ECEF (every transform from the root down, this tile's included)."""
    bounds: Bounds
    geometric_error: float
    refine: str
    contents: list[Path]
    """GLB content files of this tile."""
    externals: list[Path]
    """External tilesets this tile's content refers to."""
    children_json: list[Any] = field(repr=False)
    children: list[TileNode] | None = field(default=None, repr=False)
    lineage: tuple[Path, ...] = field(default=(), repr=False)
    """Tileset files from the root down to this tile's (to refuse reference cycles)."""


@dataclass(slots=True)
class Selection:
    """What a camera needs from a tileset."""

    tiles: list[TileNode]
    """Tiles whose content is drawn, in traversal order (depth first, children in order)."""
    visited: int = 0
    culled: int = 0

    @property
    def contents(self) -> list[Path]:
        """The GLB files to draw."""
        return [path for tile in self.tiles for path in tile.contents]


class Tileset:
    """A tileset tree rooted at ``path``; external tilesets are read when first needed.

    ``root_folder`` (default: the folder of ``path``) bounds every file the tree may
    reference: a URI leading outside it is a FormatError (a published scene version is one
    folder; its epochs refer to its layers with ``../../layers/...``).
    """

    def __init__(self, path: Path, *, root_folder: Path | None = None) -> None:
        self.path = Path(path)
        self.root_folder = Path(root_folder if root_folder is not None else self.path.parent)
        self._resolved_root = self.root_folder.resolve()
        self.root = self._load_root(self.path, np.eye(4), 0, ())

    # --- tree --------------------------------------------------------------------------

    def name(self, path: Path) -> str:
        """``path`` relative to the root folder, for messages and addresses."""
        try:
            return path.resolve().relative_to(self._resolved_root).as_posix()
        except ValueError:
            return str(path)

    def _read_json(self, path: Path) -> dict[str, Any]:
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise FormatError(f"{path}: tileset file is missing; {_REBUILD}") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{path}: not JSON ({exc}); {_REBUILD}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("root"), dict):
            raise FormatError(f"{path}: not a 3D Tiles tileset (no 'root' tile); {_REBUILD}")
        version = document.get("asset", {}).get("version") if isinstance(
            document.get("asset"), dict) else None
        if version not in ("1.0", "1.1"):
            raise FormatError(
                f"{path}: asset.version {version!r} is not a 3D Tiles version this reader "
                "knows (1.0, 1.1)"
            )
        return document

    def _load_root(
        self, path: Path, parent_world: FloatArray, depth: int, lineage: tuple[Path, ...]
    ) -> TileNode:
        resolved = path.resolve()
        if resolved in lineage:
            raise FormatError(
                f"{self.name(path)}: external tileset refers back to itself "
                f"(via {' -> '.join(self.name(p) for p in lineage)})"
            )
        document = self._read_json(path)
        return self._node(document["root"], path, "/root", parent_world, depth,
                          "REPLACE", lineage + (resolved,))

    def _node(
        self,
        tile: Any,
        tileset: Path,
        pointer: str,
        parent_world: FloatArray,
        depth: int,
        inherited_refine: str,
        lineage: tuple[Path, ...],
    ) -> TileNode:
        where = f"{self.name(tileset)}: tile {pointer}"
        if not isinstance(tile, dict):
            raise FormatError(f"{where}: a tile must be a JSON object; {_REBUILD}")
        if "implicitTiling" in tile:
            raise FormatError(
                f"{where}: implicit tiling is not supported by this reader; publish explicit "
                "tile trees (as `twin build` does)"
            )
        world = parent_world
        if "transform" in tile:
            try:
                local = np.asarray(tile["transform"], dtype=np.float64).reshape(4, 4).T
            except (TypeError, ValueError) as exc:
                raise FormatError(f"{where}: transform is not 16 numbers ({exc})") from exc
            if not np.isfinite(local).all():
                raise FormatError(f"{where}: transform holds non-finite numbers")
            world = parent_world @ local
        error = tile.get("geometricError")
        if not isinstance(error, int | float) or isinstance(error, bool) or not error >= 0:
            raise FormatError(f"{where}: geometricError must be a number >= 0, found {error!r}")
        refine = tile.get("refine", inherited_refine)
        if refine not in ("ADD", "REPLACE"):
            raise FormatError(f"{where}: refine must be ADD or REPLACE, found {refine!r}")
        contents, externals = self._contents(tile, tileset, where)
        children = tile.get("children", [])
        if not isinstance(children, list):
            raise FormatError(f"{where}: children must be a list")
        return TileNode(
            address=f"{self.name(tileset)}#{pointer}",
            tileset=tileset,
            depth=depth,
            world=world,
            bounds=_bounds(tile.get("boundingVolume"), world, where),
            geometric_error=float(error),
            refine=refine,
            contents=contents,
            externals=externals,
            children_json=children,
            lineage=lineage,
        )

    def _contents(self, tile: dict[str, Any], tileset: Path, where: str) -> tuple[
        list[Path], list[Path]
    ]:
        entries = []
        if "content" in tile:
            entries.append(tile["content"])
        if isinstance(tile.get("contents"), list):
            entries.extend(tile["contents"])
        contents: list[Path] = []
        externals: list[Path] = []
        for entry in entries:
            uri = entry.get("uri") if isinstance(entry, dict) else None
            if not isinstance(uri, str) or not uri:
                raise FormatError(f"{where}: content without a uri; {_REBUILD}")
            path = self._resolve(tileset, uri, where)
            suffix = path.suffix.lower()
            if suffix == ".json":
                externals.append(path)
            elif suffix == ".glb":
                contents.append(path)
            else:
                raise FormatError(
                    f"{where}: content {uri!r} is not GLB or an external tileset (b3dm, i3dm, "
                    f"pnts and cmpt are 3D Tiles 1.0 formats this renderer does not read); "
                    f"{_REBUILD}"
                )
        return contents, externals

    def _resolve(self, tileset: Path, uri: str, where: str) -> Path:
        parts = urlsplit(uri)
        if parts.scheme or parts.netloc:
            raise FormatError(
                f"{where}: content uri {uri!r} is not a relative path: the renderer reads "
                "published files only, never the network"
            )
        path = tileset.parent / unquote(parts.path)
        if not path.resolve().is_relative_to(self._resolved_root):
            raise FormatError(
                f"{where}: content uri {uri!r} leads outside {self.root_folder}; {_REBUILD}"
            )
        return path

    def children(self, node: TileNode) -> list[TileNode]:
        """The node's children: its own child tiles, then the roots of its external tilesets."""
        if node.children is None:
            children = [
                self._node(child, node.tileset, f"{node.address.split('#', 1)[1]}/children/{i}",
                           node.world, node.depth + 1, node.refine, node.lineage)
                for i, child in enumerate(node.children_json)
            ]
            children += [
                self._load_root(path, node.world, node.depth + 1, node.lineage)
                for path in node.externals
            ]
            node.children = children
        return node.children

    # --- selection ---------------------------------------------------------------------

    def select(
        self,
        view: ViewFrustum,
        max_screen_space_error: float = 16.0,
        keep: Callable[[Bounds], bool] | None = None,
    ) -> Selection:
        """The tiles to draw for ``view`` (see the module docstring). ``keep`` keeps tiles
        outside the frustum whose volume it accepts (e.g. those that may cast shadows into
        the view), at the level of detail their distance from the camera asks for."""
        planes = view.planes()
        selection = Selection(tiles=[])
        stack = [self.root]
        while stack:
            node = stack.pop()
            selection.visited += 1
            if not view.sees(node.bounds, planes) and not (keep is not None and keep(node.bounds)):
                selection.culled += 1
                continue
            children = self.children(node)
            error = view.screen_space_error(
                node.geometric_error, node.bounds.distance(view.position)
            )
            refine = bool(children) and (error > max_screen_space_error or not node.contents)
            if node.contents and (not refine or node.refine == "ADD"):
                selection.tiles.append(node)
            if refine:
                stack.extend(reversed(children))
        return selection


def _bounds(volume: Any, world: FloatArray, where: str) -> Bounds:
    """The tile's bounding volume in ECEF."""
    if not isinstance(volume, dict):
        raise FormatError(f"{where}: boundingVolume is missing; {_REBUILD}")
    try:
        if "box" in volume:
            box = np.asarray(volume["box"], dtype=np.float64).reshape(12)
            center = world[:3, :3] @ box[:3] + world[:3, 3]
            axes = box[3:].reshape(3, 3) @ world[:3, :3].T
            radius = float(np.sqrt((axes**2).sum()))
            return Bounds(center, axes, radius)
        if "region" in volume:
            return _region_bounds(np.asarray(volume["region"], dtype=np.float64).reshape(6))
        if "sphere" in volume:
            sphere = np.asarray(volume["sphere"], dtype=np.float64).reshape(4)
            center = world[:3, :3] @ sphere[:3] + world[:3, 3]
            scale = float(np.linalg.norm(world[:3, :3], axis=0).max())
            return Bounds(center, None, float(sphere[3]) * scale)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{where}: malformed boundingVolume ({exc}); {_REBUILD}") from exc
    raise FormatError(f"{where}: boundingVolume has no box, region or sphere; {_REBUILD}")


def _region_bounds(region: FloatArray) -> Bounds:
    """A region (radians, ellipsoidal heights) as the ENU-aligned box around its samples."""
    west, south, east, north, low, high = region
    lon = np.degrees(np.linspace(west, east, 5))
    lat = np.degrees(np.linspace(south, north, 5))
    lon_grid, lat_grid, h_grid = np.meshgrid(lon, lat, [low, high], indexing="ij")
    samples = geodetic_to_ecef(lon_grid.ravel(), lat_grid.ravel(), h_grid.ravel())
    middle = geodetic_to_ecef(
        np.degrees((west + east) / 2.0), np.degrees((south + north) / 2.0), (low + high) / 2.0
    )
    to_enu = ecef_to_enu_matrix(middle)
    enu = samples @ to_enu[:3, :3].T + to_enu[:3, 3]
    lo, hi = enu.min(axis=0), enu.max(axis=0)
    to_ecef = enu_to_ecef_matrix(middle)
    center = to_ecef[:3, :3] @ ((lo + hi) / 2.0) + to_ecef[:3, 3]
    axes = (np.diag((hi - lo) / 2.0) @ to_ecef[:3, :3].T)
    return Bounds(center, axes, float(np.linalg.norm((hi - lo) / 2.0)))


# --- content ---------------------------------------------------------------------------


@dataclass(slots=True)
class TileMesh:
    """One primitive of a tile's content, placed in the caller's frame."""

    source: Path
    mode: int
    """4 triangles, 0 points, 1-3 lines (glTF primitive modes)."""
    positions: FloatArray
    """(n, 3) in the frame asked for."""
    triangles: npt.NDArray[np.int64] | None
    normals: FloatArray | None
    """(n, 3) unit vectors in the frame asked for."""
    colors: FloatArray
    """(n, 4) linear RGBA 0..1: COLOR_0 times the material's base colour."""
    feature_ids: npt.NDArray[np.int64] | None
    properties: dict[str, Any] | None
    """The property table the feature IDs index: column name -> values (None: none)."""


def read_tile_meshes(path: Path, to_frame: FloatArray, *, source: str | None = None) -> list[
    TileMesh
]:
    """Decode a GLB tile content and place it with ``to_frame`` (4x4, tile frame -> frame).

    ``to_frame`` is typically ``ecef_to_frame @ tile.world``; positions are computed in
    float64, so a local frame keeps full precision for float32 renderers.
    """
    name = source or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise FormatError(f"{name}: tile content is missing; {_REBUILD}") from exc
    decoded = read_glb(data, source=name)
    materials = decoded.json.get("materials", [])
    rotation = to_frame[:3, :3]
    meshes = []
    for primitive in decoded.primitives:
        positions = primitive.positions @ rotation.T + to_frame[:3, 3]
        normals = None
        if primitive.normals is not None:
            normals = primitive.normals @ rotation.T
            length = np.linalg.norm(normals, axis=1, keepdims=True)
            normals = normals / np.where(length > 0, length, 1.0)
        base = np.ones(4)
        if primitive.material is not None and primitive.material < len(materials):
            factor = materials[primitive.material].get("pbrMetallicRoughness", {}).get(
                "baseColorFactor"
            )
            if isinstance(factor, list) and len(factor) == 4:
                base = np.asarray(factor, dtype=np.float64)
        n = len(positions)
        colors = (primitive.colors if primitive.colors is not None else np.ones((n, 4))) * base
        properties = None
        if primitive.property_table is not None and primitive.property_table < len(
            decoded.property_tables
        ):
            properties = decoded.property_tables[primitive.property_table]
        meshes.append(
            TileMesh(
                source=path,
                mode=primitive.mode,
                positions=positions,
                triangles=primitive.indices,
                normals=normals,
                colors=colors,
                feature_ids=primitive.feature_ids,
                properties=properties,
            )
        )
    return meshes
