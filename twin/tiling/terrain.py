"""Terrain tiles: a quadtree of regular grid meshes over a ``TerrainGrid``, with measured
geometric errors, crack-free edges and normals for shading.

Levels. Mesh vertices ("nodes") are the grid's cell centres. A leaf covers ``leaf_cells`` ×
``leaf_cells`` cells at full resolution; a tile one level up covers its 2 × 2 children with
every other node row and column (stride 2, then 4, ...), plus the grid's last node row and
column so that every level spans the whole grid. Exact decimation keeps every parent node a
node of its children, and all quads are split along the same diagonal, so the full-resolution
triangulation refines every coarser one: the largest vertical distance between a parent's
surface and the full-resolution surface is reached at full-resolution nodes, where it is
computed exactly. A parent declares that distance (rounded up to the millimetre, and never
less than its children's) as its ``geometricError``; leaves declare 0.

Cracks. Two tiles of the same level share their edge nodes, and every node of a level is
moved to the local frame exactly once (rows are transformed in bands and cached while the
next band needs them), so shared edge vertices are bit-identical whatever ``to_local`` does
with batches; normals come from the same cached rows. Between levels (a tile next to a
coarser neighbour, which REPLACE refinement allows) the coarse edge cuts corners of the fine
one: *skirts*, vertical strips hanging from each interior tile edge, close those T-junction
gaps. A gap is at most the two tiles' errors together, so the skirt depth is a multiple of the
largest error one level up (``TerrainDefaults.skirt_error_factor``). The grid's outer border
gets no skirt: there is no neighbour to meet, and a curtain would show.

Vertices are placed with ``to_local`` (source CRS → the tileset's east-north-up metres) node by
node, not by one offset: the ENU frame is rotated against UTM grid north, and heights go
through the vertical model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from twin.constants import TERRAIN
from twin.errors import GeometryError
from twin.ops.cityobject import KIND_COLORS, linear_bytes
from twin.ops.terrain import TerrainGrid
from twin.tiling.tileset import Tile, box_from_bounds
from twin.writers.gltf import MeshContent, write_glb

__all__ = [
    "TerrainLevel",
    "TerrainMesh",
    "TerrainTileSpec",
    "surface_error",
    "terrain_levels",
    "terrain_tile_meshes",
    "water_mask",
    "write_terrain_tiles",
]

Float64Array = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]
ToLocal = Callable[[Float64Array], Float64Array]

_ERROR_CHUNK = 1 << 20
"""Full-resolution nodes compared per step when measuring a tile's error (bounds memory)."""


@dataclass(frozen=True, slots=True)
class TerrainLevel:
    """One level of the quadtree: its node lattice and how many tiles cover it."""

    level: int
    stride: int
    columns: IndexArray
    """Grid column of every node column of this level (every stride-th, plus the last)."""
    rows: IndexArray
    """Grid row of every node row."""
    tiles_x: int
    tiles_y: int


@dataclass(frozen=True, slots=True)
class TerrainTileSpec:
    """A tile: its place in the quadtree and its node range in its level's lattice."""

    level: int
    x: int
    y: int
    c0: int
    c1: int
    """First and last (inclusive) lattice column."""
    r0: int
    r1: int
    """First and last (inclusive) lattice row."""

    @property
    def name(self) -> str:
        """File name of the tile's GLB (shares a folder with point tiles)."""
        return f"terrain-{self.level}-{self.x}-{self.y}.glb"


@dataclass(slots=True)
class TerrainMesh:
    """One tile's mesh in the local frame: the node grid first (row-major, rows south to
    north), then the skirt vertices."""

    spec: TerrainTileSpec
    vertices: Float64Array
    normals: npt.NDArray[np.float32]
    colors: npt.NDArray[np.uint8]
    triangles: npt.NDArray[np.uint32]
    node_shape: tuple[int, int]
    """(rows, columns) of the node grid: vertex r * columns + c is node (r, c)."""
    skirt_depth: float
    """How far (m) skirts hang below the interior edges (0: no skirt)."""


def _lattice(nodes: int, stride: int) -> IndexArray:
    """Every ``stride``-th node index, plus the last node."""
    idx = np.arange(0, nodes, stride, dtype=np.int64)
    if idx[-1] != nodes - 1:
        idx = np.append(idx, nodes - 1)
    return idx


def terrain_levels(shape: tuple[int, int], leaf_cells: int = TERRAIN.leaf_cells) -> list[
    TerrainLevel
]:
    """The quadtree levels over a (ny, nx) node grid, root (level 0) first."""
    ny, nx = shape
    if nx < 2 or ny < 2:
        raise GeometryError(
            f"a terrain mesh needs at least 2 x 2 cells, the grid has {nx} x {ny}: "
            "use a smaller cell size or larger bounds"
        )
    if leaf_cells < 1:
        raise ValueError(f"leaf_cells must be positive, not {leaf_cells}")
    leaves = max(math.ceil((nx - 1) / leaf_cells), math.ceil((ny - 1) / leaf_cells))
    depth = max(leaves - 1, 0).bit_length()  # ceil(log2(leaves))
    levels = []
    for level in range(depth + 1):
        stride = 2 ** (depth - level)
        columns, rows = _lattice(nx, stride), _lattice(ny, stride)
        levels.append(
            TerrainLevel(
                level=level,
                stride=stride,
                columns=columns,
                rows=rows,
                tiles_x=math.ceil((len(columns) - 1) / leaf_cells),
                tiles_y=math.ceil((len(rows) - 1) / leaf_cells),
            )
        )
    return levels


def _tile_spec(level: TerrainLevel, x: int, y: int, leaf_cells: int) -> TerrainTileSpec:
    return TerrainTileSpec(
        level=level.level,
        x=x,
        y=y,
        c0=x * leaf_cells,
        c1=min((x + 1) * leaf_cells, len(level.columns) - 1),
        r0=y * leaf_cells,
        r1=min((y + 1) * leaf_cells, len(level.rows) - 1),
    )


def surface_error(heights: Float64Array, rows: IndexArray, columns: IndexArray) -> float:
    """Largest |tile surface − full-resolution surface| over the full-resolution nodes a tile
    with node ``rows`` × ``columns`` covers; quads split (0,0)–(1,1) as the meshes are."""
    rows = np.asarray(rows, dtype=np.int64)
    columns = np.asarray(columns, dtype=np.int64)
    coarse = heights[np.ix_(rows, columns)]
    fine_cols = np.arange(columns[0], columns[-1] + 1)
    a = np.clip(np.searchsorted(columns, fine_cols, side="right") - 1, 0, len(columns) - 2)
    u = (fine_cols - columns[a]) / (columns[a + 1] - columns[a])
    fine_rows = np.arange(rows[0], rows[-1] + 1)
    b_all = np.clip(np.searchsorted(rows, fine_rows, side="right") - 1, 0, len(rows) - 2)
    v_all = (fine_rows - rows[b_all]) / (rows[b_all + 1] - rows[b_all])
    step = max(1, _ERROR_CHUNK // len(fine_cols))
    worst = 0.0
    for start in range(0, len(fine_rows), step):
        b = b_all[start: start + step]
        v = v_all[start: start + step][:, None]
        h00, h10 = coarse[b][:, a], coarse[b][:, a + 1]
        h01, h11 = coarse[b + 1][:, a], coarse[b + 1][:, a + 1]
        uu = u[None, :]
        lower = uu >= v
        estimate = np.where(
            lower,
            h00 + uu * (h10 - h00) + v * (h11 - h10),
            h00 + v * (h01 - h00) + uu * (h11 - h01),
        )
        full = heights[np.ix_(fine_rows[start: start + step], fine_cols)]
        worst = max(worst, float(np.abs(estimate - full).max()))
    return worst


def _ceil_mm(value: float) -> float:
    """Round up to the millimetre (declared errors must not understate the measured ones)."""
    return math.ceil(value * 1000.0 - 1e-9) / 1000.0


def _declared_errors(
    grid: TerrainGrid, levels: list[TerrainLevel], leaf_cells: int
) -> dict[tuple[int, int, int], float]:
    """(level, x, y) -> geometricError, leaves first so parents can take their maximum."""
    errors: dict[tuple[int, int, int], float] = {}
    for lv in reversed(levels):
        for y in range(lv.tiles_y):
            for x in range(lv.tiles_x):
                if lv.stride == 1:
                    errors[(lv.level, x, y)] = 0.0
                    continue
                spec = _tile_spec(lv, x, y, leaf_cells)
                measured = surface_error(
                    grid.heights,
                    lv.rows[spec.r0: spec.r1 + 1],
                    lv.columns[spec.c0: spec.c1 + 1],
                )
                children = [
                    errors.get((lv.level + 1, 2 * x + dx, 2 * y + dy), 0.0)
                    for dy in (0, 1)
                    for dx in (0, 1)
                ]
                errors[(lv.level, x, y)] = max(_ceil_mm(measured), *children)
    return errors


def _skirt_depths(
    levels: list[TerrainLevel], errors: dict[tuple[int, int, int], float]
) -> list[float]:
    """Skirt depth per level: a multiple of the largest error one level up."""
    level_max = [0.0] * len(levels)
    for (level, _, _), error in errors.items():
        level_max[level] = max(level_max[level], error)
    depths = [0.0]
    for level in range(1, len(levels)):
        depths.append(
            max(TERRAIN.min_skirt_depth, TERRAIN.skirt_error_factor * level_max[level - 1])
        )
    return depths


class _LevelNodes:
    """Local-frame coordinates of one level's nodes, each row transformed exactly once and
    kept while a band of tiles still needs it."""

    def __init__(self, grid: TerrainGrid, level: TerrainLevel, to_local: ToLocal) -> None:
        self.grid = grid
        self.level = level
        self.to_local = to_local
        self.rows: dict[int, Float64Array] = {}
        x, _ = grid.cell_centres(np.zeros(1, dtype=np.int64), level.columns)
        self.x = x

    def band(self, first: int, last: int) -> Float64Array:
        """(last - first + 1, columns, 3) local coordinates of lattice rows first..last."""
        missing = [r for r in range(first, last + 1) if r not in self.rows]
        if missing:
            grid_rows = self.level.rows[missing]
            _, y = self.grid.cell_centres(grid_rows, np.zeros(1, dtype=np.int64))
            ncols = len(self.level.columns)
            z = self.grid.heights[np.ix_(grid_rows, self.level.columns)]
            source = np.column_stack(
                (np.tile(self.x, len(missing)), np.repeat(y, ncols), z.reshape(-1))
            )
            local = np.asarray(self.to_local(source), dtype=np.float64)
            if local.shape != source.shape or not np.isfinite(local).all():
                raise ValueError(
                    f"to_local returned {local.shape} (finite: {np.isfinite(local).all()}) "
                    f"for {source.shape} terrain nodes"
                )
            for k, r in enumerate(missing):
                self.rows[r] = local[k * ncols: (k + 1) * ncols]
        for r in [r for r in self.rows if r < first]:
            del self.rows[r]
        return np.stack([self.rows[r] for r in range(first, last + 1)])


def _band_normals(nodes: Float64Array, first: int, r0: int, r1: int, nrows: int) -> Float64Array:
    """Unit normals of lattice rows r0..r1 by central differences (one-sided at the grid
    border) over ``nodes``, which hold lattice rows ``first``... of a level with ``nrows``."""
    ncols = nodes.shape[1]
    c = np.arange(ncols)
    left, right = np.maximum(c - 1, 0), np.minimum(c + 1, ncols - 1)
    r = np.arange(r0, r1 + 1)
    below = np.maximum(r - 1, 0) - first
    above = np.minimum(r + 1, nrows - 1) - first
    rows = nodes[r - first]
    # Written out element by element (no BLAS, no reductions): a node on the edge between two
    # bands gets its normal computed twice, and both must be the same bits.
    ex, ey, ez = (rows[:, right, k] - rows[:, left, k] for k in range(3))
    nx_, ny_, nz_ = (nodes[above, :, k] - nodes[below, :, k] for k in range(3))
    normal = np.stack((ey * nz_ - ez * ny_, ez * nx_ - ex * nz_, ex * ny_ - ey * nx_), axis=-1)
    length = np.sqrt(normal[..., 0] ** 2 + normal[..., 1] ** 2 + normal[..., 2] ** 2)
    return np.asarray(normal / length[..., None], dtype=np.float64)


def water_mask(grid: TerrainGrid) -> npt.NDArray[np.bool_]:
    """Cells drawn as water: filled (no returns), low (``water_max_height``) and part of a
    gap of at least ``water_min_area``; a hint for readers of the scene, not a water model.
    Data with a water class says where water is: then exactly those cells."""
    if grid.water is not None:
        return grid.water
    low = grid.filled & (grid.heights <= TERRAIN.water_max_height)
    if not low.any():
        return low
    labels, count = ndimage.label(grid.filled)
    sizes = np.bincount(labels.reshape(-1), minlength=count + 1) * grid.cell**2
    large = sizes >= TERRAIN.water_min_area
    large[0] = False
    return low & large[labels]


def _colors(
    water: npt.NDArray[np.bool_], rows: IndexArray, columns: IndexArray
) -> npt.NDArray[np.uint8]:
    """Linear RGBA per node: terrain, or water."""
    terrain = KIND_COLORS["terrain"]
    water_rgba = linear_bytes(np.array(TERRAIN.water_color) / 255.0)
    is_water = water[np.ix_(rows, columns)].reshape(-1, 1)
    return np.where(is_water, water_rgba, terrain).astype(np.uint8)


def _grid_triangles(nrows: int, ncols: int) -> npt.NDArray[np.uint32]:
    """Two counter-clockwise (seen from above) triangles per quad, split (0,0)–(1,1)."""
    r, c = np.meshgrid(np.arange(nrows - 1), np.arange(ncols - 1), indexing="ij")
    v00 = (r * ncols + c).reshape(-1)
    v10, v01, v11 = v00 + 1, v00 + ncols, v00 + ncols + 1
    tris = np.empty((2 * len(v00), 3), dtype=np.uint32)
    tris[0::2] = np.column_stack((v00, v10, v11))
    tris[1::2] = np.column_stack((v00, v11, v01))
    return tris


def _boundary(nrows: int, ncols: int) -> dict[str, IndexArray]:
    """Node indices of each edge, counter-clockwise seen from above (outside on the right)."""
    c = np.arange(ncols)
    r = np.arange(nrows)
    return {
        "south": c,
        "east": r * ncols + ncols - 1,
        "north": ((nrows - 1) * ncols + c)[::-1],
        "west": (r * ncols)[::-1],
    }


def _tile_mesh(
    spec: TerrainTileSpec,
    level: TerrainLevel,
    water: npt.NDArray[np.bool_],
    nodes: Float64Array,
    normals: Float64Array,
    band_first: int,
    skirt_depth: float,
) -> TerrainMesh:
    """The mesh of one tile cut from its band's node coordinates and normals."""
    rows = slice(spec.r0 - band_first, spec.r1 - band_first + 1)
    cols = slice(spec.c0, spec.c1 + 1)
    nrows, ncols = spec.r1 - spec.r0 + 1, spec.c1 - spec.c0 + 1
    vertices = [nodes[rows, cols].reshape(-1, 3)]
    vertex_normals = [normals[:, cols].reshape(-1, 3)]
    colors = [
        _colors(water, level.rows[spec.r0: spec.r1 + 1], level.columns[spec.c0: spec.c1 + 1])
    ]
    triangles = [_grid_triangles(nrows, ncols)]
    interior = {
        "south": spec.y > 0,
        "east": spec.x < level.tiles_x - 1,
        "north": spec.y < level.tiles_y - 1,
        "west": spec.x > 0,
    }
    # An interior edge ends on the grid's outer border, where every level has the same node
    # (no gap to close): the skirt tapers to nothing there instead of showing its cut end,
    # a sliver hanging below the terrain's rim. Over the last interval both the gap and the
    # skirt grow linearly from 0, the skirt to the full depth, so it still closes the gap.
    r_level = spec.r0 + np.arange(nrows)
    c_level = spec.c0 + np.arange(ncols)
    on_rim = (
        ((r_level == 0) | (r_level == len(level.rows) - 1))[:, None]
        | ((c_level == 0) | (c_level == len(level.columns) - 1))[None, :]
    ).reshape(-1)
    base = nrows * ncols
    for side, edge in _boundary(nrows, ncols).items():
        if not interior[side] or skirt_depth <= 0.0:
            continue
        lowered = ~on_rim[edge]
        vertices.append(vertices[0][edge[lowered]] - np.array([0.0, 0.0, skirt_depth]))
        vertex_normals.append(vertex_normals[0][edge[lowered]])
        colors.append(colors[0][edge[lowered]])
        low = edge.copy()
        low[lowered] = base + np.arange(int(lowered.sum()))
        a, b = edge[:-1], edge[1:]
        a_low, b_low = low[:-1], low[1:]
        # Faces outward: seen from the neighbour, the strip runs left to right.
        strip = np.concatenate((np.column_stack((a_low, b_low, b)), np.column_stack((a_low, b, a))))
        proper = (strip[:, 0] != strip[:, 1]) & (strip[:, 1] != strip[:, 2]) & (
            strip[:, 0] != strip[:, 2]
        )
        triangles.append(strip[proper].astype(np.uint32))
        base += int(lowered.sum())
    return TerrainMesh(
        spec=spec,
        vertices=np.concatenate(vertices),
        normals=np.concatenate(vertex_normals).astype(np.float32),
        colors=np.concatenate(colors),
        triangles=np.concatenate(triangles),
        node_shape=(nrows, ncols),
        skirt_depth=skirt_depth if any(interior.values()) else 0.0,
    )


def _level_meshes(
    grid: TerrainGrid,
    level: TerrainLevel,
    to_local: ToLocal,
    leaf_cells: int,
    skirt_depth: float,
    water: npt.NDArray[np.bool_],
) -> Iterator[TerrainMesh]:
    """Yield every tile mesh of a level, band by band (south to north), west to east."""
    nodes = _LevelNodes(grid, level, to_local)
    nrows = len(level.rows)
    for y in range(level.tiles_y):
        first_spec = _tile_spec(level, 0, y, leaf_cells)
        first = max(first_spec.r0 - 1, 0)
        last = min(first_spec.r1 + 1, nrows - 1)
        band = nodes.band(first, last)
        # All tiles of a band share its rows r0..r1; the band also holds one halo row on each
        # side (where the grid goes on) for central differences.
        normals = _band_normals(band, first, first_spec.r0, first_spec.r1, nrows)
        for x in range(level.tiles_x):
            spec = _tile_spec(level, x, y, leaf_cells)
            yield _tile_mesh(spec, level, water, band, normals, first, skirt_depth)


def terrain_tile_meshes(
    grid: TerrainGrid, to_local: ToLocal, *, leaf_cells: int = TERRAIN.leaf_cells
) -> tuple[list[TerrainMesh], dict[tuple[int, int, int], float]]:
    """Every tile mesh (in memory: for tests and small grids) and the declared errors."""
    levels = terrain_levels(grid.shape, leaf_cells)
    errors = _declared_errors(grid, levels, leaf_cells)
    depths = _skirt_depths(levels, errors)
    water = water_mask(grid)
    meshes: list[TerrainMesh] = []
    for level in levels:
        meshes.extend(
            _level_meshes(grid, level, to_local, leaf_cells, depths[level.level], water)
        )
    return meshes, errors


def write_terrain_tiles(
    grid: TerrainGrid,
    to_local: ToLocal,
    tiles_dir: Path,
    *,
    uri_prefix: str = "tiles/",
    progress: Callable[[int], None] | None = None,
    leaf_cells: int = TERRAIN.leaf_cells,
) -> Tile:
    """Write every terrain tile as ``terrain-<level>-<x>-<y>.glb`` into ``tiles_dir`` and
    return the root tile (bounding boxes in the local frame; the caller adds the transform)."""
    tiles_dir = Path(tiles_dir)
    tiles_dir.mkdir(parents=True, exist_ok=True)
    levels = terrain_levels(grid.shape, leaf_cells)
    errors = _declared_errors(grid, levels, leaf_cells)
    depths = _skirt_depths(levels, errors)
    water = water_mask(grid)
    bounds: dict[tuple[int, int, int], tuple[Float64Array, Float64Array]] = {}
    # Level by level, band by band: memory holds one band of node coordinates at a time.
    for level in reversed(levels):
        meshes = _level_meshes(grid, level, to_local, leaf_cells, depths[level.level], water)
        for mesh in meshes:
            lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
            origin = np.round((lo + hi) / 2.0, 3)
            data = write_glb(
                MeshContent(
                    positions=mesh.vertices - origin,
                    normals=mesh.normals,
                    colors=mesh.colors,
                    feature_ids=None,
                    indices=mesh.triangles,
                    origin=origin,
                ),
                # Byte normals: a quarter of the float size, invisible on terrain. Positions
                # stay float32: per-tile quantization would break bit-identical shared edges.
                compact_normals=True,
            )
            (tiles_dir / mesh.spec.name).write_bytes(data)
            bounds[(mesh.spec.level, mesh.spec.x, mesh.spec.y)] = (lo, hi)
            if progress is not None:
                progress(1)
    return _tile_tree(levels[0], levels, 0, 0, bounds, errors, uri_prefix, leaf_cells)


def _tile_tree(
    level: TerrainLevel,
    levels: list[TerrainLevel],
    x: int,
    y: int,
    bounds: dict[tuple[int, int, int], tuple[Float64Array, Float64Array]],
    errors: dict[tuple[int, int, int], float],
    uri_prefix: str,
    leaf_cells: int,
) -> Tile:
    """The tile object of (level, x, y) and its subtree; boxes contain the children's."""
    key = (level.level, x, y)
    lo, hi = bounds[key]
    children: list[Tile] = []
    if level.level + 1 < len(levels):
        below = levels[level.level + 1]
        for dy in (0, 1):
            for dx in (0, 1):
                cx, cy = 2 * x + dx, 2 * y + dy
                if cx < below.tiles_x and cy < below.tiles_y:
                    children.append(
                        _tile_tree(below, levels, cx, cy, bounds, errors, uri_prefix, leaf_cells)
                    )
    for child in children:
        box = child["boundingVolume"]["box"]
        centre, half = np.array(box[:3]), np.array([box[3], box[7], box[11]])
        lo, hi = np.minimum(lo, centre - half), np.maximum(hi, centre + half)
    spec = _tile_spec(level, x, y, leaf_cells)
    tile: Tile = {"boundingVolume": box_from_bounds(lo, hi), "geometricError": errors[key]}
    if level.level == 0:
        tile["refine"] = "REPLACE"
    tile["content"] = {"uri": uri_prefix + spec.name}
    if children:
        tile["children"] = children
    return tile
