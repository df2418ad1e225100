"""Terrain height grids from LiDAR points: a DTM from ground points or a DSM from all points.

Pure numpy/scipy, no files. Points arrive in streamed chunks (source CRS coordinates, e.g.
EPSG:25833 metres) and only per-cell statistics are kept, so memory is the grid, not the
point cloud:

- **DTM, classified data**: the *mean* height of the ground-class points (ASPRS class 2) in
  each cell. The mean, not the lowest, because ground points are already ground: averaging
  halves the sensor noise with four points per cell where the minimum would bias it low.
- **DTM, unclassified data** (no ground-class point at all, e.g. everything class 0/1): the
  lowest point of each cell, then a progressive morphological filter (Zhang et al. 2003, the
  algorithm of PDAL's ``filters.pmf``, with its defaults): the lowest-point surface is opened
  (erosion then dilation) with square windows of 3, 5, 9, 17, 33 m; a cell whose lowest point
  rises more than a window's threshold above the opened surface is an object (building, tree)
  and not ground. Objects wider than the largest window in both directions stay; see
  ``TerrainDefaults.pmf_*``.
- **Water** (ASPRS class 9): where a DTM cell has no ground point but water points, the mean
  water height is the surface and the cell is marked as water (where the data has no water
  class, low filled gaps are drawn as water, see ``twin.tiling.terrain.water_mask``).
- **DSM**: the highest point of each cell, all classes.

Noise classes (7, 18) and non-finite coordinates are ignored everywhere. Cells left without a
value (water, which airborne LiDAR does not see; ground under buildings in a DTM; holes at the
edge of coverage) are filled by Laplace interpolation from their boundary, so a lake becomes
a smooth surface at its shore heights (the water level) and the filled cells are marked.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from twin.constants import TERRAIN
from twin.errors import GeometryError, InputError

__all__ = [
    "TerrainGrid",
    "TerrainGridBuilder",
    "fill_gaps",
    "lowest_point_ground",
]

logger = logging.getLogger(__name__)

Float64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SURFACES = ("dtm", "dsm")


@dataclass
class TerrainGrid:
    """A gap-free height grid in the source CRS: cell (row j, column i) has its centre at
    (x0 + (i + 0.5) * cell, y0 + (j + 0.5) * cell); rows run south to north."""

    x0: float
    y0: float
    cell: float
    heights: Float64Array
    """(ny, nx) heights in the source vertical datum; finite everywhere."""
    filled: BoolArray
    """(ny, nx) cells that had no point of the surface and were interpolated."""
    surface: str
    """"dtm" or "dsm"."""
    source_points: int
    """Points that made the surface (ground points of a classified DTM, else all non-noise
    points inside the grid)."""
    ground_filter: str = field(default="")
    """How ground was found: "classes 2", "lowest-point filter (PMF)", "" for a DSM."""
    water: BoolArray | None = field(default=None)
    """(ny, nx) cells whose surface is water-class points (None: the data has none)."""

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        ny, nx = self.heights.shape
        return int(ny), int(nx)

    def cell_centres(
        self, rows: npt.ArrayLike, columns: npt.ArrayLike
    ) -> tuple[Float64Array, Float64Array]:
        """Source x of ``columns`` and y of ``rows``, computed the same way for every caller
        (tiles that share grid nodes must get bit-identical coordinates)."""
        x = self.x0 + (np.asarray(columns, dtype=np.float64) + 0.5) * self.cell
        y = self.y0 + (np.asarray(rows, dtype=np.float64) + 0.5) * self.cell
        return x, y


class TerrainGridBuilder:
    """Streams point chunks into per-cell statistics; ``finish`` makes the ``TerrainGrid``.

    The grid is aligned to multiples of ``cell`` (so grids of neighbouring areas line up) and
    covers ``bounds_xy`` = (xmin, ymin, xmax, ymax); points outside are ignored.
    """

    def __init__(
        self,
        bounds_xy: tuple[float, float, float, float],
        cell: float = TERRAIN.cell,
        *,
        surface: str = "dtm",
        ground_classes: tuple[int, ...] = TERRAIN.ground_classes,
        water_classes: tuple[int, ...] = TERRAIN.water_classes,
    ) -> None:
        xmin, ymin, xmax, ymax = (float(v) for v in bounds_xy)
        if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)):
            raise InputError(f"terrain bounds {bounds_xy!r} are not finite numbers")
        if xmax <= xmin or ymax <= ymin:
            raise InputError(
                f"terrain bounds {bounds_xy!r} are empty: expected (xmin, ymin, xmax, ymax)"
            )
        if not (math.isfinite(cell) and cell > 0):
            raise InputError(f"terrain cell size must be a positive number of metres, not {cell!r}")
        if surface not in SURFACES:
            raise InputError(f"terrain surface must be one of {SURFACES}, not {surface!r}")
        self.cell = float(cell)
        self.surface = surface
        self.ground_classes = np.asarray(ground_classes, dtype=np.int64)
        self.water_classes = np.asarray(water_classes, dtype=np.int64)
        self.bounds = (xmin, ymin, xmax, ymax)
        self.x0 = math.floor(xmin / cell) * cell
        self.y0 = math.floor(ymin / cell) * cell
        self.nx = max(1, math.ceil((xmax - self.x0) / cell))
        self.ny = max(1, math.ceil((ymax - self.y0) / cell))
        cells = self.nx * self.ny
        if cells > TERRAIN.max_grid_cells:
            raise InputError(
                f"a {cell:g} m terrain grid over {bounds_xy!r} has {cells:,} cells, more than "
                f"{TERRAIN.max_grid_cells:,}: use a larger cell size or split the area"
            )
        self._noise = np.asarray(TERRAIN.noise_classes, dtype=np.int64)
        self._points = 0
        self._ground_points = 0
        # Only the statistics the surface needs: a DTM keeps ground sums/counts and, for
        # unclassified data, every cell's lowest point; a DSM keeps the highest point.
        if surface == "dtm":
            self._sum: Float64Array | None = np.zeros(cells)
            # int64: np.add.at has a fast path only when the scalar needs no cast.
            self._count: npt.NDArray[np.int64] | None = np.zeros(cells, dtype=np.int64)
            self._lowest: Float64Array | None = np.full(cells, np.inf)
            self._highest: Float64Array | None = None
            self._water_sum: Float64Array | None = None
            self._water_count: npt.NDArray[np.int64] | None = None
        else:
            self._sum = self._count = self._lowest = None
            self._water_sum = self._water_count = None
            self._highest = np.full(cells, -np.inf)

    def add(
        self,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        z: npt.ArrayLike,
        classification: npt.ArrayLike | None,
    ) -> None:
        """Add one chunk of points (source CRS coordinates; classification ASPRS codes)."""
        xs = np.asarray(x, dtype=np.float64).reshape(-1)
        ys = np.asarray(y, dtype=np.float64).reshape(-1)
        zs = np.asarray(z, dtype=np.float64).reshape(-1)
        n = xs.size
        if ys.size != n or zs.size != n:
            raise InputError(f"point chunk has {n} x, {ys.size} y and {zs.size} z values")
        classes = None
        if classification is not None:
            classes = np.asarray(classification).reshape(-1)
            if classes.size != n:
                raise InputError(f"point chunk has {n} points but {classes.size} classes")
        xmin, ymin, xmax, ymax = self.bounds
        keep = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(zs)
        keep &= (xs >= xmin) & (xs <= xmax) & (ys >= ymin) & (ys <= ymax)
        if classes is not None:
            keep &= ~np.isin(classes, self._noise)
        if not keep.all():
            xs, ys, zs = xs[keep], ys[keep], zs[keep]
            classes = classes[keep] if classes is not None else None
        if xs.size == 0:
            return
        # Points on the max edge belong to the last cell.
        ix = np.minimum(((xs - self.x0) / self.cell).astype(np.int64), self.nx - 1)
        iy = np.minimum(((ys - self.y0) / self.cell).astype(np.int64), self.ny - 1)
        flat = iy * self.nx + ix
        self._points += int(xs.size)
        if self._highest is not None:
            np.maximum.at(self._highest, flat, zs)
            return
        assert self._lowest is not None and self._sum is not None and self._count is not None
        np.minimum.at(self._lowest, flat, zs)
        if classes is not None:
            ground = np.isin(classes, self.ground_classes)
            if ground.any():
                np.add.at(self._sum, flat[ground], zs[ground])
                np.add.at(self._count, flat[ground], 1)
                self._ground_points += int(ground.sum())
            water = np.isin(classes, self.water_classes)
            if water.any():
                if self._water_sum is None:
                    self._water_sum = np.zeros(self._sum.size)
                    self._water_count = np.zeros(self._sum.size, dtype=np.int64)
                assert self._water_count is not None
                np.add.at(self._water_sum, flat[water], zs[water])
                np.add.at(self._water_count, flat[water], 1)

    def finish(self) -> TerrainGrid:
        """The gap-filled grid (the builder can keep adding and finish again)."""
        shape = (self.ny, self.nx)
        ground_filter = ""
        water = None
        if self._highest is not None:
            heights = np.where(np.isfinite(self._highest), self._highest, np.nan)
            used = self._points
        elif self._ground_points > 0:
            assert self._sum is not None and self._count is not None
            with np.errstate(invalid="ignore", divide="ignore"):
                heights = np.where(self._count > 0, self._sum / self._count, np.nan)
            used = self._ground_points
            ground_filter = "classes " + ",".join(str(int(c)) for c in self.ground_classes)
            if self._water_sum is not None:
                assert self._water_count is not None
                water = (self._count == 0) & (self._water_count > 0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    heights = np.where(water, self._water_sum / self._water_count, heights)
                used += int(self._water_count[water].sum())
                water = _spread_water(water.reshape(shape), (self._count > 0).reshape(shape))
        else:
            assert self._lowest is not None
            lowest = np.where(np.isfinite(self._lowest), self._lowest, np.nan).reshape(shape)
            if self._points:
                logger.info(
                    "no ground-class points (%s) among %d points: DTM from the lowest-point "
                    "filter", ",".join(str(int(c)) for c in self.ground_classes), self._points
                )
            ground = lowest_point_ground(lowest, self.cell)
            heights = np.where(ground, lowest, np.nan)
            used = self._points
            ground_filter = "lowest-point filter (PMF)"
        heights = heights.reshape(shape)
        known = np.isfinite(heights)
        if not known.any():
            what = "ground " if self.surface == "dtm" else ""
            raise GeometryError(
                f"no {what}points inside {self.bounds!r} ({self._points} points added): "
                "check the bounds and the CRS of the point cloud"
            )
        return TerrainGrid(
            x0=self.x0,
            y0=self.y0,
            cell=self.cell,
            heights=fill_gaps(heights, known),
            filled=~known,
            surface=self.surface,
            source_points=used,
            ground_filter=ground_filter,
            water=water,
        )


def _spread_water(water: BoolArray, ground: BoolArray) -> BoolArray:
    """Water cells plus the empty cells whose nearest cell with points is water: sparse
    returns leave holes in a river that would otherwise be drawn as land."""
    empty = ~(water | ground)
    if not empty.any() or not water.any():
        return water
    _, (rows, columns) = ndimage.distance_transform_edt(empty, return_indices=True)
    return water | (empty & water[rows, columns])


def lowest_point_ground(lowest: Float64Array, cell: float) -> BoolArray:
    """Cells whose lowest point is ground, by a progressive morphological filter.

    ``lowest`` is the per-cell lowest point (NaN where a cell has none). Windows grow as
    3, 5, 9, 17, 33, ... cells up to ``TerrainDefaults.pmf_max_window`` metres; the allowed
    height above the opened surface grows with the window by the terrain slope, from
    ``pmf_initial_distance`` up to ``pmf_max_distance`` (Zhang et al. 2003, as PDAL).
    """
    known = np.isfinite(lowest)
    if not known.any():
        return known
    # Morphology needs a value everywhere: empty cells borrow their nearest neighbour's
    # (they stay non-ground; they are filled later like every gap).
    surface = _nearest_fill(lowest, known)
    ground = known.copy()
    previous = 1
    k = 0
    while True:
        window = 2 * 2**k + 1
        if k > 0 and window * cell > TERRAIN.pmf_max_window:
            break
        if k == 0:
            threshold = TERRAIN.pmf_initial_distance
        else:
            threshold = min(
                TERRAIN.pmf_initial_distance + TERRAIN.pmf_slope * (window - previous) * cell,
                TERRAIN.pmf_max_distance,
            )
        surface = ndimage.grey_opening(surface, size=(window, window), mode="nearest")
        with np.errstate(invalid="ignore"):
            ground &= (lowest - surface) <= threshold
        previous = window
        k += 1
    return ground


def fill_gaps(
    heights: Float64Array, known: BoolArray, *, sweeps: int = TERRAIN.fill_sweeps
) -> Float64Array:
    """Heights with every unknown cell interpolated from the known ones (Laplace fill).

    Cascadic multigrid: the known cells are averaged into ever coarser grids until every
    coarse cell has a value; going back down, each level starts from the upsampled coarser
    solution and relaxes its unknown cells towards the harmonic interpolant (red-black
    Gauss-Seidel, zero-gradient at the grid border). The result is smooth, stays within the
    range of the known heights around a gap (maximum principle) and is deterministic.
    """
    heights = np.asarray(heights, dtype=np.float64)
    known = np.asarray(known, dtype=np.bool_)
    if heights.shape != known.shape or heights.ndim != 2:
        raise ValueError(f"heights {heights.shape} and known {known.shape} must be one 2D shape")
    if not known.any():
        raise GeometryError("cannot fill a terrain grid without a single known height")
    if known.all():
        return heights.copy()
    return _fill_level(np.where(known, heights, 0.0), known, sweeps)


def _fill_level(heights: Float64Array, known: BoolArray, sweeps: int) -> Float64Array:
    if known.all():
        return heights
    ny, nx = heights.shape
    pad = ((0, ny % 2), (0, nx % 2))
    total = np.pad(np.where(known, heights, 0.0), pad)
    count = np.pad(known, pad).astype(np.int64)
    cy, cx = total.shape[0] // 2, total.shape[1] // 2
    total = total.reshape(cy, 2, cx, 2).sum(axis=(1, 3))
    count = count.reshape(cy, 2, cx, 2).sum(axis=(1, 3))
    coarse_known = count > 0
    coarse = _fill_level(
        np.where(coarse_known, total / np.maximum(count, 1), 0.0), coarse_known, sweeps
    )
    # Cell-centred linear upsampling: fine cell centres sit at (i + 0.5) / 2 - 0.5 in coarse
    # index space.
    guess = _upsample(coarse, ny, nx)
    out = np.where(known, heights, guess).reshape(-1)
    # Relax only the unknown cells (work in proportion to the gaps, not the grid), each the
    # mean of its four neighbours; a neighbour beyond the grid border is the cell itself.
    r, c = np.divmod(np.flatnonzero(~known.reshape(-1)), nx)
    colours = []
    for parity in (0, 1):
        sel = (r + c) % 2 == parity
        rs, cs = r[sel], c[sel]
        colours.append(
            (
                rs * nx + cs,
                np.minimum(rs + 1, ny - 1) * nx + cs,
                np.maximum(rs - 1, 0) * nx + cs,
                rs * nx + np.minimum(cs + 1, nx - 1),
                rs * nx + np.maximum(cs - 1, 0),
            )
        )
    for _ in range(sweeps):
        for cell, north, south, east, west in colours:
            out[cell] = (out[north] + out[south] + out[east] + out[west]) * 0.25
    return out.reshape(ny, nx)


def _upsample(coarse: Float64Array, ny: int, nx: int) -> Float64Array:
    """Linear interpolation of a half-resolution cell-centred grid at the fine cell centres."""

    def axis(n_fine: int, n_coarse: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                                  Float64Array]:
        t = np.clip((np.arange(n_fine) + 0.5) / 2.0 - 0.5, 0.0, n_coarse - 1)
        lo = np.floor(t).astype(np.int64)
        hi = np.minimum(lo + 1, n_coarse - 1)
        return lo, hi, t - lo

    r_lo, r_hi, fr = axis(ny, coarse.shape[0])
    c_lo, c_hi, fc = axis(nx, coarse.shape[1])
    top = coarse[r_lo][:, c_lo] * (1 - fc) + coarse[r_lo][:, c_hi] * fc
    bottom = coarse[r_hi][:, c_lo] * (1 - fc) + coarse[r_hi][:, c_hi] * fc
    return np.asarray(top * (1 - fr[:, None]) + bottom * fr[:, None], dtype=np.float64)


def _nearest_fill(values: Float64Array, known: BoolArray) -> Float64Array:
    """Every unknown cell takes the value of its nearest known cell."""
    if known.all():
        return values.copy()
    index = ndimage.distance_transform_edt(~known, return_distances=False, return_indices=True)
    return np.asarray(values[tuple(index)], dtype=np.float64)
