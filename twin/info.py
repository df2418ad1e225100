"""What is in a source file: format, version, CRS, counts and bounds (``twin info``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from twin.crs import parse_srs_name
from twin.errors import CRSError, FormatError
from twin.readers.citygml import CityGMLReader


def sniff_format(path: Path) -> str:
    """"citygml", "las" or "laz" by content (not by file name)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"LASF"):
        return "laz" if path.suffix.lower() == ".laz" else "las"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return "citygml"
    if not head:
        raise FormatError(f"{path}: file is empty")
    raise FormatError(f"{path}: neither CityGML (XML) nor LAS/LAZ: cannot read it")


def describe_citygml(path: Path) -> dict[str, Any]:
    """Read a CityGML file once and summarise it."""
    reader = CityGMLReader(path)
    header = reader.header
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    srs_names: set[str] = set()
    for obj in reader:
        if obj.srs_name:
            srs_names.add(obj.srs_name)
        for surface in obj.surfaces:
            lo = np.minimum(lo, surface.exterior.min(axis=0))
            hi = np.maximum(hi, surface.exterior.max(axis=0))
    srs = header.srs_name or (sorted(srs_names)[0] if srs_names else None)
    crs: dict[str, Any] = {"srsName": srs}
    if srs:
        try:
            source = parse_srs_name(srs)
            crs["horizontal"] = source.horizontal.to_string()
            crs["vertical"] = source.vertical.to_string() if source.vertical else None
        except CRSError as exc:
            crs["error"] = str(exc)
    report = reader.report
    return {
        "path": str(path),
        "format": "CityGML",
        "version": header.version,
        "crs": crs,
        "objects": dict(sorted(report.objects.items())),
        "lods": {f"lod{k}": v for k, v in sorted(report.lods.items())},
        "surfaces": report.surfaces,
        "degenerate_rings": report.degenerate_rings,
        "skipped_objects": report.skipped_objects,
        "bounds": None if not np.isfinite(lo).all() else [lo.tolist(), hi.tolist()],
        "warnings": report.warnings[:20],
    }


def describe(path: Path) -> dict[str, Any]:
    """Summarise any supported source file."""
    kind = sniff_format(path)
    if kind == "citygml":
        return describe_citygml(path)
    from twin.readers.las import describe_las

    return describe_las(path)
