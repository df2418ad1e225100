"""Reading ``heights.npz`` (see twin/writers/heights.py)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from twin.errors import FormatError
from twin.model.heights import HeightGrid

__all__ = ["read_heights"]


def read_heights(path: Path) -> HeightGrid:
    """The height grid in ``path``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            heights = np.asarray(data["heights"], dtype=np.float32)
            grid = HeightGrid(
                float(data["x0"]), float(data["y0"]), float(data["cell"]), heights,
                str(data["crs"]),
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise FormatError(f"{path}: not a terrain height grid ({exc}): rebuild the scene") from None
    if heights.ndim != 2 or not np.isfinite(heights).all() or not grid.cell > 0:
        raise FormatError(f"{path}: the height grid is malformed: rebuild the scene")
    return grid
