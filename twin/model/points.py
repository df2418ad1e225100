"""Plain data of point clouds: what a reader knows about a file, and blocks of its points.

Coordinates stay in the source CRS as written in the file (LAS: easting/longitude first);
placement is the pipeline's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
UInt8Array = npt.NDArray[np.uint8]
UInt16Array = npt.NDArray[np.uint16]


@dataclass(slots=True)
class PointChunk:
    """A block of consecutive points of one file, in the file's CRS and units."""

    x: FloatArray
    y: FloatArray
    z: FloatArray
    classification: UInt8Array
    """ASPRS class (0..255; formats 0-5 hold 0..31)."""
    intensity: UInt16Array
    rgb: UInt16Array | None
    """(n, 3) as stored (16-bit by the spec; many writers store 8-bit values), or None."""
    return_number: UInt8Array
    number_of_returns: UInt8Array
    start: int = 0
    """Index of the first point of this chunk in its file."""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def select(self, mask: npt.NDArray[np.bool_]) -> PointChunk:
        """The points where ``mask`` is true."""
        return PointChunk(
            self.x[mask],
            self.y[mask],
            self.z[mask],
            self.classification[mask],
            self.intensity[mask],
            None if self.rgb is None else self.rgb[mask],
            self.return_number[mask],
            self.number_of_returns[mask],
            self.start,
        )


@dataclass(frozen=True, slots=True)
class PointCloudHeader:
    """What a point cloud file says about itself before any point is read."""

    path: Path
    format: str
    """"LAS", "LAZ" or "COPC"."""
    version: str
    """LAS version, e.g. "1.4"."""
    point_format: int
    point_count: int
    scales: tuple[float, float, float]
    offsets: tuple[float, float, float]
    mins: tuple[float, float, float]
    maxs: tuple[float, float, float]
    has_rgb: bool
    extra_dimensions: tuple[str, ...] = ()
    crs_wkt: str | None = None
    """The CRS as WKT (from the WKT VLR, else the GeoTIFF keys), None if the file has none."""
    crs_name: str = ""
    crs_record: str = ""
    """Which record the CRS came from: "WKT", "GeoTIFF" or ""."""
    crs_problem: str = ""
    """Why CRS records that are present could not be read ("" if none or fine)."""
    file_size: int = 0
    laz_chunk_points: int = 0
    """Points per LAZ chunk; 0 for LAS, -1 for variable-sized chunks (COPC)."""
    generating_software: str = ""
    system_identifier: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def seekable(self) -> bool:
        """True if a reader can start at any point (LAS, LAZ with fixed-size chunks)."""
        return self.laz_chunk_points >= 0


class PointSource(Protocol):
    """A picklable handle on a range of points of one file (a reader's work order)."""

    path: Path
    start: int
    stop: int

    def chunks(self, points_per_chunk: int) -> Iterator[PointChunk]:
        """The points of the range in file order, at most ``points_per_chunk`` at a time."""
        ...
