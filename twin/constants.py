"""Tolerances and limits in one place, not as magic numbers through the code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Geometric tolerances, in metres unless named otherwise."""

    min_polygon_area: float = 1e-6
    """Polygons with less area (m²) are degenerate."""
    min_relative_area: float = 1e-9
    """...or with less area than this fraction of their extent squared (collinear rings)."""
    weld_distance: float = 1e-3
    """Vertices closer than this are one point when checking whether a shell is closed."""
    containment: float = 1e-3
    """Slack allowed when checking that bounding volumes contain geometry."""


@dataclass(frozen=True, slots=True)
class TilingDefaults:
    """Defaults of the spatial tree and level of detail."""

    max_features_per_tile: int = 400
    max_bytes_per_tile: int = 2_000_000
    """Leaves split further when their estimated GLB size exceeds this."""
    max_parent_features: int = 400
    """Parent tiles hold at most this many simplified buildings (the largest ones)."""
    max_depth: int = 16


TOLERANCES = Tolerances()
TILING = TilingDefaults()


# Default surface colours by semantic kind, as sRGB bytes (the way a designer picks them).
# glTF COLOR_0 is linear, so writers convert with ``srgb_to_linear`` before storing.
SURFACE_COLORS: dict[str, tuple[int, int, int]] = {
    "roof": (178, 76, 60),
    "wall": (238, 233, 222),
    "ground": (128, 128, 128),
    "closure": (205, 205, 205),
    "floor": (200, 195, 185),
    "ceiling": (220, 220, 215),
    "outer_floor": (200, 195, 185),
    "outer_ceiling": (220, 220, 215),
    "interior_wall": (225, 220, 210),
    "door": (120, 90, 60),
    "window": (120, 160, 190),
    "terrain": (150, 168, 112),
    "other": (214, 212, 206),
}
