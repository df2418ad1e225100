"""The orchestration layer: the only code that wires readers → model → ops → tiling → writers.

One module per source kind; tools and the server call these functions and nothing below.
Names are imported on first use, so that a command which needs one pipeline (or none) does
not pay for loading all of them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BuildReport": "twin.pipeline.citygml",
    "CityGMLOptions": "twin.pipeline.citygml",
    "build_citygml": "twin.pipeline.citygml",
    "LocalFrame": "twin.pipeline.common",
    "Progress": "twin.pipeline.common",
    "LidarBuildReport": "twin.pipeline.lidar",
    "LidarOptions": "twin.pipeline.lidar",
    "build_lidar": "twin.pipeline.lidar",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'twin.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
