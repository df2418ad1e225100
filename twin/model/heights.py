"""A terrain height grid as published beside a scene's terrain tiles (``heights.npz``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["HeightGrid"]


@dataclass(frozen=True, slots=True)
class HeightGrid:
    """Heights on a regular grid: cell (row j, column i) has its centre at
    (x0 + (i + 0.5) * cell, y0 + (j + 0.5) * cell); rows run south to north."""

    x0: float
    y0: float
    cell: float
    heights: npt.NDArray[np.float32]
    """(ny, nx) heights in the source vertical datum (DHHN2016 for M-V data)."""
    crs: str
    """The horizontal CRS of x0/y0 (e.g. "EPSG:25833") and the vertical datum of heights."""

    def sample(self, x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Bilinear heights at (x, y); NaN outside the grid's cell centres' hull (clamped
        to the edge within half a cell)."""
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        ny, nx = self.heights.shape
        u = (xs - self.x0) / self.cell - 0.5
        v = (ys - self.y0) / self.cell - 0.5
        outside = (u < -0.5) | (u > nx - 0.5) | (v < -0.5) | (v > ny - 0.5)
        u = np.clip(u, 0.0, nx - 1.0)
        v = np.clip(v, 0.0, ny - 1.0)
        i0 = np.minimum(np.floor(u).astype(np.int64), max(nx - 2, 0))
        j0 = np.minimum(np.floor(v).astype(np.int64), max(ny - 2, 0))
        i1 = np.minimum(i0 + 1, nx - 1)
        j1 = np.minimum(j0 + 1, ny - 1)
        fu, fv = u - i0, v - j0
        h = self.heights.astype(np.float64)
        top = h[j1, i0] * (1 - fu) + h[j1, i1] * fu
        bottom = h[j0, i0] * (1 - fu) + h[j0, i1] * fu
        result = bottom * (1 - fv) + top * fv
        return np.where(outside, np.nan, result)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the grid's cells."""
        ny, nx = self.heights.shape
        return self.x0, self.y0, self.x0 + nx * self.cell, self.y0 + ny * self.cell
