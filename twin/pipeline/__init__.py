"""The orchestration layer: the only code that wires readers → model → ops → tiling → writers.

One module per source kind; tools and the server call these functions and nothing below.
"""

from twin.pipeline.citygml import BuildReport, CityGMLOptions, build_citygml
from twin.pipeline.common import LocalFrame, Progress
from twin.pipeline.lidar import LidarBuildReport, LidarOptions, build_lidar

__all__ = [
    "BuildReport",
    "CityGMLOptions",
    "LidarBuildReport",
    "LidarOptions",
    "LocalFrame",
    "Progress",
    "build_citygml",
    "build_lidar",
]
