"""The orchestration layer: the only code that wires readers → model → ops → tiling → writers.

One module per source kind; tools and the server call these functions and nothing below.
"""

from twin.pipeline.citygml import BuildReport, CityGMLOptions, build_citygml
from twin.pipeline.common import LocalFrame, Progress

__all__ = ["BuildReport", "CityGMLOptions", "LocalFrame", "Progress", "build_citygml"]
