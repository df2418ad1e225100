"""Overlay features (overlays.geojson) as render geometry: draped on the terrain or extruded.

Draped: ``clamp`` lines follow the terrain grid (densified to its cells, lifted a little so
they do not flicker into the ground), ``clamp`` polygons become the terrain cells they cover,
translucent, with their outline; ``absolute`` features keep their heights. Extruded: polygons
become translucent prisms and lines curtains from the terrain up to ``height`` metres above
it (``absolute`` features: up to their own heights). Points are pins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyvista as pv
import shapely
from scipy.ndimage import maximum_filter

from twin.crs import geodetic_to_ecef
from twin.model.heights import HeightGrid
from twin.ops.triangulate import triangulate_polygon
from twin.render.scene import PublishedScene
from twin.render.style import HIGHLIGHT_RGB, OVERLAY_STATUS_RGB

__all__ = ["OverlayGeometry", "overlay_geometry"]

DRAPE_LIFT = 0.4
"""Metres above the terrain for draped lines and areas."""
DRAPE_WINDOW = 9
"""Cells (a side) over which draping takes the highest terrain height (see ``_Placer``)."""
LINE_STEP = 2.0
"""Draped lines get a vertex at least every this many metres."""
MAX_DRAPE_CELLS = 250_000
"""A draped area uses coarser cells than the terrain grid beyond this many."""
PIN_HEIGHT = 12.0
PIN_RADIUS = 2.0
_DEFAULT_RGB = (120, 120, 120)


@dataclass(slots=True)
class _Builder:
    points: list[np.ndarray] = field(default_factory=list)
    rgb: list[np.ndarray] = field(default_factory=list)
    cells: list[np.ndarray] = field(default_factory=list)
    count: int = 0

    def polyline(self, points: np.ndarray, rgb: tuple[int, int, int]) -> None:
        """One polyline through ``points``."""
        indices = np.arange(len(points), dtype=np.int64) + self.count
        self._add(points, np.concatenate([[len(points)], indices]), rgb)

    def triangles(self, points: np.ndarray, triangles: np.ndarray,
                  rgb: tuple[int, int, int]) -> None:
        """Triangles (m, 3) indexing ``points``."""
        tris = np.asarray(triangles, dtype=np.int64).reshape(-1, 3) + self.count
        self._add(points, np.column_stack([np.full(len(tris), 3), tris]).ravel(), rgb)

    def _add(self, points: np.ndarray, cells: np.ndarray, rgb: tuple[int, int, int]) -> None:
        self.points.append(points)
        self.rgb.append(np.tile(np.asarray(rgb, dtype=np.uint8), (len(points), 1)))
        self.cells.append(cells)
        self.count += len(points)


@dataclass(slots=True)
class OverlayGeometry:
    """Render geometry of the overlays, in the scene's render frame."""

    lines: pv.PolyData | None
    surfaces: pv.PolyData | None
    pins: pv.PolyData | None
    statuses: list[str]
    """Statuses of the features drawn (for the legend), in first-seen order."""
    highlighted: bool


def _rings(geometry: dict[str, Any]) -> tuple[list[np.ndarray], list[list[np.ndarray]],
                                              list[np.ndarray]]:
    """(lines, polygons as [exterior, *holes], points) of a GeoJSON geometry, lon/lat/h."""
    kind = geometry.get("type")
    coords = geometry.get("coordinates")

    def array(values: Any) -> np.ndarray:
        a = np.asarray(values, dtype=np.float64)
        if a.ndim == 1:
            a = a[None, :]
        if a.shape[1] == 2:
            a = np.column_stack([a, np.zeros(len(a))])
        return a[:, :3]

    if kind == "LineString":
        return [array(coords)], [], []
    if kind == "MultiLineString":
        return [array(c) for c in coords], [], []
    if kind == "Polygon":
        return [], [[array(r) for r in coords]], []
    if kind == "MultiPolygon":
        return [], [[array(r) for r in p] for p in coords], []
    if kind == "Point":
        return [], [], [array(coords)]
    if kind == "MultiPoint":
        return [], [], [array(coords)]
    return [], [], []


class _Placer:
    """lon/lat/ellipsoidal h <-> EPSG:25833 + DHHN2016 <-> render frame, terrain heights.

    Draping uses the highest terrain height within ``DRAPE_WINDOW`` cells: the terrain tiles
    drawn from afar are coarser levels (every 2nd, 4th, 8th node), whose surface can lie above
    the full-resolution grid between their nodes; draped on the highest nearby height, lines
    and areas stay above every level up to the third.
    """

    def __init__(self, scene: PublishedScene) -> None:
        self.scene = scene
        grid = scene.heights
        if grid is not None:
            grid = HeightGrid(grid.x0, grid.y0, grid.cell,
                              maximum_filter(grid.heights, size=DRAPE_WINDOW, mode="nearest"),
                              grid.crs)
        self.grid = grid

    def to_grid_crs(self, lonlath: np.ndarray) -> np.ndarray:
        ecef = geodetic_to_ecef(lonlath[:, 0], lonlath[:, 1], lonlath[:, 2])
        return self.scene.transformer.from_ecef(ecef)

    def ground(self, e: np.ndarray, n: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        if self.grid is None:
            return fallback
        h = self.grid.sample(e, n)
        return np.where(np.isnan(h), fallback, h)


def _densify(enh: np.ndarray, step: float) -> np.ndarray:
    """Insert vertices so that no segment is longer than ``step`` (E/N distance)."""
    out = [enh[:1]]
    for a, b in zip(enh[:-1], enh[1:], strict=True):
        length = float(np.hypot(*(b[:2] - a[:2])))
        k = max(1, int(np.ceil(length / step)))
        t = np.linspace(0.0, 1.0, k + 1)[1:, None]
        out.append(a + (b - a) * t)
    return np.concatenate(out)


def _drape_area(placer: _Placer, rings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Terrain cells inside a polygon (E/N rings): vertices (E, N, H) and triangles."""
    grid = placer.grid
    assert grid is not None
    polygon = shapely.Polygon(rings[0][:, :2], [r[:, :2] for r in rings[1:]])
    if not polygon.is_valid or polygon.area <= 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    xmin, ymin, xmax, ymax = polygon.bounds
    cell = grid.cell
    while ((xmax - xmin) / cell) * ((ymax - ymin) / cell) > MAX_DRAPE_CELLS:
        cell *= 2.0
    x0 = grid.x0 + np.floor((xmin - grid.x0) / cell) * cell
    y0 = grid.y0 + np.floor((ymin - grid.y0) / cell) * cell
    nx = int(np.ceil((xmax - x0) / cell))
    ny = int(np.ceil((ymax - y0) / cell))
    xs = x0 + np.arange(nx + 1) * cell
    ys = y0 + np.arange(ny + 1) * cell
    gx, gy = np.meshgrid(xs, ys)
    centres_x = (gx[:-1, :-1] + cell / 2).ravel()
    centres_y = (gy[:-1, :-1] + cell / 2).ravel()
    inside = shapely.contains_xy(polygon, centres_x, centres_y)
    heights = placer.ground(gx.ravel(), gy.ravel(), np.zeros(gx.size))
    vertices = np.column_stack([gx.ravel(), gy.ravel(), heights])
    j, i = np.divmod(np.flatnonzero(inside), nx)
    a = j * (nx + 1) + i
    b, c, d = a + 1, a + nx + 2, a + nx + 1
    triangles = np.concatenate([np.column_stack([a, b, c]), np.column_stack([a, c, d])])
    used, compact = np.unique(triangles, return_inverse=True)
    return vertices[used], compact.reshape(-1, 3)


def overlay_geometry(
    scene: PublishedScene,
    mode: str = "draped",
    height: float = 20.0,
    highlight: tuple[str, ...] = (),
) -> OverlayGeometry:
    """The scene's overlays as lines, translucent surfaces and pins (see module docstring)."""
    placer = _Placer(scene)
    lines, surfaces, pins = _Builder(), _Builder(), _Builder()
    statuses: list[str] = []
    highlighted = False
    for feature in scene.overlays:
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict):
            continue
        properties = feature.get("properties") or {}
        fid = str(feature.get("id", properties.get("id", "")))
        status = str(properties.get("status", ""))
        if fid in highlight:
            rgb, highlighted = HIGHLIGHT_RGB, True
        else:
            rgb = OVERLAY_STATUS_RGB.get(status, _DEFAULT_RGB)
            if status in OVERLAY_STATUS_RGB and status not in statuses:
                statuses.append(status)
        absolute = properties.get("height_mode") == "absolute"
        line_parts, polygon_parts, point_parts = _rings(geometry)

        def place(enh: np.ndarray) -> np.ndarray:
            return scene.to_frame(enh)

        for coords in line_parts:
            enh = _densify(placer.to_grid_crs(coords), LINE_STEP)
            base = placer.ground(enh[:, 0], enh[:, 1], enh[:, 2])
            if not absolute:
                enh[:, 2] = base + DRAPE_LIFT
            if mode == "extruded":
                top = enh[:, 2] if absolute else base + height
                _curtain(surfaces, enh, base, top, rgb, place)
                enh = np.column_stack([enh[:, :2], top])
            lines.polyline(place(enh), rgb)
        for rings in polygon_parts:
            enh_rings = [placer.to_grid_crs(r) for r in rings]
            outline = [_densify(r, LINE_STEP) for r in enh_rings]
            for ring in outline:
                base = placer.ground(ring[:, 0], ring[:, 1], ring[:, 2])
                if mode == "extruded":
                    top = ring[:, 2] if absolute else base + height
                    _curtain(surfaces, ring, base, top, rgb, place)
                    ring = np.column_stack([ring[:, :2], top])
                elif not absolute:
                    ring = np.column_stack([ring[:, :2], base + DRAPE_LIFT])
                lines.polyline(place(ring), rgb)
            if mode == "extruded" or absolute or placer.grid is None:
                roof = [r.copy() for r in enh_rings]
                if mode == "extruded" and not absolute:
                    level = max(float(placer.ground(r[:, 0], r[:, 1], r[:, 2]).max())
                                for r in enh_rings) + height
                    for r in roof:
                        r[:, 2] = level
                triangulated = triangulate_polygon(roof[0], roof[1:])
                if triangulated is not None:
                    surfaces.triangles(place(triangulated.vertices), triangulated.triangles,
                                       rgb)
            else:
                vertices, triangles = _drape_area(placer, enh_rings)
                if len(triangles):
                    vertices[:, 2] += DRAPE_LIFT
                    surfaces.triangles(place(vertices), triangles, rgb)
        for coords in point_parts:
            enh = placer.to_grid_crs(coords)
            base = enh[:, 2] if absolute else placer.ground(enh[:, 0], enh[:, 1], enh[:, 2])
            for (e, n), h in zip(enh[:, :2], base, strict=True):
                top = h + (height if mode == "extruded" else PIN_HEIGHT)
                stem = place(np.array([[e, n, h], [e, n, top]]))
                lines.polyline(stem, rgb)
                head = pv.Sphere(radius=PIN_RADIUS, center=stem[1], theta_resolution=16,
                                 phi_resolution=12)
                pins.triangles(np.asarray(head.points, dtype=np.float64),
                               np.asarray(head.faces).reshape(-1, 4)[:, 1:], rgb)
    return OverlayGeometry(
        lines=_polydata(lines, "lines"),
        surfaces=_polydata(surfaces, "faces"),
        pins=_polydata(pins, "faces"),
        statuses=statuses,
        highlighted=highlighted,
    )


def _curtain(
    builder: _Builder,
    enh: np.ndarray,
    base: np.ndarray,
    top: np.ndarray,
    rgb: tuple[int, int, int],
    place: Any,
) -> None:
    """A vertical wall under a polyline, from ``base`` to ``top`` heights."""
    n = len(enh)
    if n < 2:
        return
    bottom = np.column_stack([enh[:, :2], base])
    upper = np.column_stack([enh[:, :2], np.maximum(top, base)])
    vertices = np.concatenate([bottom, upper])
    i = np.arange(n - 1)
    triangles = np.concatenate([np.column_stack([i, i + 1, n + i + 1]),
                                np.column_stack([i, n + i + 1, n + i])])
    builder.triangles(place(vertices), triangles, rgb)


def _polydata(builder: _Builder, kind: str) -> pv.PolyData | None:
    if not builder.points:
        return None
    points = np.concatenate(builder.points).astype(np.float32)
    cells = np.concatenate(builder.cells)
    poly = pv.PolyData(points, lines=cells) if kind == "lines" else pv.PolyData(points, cells)
    poly.point_data["rgb"] = np.concatenate(builder.rgb)
    return poly
