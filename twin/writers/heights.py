"""``heights.npz``: a terrain height grid in numpy's zip format, byte-identical for the same
grid (numpy's own savez stamps the current time into the zip)."""

from __future__ import annotations

import io
import os
import uuid
import zipfile
from pathlib import Path

import numpy as np

from twin.model.heights import HeightGrid

__all__ = ["write_heights"]

_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_heights(path: Path, grid: HeightGrid) -> None:
    """Write ``grid`` to ``path`` atomically (arrays heights, x0, y0, cell, crs)."""
    arrays = {
        "heights": np.ascontiguousarray(grid.heights, dtype=np.float32),
        "x0": np.float64(grid.x0),
        "y0": np.float64(grid.y0),
        "cell": np.float64(grid.cell),
        "crs": np.str_(grid.crs),
    }
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())
    os.replace(tmp, path)
