"""What every pipeline shares: progress callbacks and the tileset's local frame."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin import GENERATOR
from twin.crs import EcefTransformer, ecef_to_enu_matrix, ecef_to_geodetic, geodetic_to_ecef

Progress = Callable[[int], None]
"""Called with the number of items (city objects, points, tiles) just finished."""


class LocalFrame:
    """The tileset's east-north-up frame, fixed at the first point placed (or given)."""

    def __init__(self, origin: npt.NDArray[np.float64] | None = None) -> None:
        self.origin: npt.NDArray[np.float64] | None = None
        self.to_enu: npt.NDArray[np.float64] | None = None
        if origin is not None:
            self.origin = np.asarray(origin, dtype=np.float64).reshape(3)
            self.to_enu = ecef_to_enu_matrix(self.origin)

    def to_local(self, transformer: EcefTransformer) -> Callable[[npt.NDArray[np.float64]], Any]:
        def convert(xyz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            ecef = transformer.to_ecef(xyz)
            if self.to_enu is None:
                # Centre the frame on the first feature, on the ellipsoid below it: the tile
                # transform then carries the large ECEF numbers and vertices stay small.
                lon, lat, _ = ecef_to_geodetic(ecef.mean(axis=0)[None, :])
                origin = np.asarray(geodetic_to_ecef(lon, lat, np.zeros(1))).reshape(3)
                self.origin = origin
                self.to_enu = ecef_to_enu_matrix(origin)
            m = self.to_enu
            return ecef @ m[:3, :3].T + m[:3, 3]

        return convert

    def origin_lon_lat_h(self) -> tuple[float, float, float]:
        """The frame origin as WGS84 longitude, latitude (degrees) and ellipsoidal height."""
        assert self.origin is not None
        lon, lat, h = ecef_to_geodetic(self.origin[None, :])
        return float(lon[0]), float(lat[0]), float(h[0])


def provenance(report: Any, attribution: str) -> dict[str, Any]:
    """The tileset metadata every build states: generator, CRS, vertical model and its
    expected error, sources, attribution (``report`` is a build report of either pipeline)."""
    return {
        "generator": GENERATOR,
        "source_crs": report.source_crs,
        "vertical_model": report.vertical_model,
        "vertical_error_m": report.vertical_error_m,
        "sources": [Path(p).name for p in report.inputs],
        "attribution": attribution,
    }


def box_diagonal(tile: dict[str, Any]) -> float:
    """Length of the diagonal of a tile's ``box`` bounding volume (axis-aligned half-axes)."""
    box = tile["boundingVolume"]["box"]
    return 2.0 * float(np.linalg.norm([box[3], box[7], box[11]]))


def write_tileset_json(directory: Path, document: Any) -> None:
    """tileset.json, indented a little so people can read it."""
    (directory / "tileset.json").write_text(
        json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
