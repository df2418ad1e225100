"""LAS/LAZ/COPC reader: the only module that imports laspy.

LAS 1.0-1.4, point formats 0-10, LAZ through the lazrs backend, COPC read as plain LAZ (its
octree is not needed: the tiler builds its own), extra bytes ignored but listed. Points are
streamed in chunks (``LasSource.chunks``), never the whole file; a ``LasSource`` covers a range
of points so that worker processes can decode parts of one file in parallel (LAZ seeks through
its chunk table).

The header is checked before any point is read, so that a broken file fails at once with a
message that names the file, the place and the way out: signature, version, point format,
scales and offsets (finite, non-zero), bounds, and whether the file can hold the points the
header announces (LAS: byte count; LAZ: the chunk table must lie inside the file). A LAZ
stream that ends early is reported with the point index where decoding failed.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import laspy
import numpy as np
import numpy.typing as npt
import pyproj
from laspy import DecompressionSelection, LazBackend
from laspy.errors import LaspyException
from pyproj.crs import CompoundCRS
from pyproj.exceptions import CRSError as PyprojCRSError

from twin.errors import FormatError
from twin.model.points import PointChunk, PointCloudHeader

__all__ = ["LasSource", "describe_las", "read_header", "sample_rgb_max"]

log = logging.getLogger(__name__)

_HEADER_MIN_BYTES = 227
"""A LAS 1.0-1.2 public header block; anything shorter is not a LAS file."""
_SUPPORTED_MINOR_VERSIONS = range(0, 5)
_LAZ_CHUNK_TABLE_POINTER_BYTES = 8
"""LAZ point data start with the int64 offset of the chunk table."""

# GeoTIFF keys (OGC 19-008r4) read here; laspy reads only the horizontal ones.
_GEO_KEY_GEOGRAPHIC = 2048
_GEO_KEY_PROJECTED = 3072
_GEO_KEY_VERTICAL = 4096
_GEO_KEY_USER_DEFINED = 32767
_EPSG_CODE_RANGE = range(1024, 32767)

_CRS_HINT = "pass --crs (e.g. --crs EPSG:25833+7837)"

# LAZ 1.4 (point formats 6-10) compresses fields in layers; decoding only the layers a
# PointChunk holds (not GPS time, scan angle, user data, point source, NIR, waveforms) is about
# 30 % faster. Other formats ignore the selection; skipped fields would read as zeros.
_DECODED_LAYERS = (
    DecompressionSelection.XY_RETURNS_CHANNEL
    | DecompressionSelection.Z
    | DecompressionSelection.CLASSIFICATION
    | DecompressionSelection.INTENSITY
    | DecompressionSelection.RGB
)


@dataclass(frozen=True, slots=True)
class LasSource:
    """Points ``start``..``stop`` (exclusive) of one LAS/LAZ/COPC file; picklable."""

    path: Path
    start: int
    stop: int

    def chunks(self, points_per_chunk: int) -> Iterator[PointChunk]:
        """Decode the range in file order, ``points_per_chunk`` points at a time."""
        # One decoding thread per process: the pipeline runs one reader per core already.
        try:
            reader = laspy.open(
                self.path, laz_backend=LazBackend.Lazrs, decompression_selection=_DECODED_LAYERS
            )
        except (LaspyException, OSError, ValueError) as exc:
            raise FormatError(f"{self.path}: cannot open as LAS/LAZ ({exc})") from None
        with reader:
            header = reader.header
            fmt = header.point_format.id
            position = self.start
            try:
                if self.start and _laz_chunk_points(header) >= 0:
                    reader.seek(self.start)
                elif self.start:
                    # Variable-sized LAZ chunks (COPC): lazrs' seek lands on the wrong point
                    # (laspy 2.7 / lazrs 0.8), so decode and drop the points before ``start``.
                    skipped = 0
                    while skipped < self.start:
                        skipped += len(reader.read_points(min(points_per_chunk,
                                                              self.start - skipped)))
                while position < self.stop:
                    wanted = min(points_per_chunk, self.stop - position)
                    record = reader.read_points(wanted)
                    if len(record) < wanted:
                        raise _truncated(self.path, header, position + len(record))
                    yield _chunk(record.array, fmt, header, position)
                    position += wanted
            except FormatError:
                raise
            except (LaspyException, RuntimeError, ValueError, OSError) as exc:
                # lazrs raises LazrsError (a RuntimeError) on a damaged or cut LAZ stream.
                raise FormatError(
                    f"{self.path}: cannot decode points from index {position} "
                    f"(LAZ chunk of up to {points_per_chunk} points): {exc}; the file is "
                    "damaged or truncated"
                ) from None


def read_header(path: Path) -> PointCloudHeader:
    """The checked header of a LAS/LAZ/COPC file (FormatError if it cannot be used)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(_HEADER_MIN_BYTES)
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(head) < 4 or head[:4] != b"LASF":
        signature = head[:4].decode("latin-1", "replace")
        raise FormatError(f"Invalid file signature {signature!r} in {path}: not a LAS/LAZ file")
    if len(head) < _HEADER_MIN_BYTES:
        raise FormatError(
            f"{path}: only {size} bytes, shorter than a LAS header ({_HEADER_MIN_BYTES}): "
            "the file is truncated"
        )
    major, minor = head[24], head[25]
    if major != 1 or minor not in _SUPPORTED_MINOR_VERSIONS:
        raise FormatError(f"{path}: LAS version {major}.{minor} is not supported (1.0-1.4 are)")
    try:
        with laspy.open(path, laz_backend=LazBackend.Lazrs) as reader:
            header = reader.header
            evlrs = reader.evlrs
            crs_wkt, crs_name, crs_record, crs_problem = _crs(header, evlrs)
    except (LaspyException, OSError, ValueError, RuntimeError, struct.error) as exc:
        raise FormatError(f"{path}: cannot read the LAS header ({exc})") from None
    scales = tuple(float(v) for v in header.scales)
    offsets = tuple(float(v) for v in header.offsets)
    mins = tuple(float(v) for v in header.mins)
    maxs = tuple(float(v) for v in header.maxs)
    for axis, scale, offset in zip("xyz", scales, offsets, strict=True):
        if not math.isfinite(scale) or scale == 0.0:
            raise FormatError(
                f"{path}: header {axis} scale factor is {scale!r}: coordinates cannot be "
                "decoded; fix the header (e.g. rewrite the file with PDAL or LAStools)"
            )
        if not math.isfinite(offset):
            raise FormatError(
                f"{path}: header {axis} offset is {offset!r}: coordinates cannot be decoded; "
                "fix the header"
            )
    count = int(header.point_count)
    if count > 0:
        for axis, lo, hi in zip("xyz", mins, maxs, strict=True):
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
                raise FormatError(
                    f"{path}: header {axis} bounds [{lo!r}, {hi!r}] are not a valid range: "
                    "repair the header (e.g. lasinfo -repair_bb, pdal translate)"
                )
    compressed = bool(header.are_points_compressed)
    _check_size(path, header, size, count, compressed)
    fmt = header.point_format
    record_names = set(fmt.dimension_names)
    is_copc = any(type(v).__name__ == "CopcInfoVlr" for v in header.vlrs)
    return PointCloudHeader(
        path=path,
        format="COPC" if is_copc else ("LAZ" if compressed else "LAS"),
        version=f"{header.version.major}.{header.version.minor}",
        point_format=int(fmt.id),
        point_count=count,
        scales=(scales[0], scales[1], scales[2]),
        offsets=(offsets[0], offsets[1], offsets[2]),
        mins=(mins[0], mins[1], mins[2]),
        maxs=(maxs[0], maxs[1], maxs[2]),
        has_rgb={"red", "green", "blue"} <= record_names,
        extra_dimensions=tuple(d.name for d in fmt.extra_dimensions),
        crs_wkt=crs_wkt,
        crs_name=crs_name,
        crs_record=crs_record,
        crs_problem=crs_problem,
        file_size=size,
        laz_chunk_points=_laz_chunk_points(header) if compressed else 0,
        generating_software=str(header.generating_software or "").strip("\0 "),
        system_identifier=str(header.system_identifier or "").strip("\0 "),
    )


def sample_rgb_max(header: PointCloudHeader, samples: int = 3, points: int = 20_000) -> int:
    """Largest R, G or B value in a few blocks spread over the file (0 without RGB).

    Many writers store 8-bit colours in the 16-bit fields; a maximum of at most 255 over
    samples from the start, middle and end of the file identifies them without decoding it all.
    """
    if not header.has_rgb or header.point_count == 0:
        return 0
    count = header.point_count
    starts = sorted({int(round(i * max(count - points, 0) / max(samples - 1, 1))) for i in
                     range(samples)})
    largest = 0
    for start in starts:
        source = LasSource(header.path, start, min(count, start + points))
        for chunk in source.chunks(points):
            if chunk.rgb is not None and len(chunk):
                largest = max(largest, int(chunk.rgb.max()))
    return largest


def describe_las(path: Path) -> dict[str, Any]:
    """Format, version, CRS, counts and bounds of a LAS/LAZ/COPC file (for ``twin info``);
    reads the header only."""
    header = read_header(Path(path))
    crs: dict[str, Any] = {"record": header.crs_record or None, "name": header.crs_name or None}
    if header.crs_wkt:
        crs["wkt"] = header.crs_wkt
    if header.crs_problem:
        crs["error"] = header.crs_problem
    if not header.crs_wkt and not header.crs_problem:
        crs["error"] = f"the file declares no CRS: {_CRS_HINT}"
    return {
        "path": str(header.path),
        "format": header.format,
        "version": header.version,
        "point_format": header.point_format,
        "points": header.point_count,
        "rgb": header.has_rgb,
        "extra_dimensions": list(header.extra_dimensions),
        "scales": list(header.scales),
        "offsets": list(header.offsets),
        "bounds": [list(header.mins), list(header.maxs)] if header.point_count else None,
        "crs": crs,
        "generating_software": header.generating_software,
        "system_identifier": header.system_identifier,
        "file_size": header.file_size,
    }


# --- internals -------------------------------------------------------------------------------


def _check_size(path: Path, header: Any, size: int, count: int, compressed: bool) -> None:
    """FormatError if the file cannot hold the points its header announces."""
    start = int(header.offset_to_point_data)
    if start > size:
        raise FormatError(
            f"{path}: point data start at byte {start} but the file has only {size} bytes: "
            "the file is truncated"
        )
    if compressed:
        if count == 0:
            return
        with open(path, "rb") as f:
            f.seek(start)
            raw = f.read(_LAZ_CHUNK_TABLE_POINTER_BYTES)
        if len(raw) < _LAZ_CHUNK_TABLE_POINTER_BYTES:
            raise FormatError(f"{path}: LAZ point data cut off at byte {size}: truncated file")
        (table,) = struct.unpack("<q", raw)
        # -1 means a streaming writer never came back to write the table; lazrs then decodes
        # sequentially and a short stream fails with the point index (LasSource.chunks).
        if table != -1 and not start < table <= size - 8:
            raise FormatError(
                f"{path}: the LAZ chunk table should be at byte {table} but the file has only "
                f"{size} bytes: the file is truncated (header claims {count} points)"
            )
        return
    record = int(header.point_format.size)
    end = start + count * record
    limit = size
    evlr_start = int(getattr(header, "start_of_first_evlr", 0) or 0)
    if evlr_start and getattr(header, "number_of_evlrs", 0):
        limit = min(limit, evlr_start)
    if end > limit:
        held = max(0, (limit - start) // record)
        raise FormatError(
            f"{path}: header claims {count} points ({record} bytes each from byte {start}, "
            f"up to byte {end}) but the file holds only {held} (it ends at byte {limit}): "
            "the file is truncated or its header is wrong"
        )


def _laz_chunk_points(header: Any) -> int:
    """Points per chunk of a LAZ file (its laszip VLR), -1 if chunks vary in size, 0 if
    the file is not compressed."""
    if not header.are_points_compressed:
        return 0
    for vlr in header.vlrs:
        if type(vlr).__name__ == "LasZipVlr":
            data = vlr.record_data_bytes()
            if len(data) >= 16:
                (chunk,) = struct.unpack_from("<I", data, 12)
                return -1 if chunk == 0xFFFFFFFF else int(chunk)
    return -1


def _truncated(path: Path, header: Any, index: int) -> FormatError:
    return FormatError(
        f"{path}: the point data end after {index} of {header.point_count} points the header "
        "claims: the file is truncated or its header is wrong"
    )


def _chunk(raw: npt.NDArray[Any], fmt: int, header: Any, start: int) -> PointChunk:
    """A PointChunk from laspy's raw record array (scale and offset applied here)."""
    sx, sy, sz = (float(v) for v in header.scales)
    ox, oy, oz = (float(v) for v in header.offsets)
    x = raw["X"] * sx
    x += ox
    y = raw["Y"] * sy
    y += oy
    z = raw["Z"] * sz
    z += oz
    bits = raw["bit_fields"]
    if fmt >= 6:
        classification = np.ascontiguousarray(raw["classification"])
        return_number = bits & 0x0F
        number_of_returns = bits >> 4
    else:
        # Formats 0-5 keep the class in the low 5 bits (synthetic/key-point/withheld above).
        classification = raw["raw_classification"] & 0x1F
        return_number = bits & 0x07
        number_of_returns = (bits >> 3) & 0x07
    names = raw.dtype.names or ()
    rgb = None
    if "red" in names:
        rgb = np.empty((raw.shape[0], 3), dtype=np.uint16)
        rgb[:, 0] = raw["red"]
        rgb[:, 1] = raw["green"]
        rgb[:, 2] = raw["blue"]
    return PointChunk(
        x=x,
        y=y,
        z=z,
        classification=classification.astype(np.uint8, copy=False),
        intensity=np.ascontiguousarray(raw["intensity"]).astype(np.uint16, copy=False),
        rgb=rgb,
        return_number=return_number.astype(np.uint8, copy=False),
        number_of_returns=number_of_returns.astype(np.uint8, copy=False),
        start=start,
    )


def _crs(header: Any, evlrs: Any) -> tuple[str | None, str, str, str]:
    """(WKT, name, record kind, problem) of the CRS a file declares; WKT VLRs win."""
    records = list(header.vlrs.get_by_id("LASF_Projection"))
    if evlrs is not None:
        records.extend(evlrs.get_by_id("LASF_Projection"))
    problems: list[str] = []
    for record in records:
        if type(record).__name__ != "WktCoordinateSystemVlr":
            continue
        text = (getattr(record, "string", "") or "").strip("\0 \n")
        if not text:
            continue
        try:
            crs = pyproj.CRS.from_wkt(text)
        except PyprojCRSError as exc:
            problems.append(f"its WKT CRS record cannot be read ({str(exc).splitlines()[0]})")
            continue
        return crs.to_wkt(), str(crs.name), "WKT", ""
    keys = _geo_keys(records)
    if keys:
        crs_or_problem = _crs_from_geo_keys(keys)
        if isinstance(crs_or_problem, pyproj.CRS):
            return crs_or_problem.to_wkt(), str(crs_or_problem.name), "GeoTIFF", ""
        problems.append(crs_or_problem)
    return None, "", "", "; ".join(problems)


def _geo_keys(records: list[Any]) -> dict[int, int]:
    """GeoKey id -> value of the short-valued keys of the GeoKeyDirectory record, if any."""
    for record in records:
        if type(record).__name__ == "GeoKeyDirectoryVlr":
            return {int(k.id): int(k.value_offset) for k in record.geo_keys if k.count <= 1}
    return {}


def _crs_from_geo_keys(keys: dict[int, int]) -> pyproj.CRS | str:
    """The (compound) CRS of GeoTIFF keys, or why it cannot be used."""
    horizontal_code = keys.get(_GEO_KEY_PROJECTED) or keys.get(_GEO_KEY_GEOGRAPHIC)
    if horizontal_code is None:
        return "its GeoTIFF keys name no projected or geographic CRS"
    if horizontal_code == _GEO_KEY_USER_DEFINED:
        return "its GeoTIFF keys describe a user-defined CRS (no EPSG code)"
    if horizontal_code not in _EPSG_CODE_RANGE:
        return f"its GeoTIFF keys name CRS code {horizontal_code}, not an EPSG code"
    try:
        horizontal = pyproj.CRS.from_epsg(horizontal_code)
    except PyprojCRSError:
        return f"its GeoTIFF keys name EPSG:{horizontal_code}, which PROJ does not know"
    vertical_code = keys.get(_GEO_KEY_VERTICAL)
    if vertical_code is None or vertical_code not in _EPSG_CODE_RANGE:
        return horizontal
    try:
        vertical = pyproj.CRS.from_epsg(vertical_code)
    except PyprojCRSError:
        return horizontal
    return CompoundCRS(f"{horizontal.name} + {vertical.name}", [horizontal, vertical])

