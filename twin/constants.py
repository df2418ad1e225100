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


@dataclass(frozen=True, slots=True)
class TerrainDefaults:
    """Gridding, ground filtering, gap filling and tiling of terrain models from LiDAR."""

    cell: float = 1.0
    """Grid cell size (m) of the DTM/DSM."""
    ground_classes: tuple[int, ...] = (2,)
    """ASPRS classes that are ground in a DTM."""
    water_classes: tuple[int, ...] = (9,)
    """ASPRS water: the surface where a cell has no ground point (rivers, the harbour)."""
    noise_classes: tuple[int, ...] = (7, 18)
    """ASPRS low and high noise: never part of any surface (a single low-noise point would
    punch a pit into a lowest-point DTM)."""
    max_grid_cells: int = 100_000_000
    """Largest grid one builder holds (100 km² at 1 m, about 2 GB of accumulators)."""
    pmf_initial_distance: float = 0.15
    """Progressive morphological filter (Zhang et al. 2003; PDAL filters.pmf defaults), used
    for DTMs of data without ground classes: height (m) above the opened surface that still
    counts as ground in the smallest window..."""
    pmf_max_distance: float = 2.5
    """...the largest such height (m)..."""
    pmf_slope: float = 1.0
    """...terrain slope (m/m) that raises the allowed height as windows grow..."""
    pmf_max_window: float = 33.0
    """...and the largest window (m): objects wider than this in both directions (large halls)
    stay in the DTM of unclassified data."""
    fill_sweeps: int = 24
    """Red-black Gauss-Seidel sweeps per pyramid level when gaps are filled by Laplace
    interpolation (more sweeps: closer to the exact harmonic fill)."""
    leaf_cells: int = 128
    """Cells along a leaf tile's side: (128 + 1)² vertices keep 16-bit indices and ~0.7 MB GLBs."""
    min_skirt_depth: float = 0.5
    """Skirts hang at least this far (m) below a tile's interior edges."""
    skirt_error_factor: float = 4.0
    """Skirt depth = this times the largest geometric error one level up: neighbours up to a
    few levels coarser leave no visible gap (Cesium's own heightmap terrain uses a similar
    multiple of the level's error)."""
    water_max_height: float = 0.5
    """Gap-filled cells at or below this height (m, source vertical datum; DHHN2016 ≈ mean sea
    level in Rostock) are drawn as water: airborne LiDAR has no returns on water."""
    water_min_area: float = 100.0
    """...and belong to a gap of at least this area (m²): single empty cells in low-lying land
    (sparse returns) stay terrain-coloured."""
    water_color: tuple[int, int, int] = (104, 140, 168)
    """sRGB of water cells: a muted blue that reads as water without shouting."""


TERRAIN = TerrainDefaults()


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
