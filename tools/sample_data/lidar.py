"""Synthetic airborne laser scanning of the sample world: LAS 1.4 / LAZ in 1 km tiles.

Each pulse is traced to the first surface it meets: an existing bridge's deck (class 17), a
roof (6, sampled from exactly the roof polygons written to the CityGML), a tree or shrub crown
(5/4, with further returns inside the crown and on the ground below), the Warnow (9, the
water surface at 0 m; some pulses are lost to specular reflection) or the ground (2; meadows
also return low vegetation, 3). Pulses follow a scanner's pattern: east-west flight strips
250 m wide, flown alternately, scan lines across each strip, so the points come in survey
order and compress the way real tiles do.

Files are LAS 1.4 point format 7 (RGB) with an OGC WKT CRS record for EPSG:25833 + EPSG:7837
(ETRS89 / UTM 33N + DHHN2016 height; global encoding WKT bit set), scale 0.01 m, offsets at
the tile's corner, a fixed creation date and no other run-dependent header field.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import laspy
import numpy as np
import numpy.typing as npt
import pyproj
import shapely

from tools.sample_data.world import (
    CLEARED_SITE,
    PARKS,
    SQUARES,
    WATER_LEVEL,
    Extent,
    TerrainGrid,
    grid_nodes,
    rasterize,
)

if TYPE_CHECKING:
    from tools.sample_data.world import World

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CRS = "EPSG:25833+7837"
CREATION_DATE = datetime.date(2024, 4, 15)
SYSTEM_IDENTIFIER = "rostock-virtuell synthetic ALS"
GENERATING_SOFTWARE = "twin sample-data"
SCALE = 0.01
STRIP_WIDTH = 250.0
FLYING_HEIGHT = 600.0
SPEED = 60.0
GPS_T0 = 380_000_000.0
"""Adjusted standard GPS time of the survey's first strip (a fixed day in 2022)."""

# Ground materials: code, sRGB, mean intensity.
GRASS, ASPHALT, PAVING, MEADOW, CLEARED, SAND = range(6)
MATERIAL_RGB = np.array([[96, 132, 64], [84, 84, 88], [150, 144, 134], [128, 142, 80],
                         [150, 128, 98], [186, 172, 140]], dtype=np.float64)
MATERIAL_INTENSITY = np.array([320.0, 160.0, 420.0, 300.0, 480.0, 520.0])
WATER_RGB = np.array([36.0, 58.0, 84.0])
BRIDGE_RGB = np.array([98.0, 98.0, 100.0])

GROUND, LOW_VEGETATION, MEDIUM_VEGETATION, HIGH_VEGETATION, BUILDING, WATER, BRIDGE = (
    2, 3, 4, 5, 6, 9, 17)


# --------------------------------------------------------------------------------------------
# Ground materials on the terrain grid
# --------------------------------------------------------------------------------------------


def _paint(grid: npt.NDArray[np.uint8], polygon: shapely.Polygon, code: int,
           xs: FloatArray, ys: FloatArray) -> None:
    x0, y0, x1, y1 = polygon.bounds
    c0, c1 = np.searchsorted(xs, [x0, x1])
    r0, r1 = np.searchsorted(ys, [y0, y1])
    c1, r1 = min(c1 + 1, len(xs)), min(r1 + 1, len(ys))
    if c1 - c0 < 2 or r1 - r0 < 2:
        return
    window = grid[r0:r1, c0:c1]
    window[rasterize(polygon, xs[c0:c1], ys[r0:r1])] = code


def ground_materials(world: World) -> npt.NDArray[np.uint8]:
    """The ground's surface (grass, asphalt, paving, meadow, cleared site, sand) per node."""
    cell = world.terrain_parameters.cell
    xs, ys = grid_nodes(world.extent, cell)
    d = world.sides.distance
    north = world.sides.north
    ee, nn = np.meshgrid(xs, ys)
    patches = (np.sin(ee / 23.0) * np.cos(nn / 17.0) + 0.6 * np.sin((ee + nn) / 41.0)) > -0.3
    grid = np.where(north, np.where(ee > 312900.0, MEADOW, GRASS),
                    np.where(d < 30.0, PAVING, np.where(d < 90.0, GRASS,
                                                        np.where(patches, PAVING, GRASS))))
    grid = grid.astype(np.uint8)
    grid[north & (d < 4.0)] = SAND
    for box in PARKS.values():
        _paint(grid, shapely.box(*box), GRASS, xs, ys)
    for box in SQUARES.values():
        _paint(grid, shapely.box(*box), PAVING, xs, ys)
    _paint(grid, shapely.box(*CLEARED_SITE), CLEARED, xs, ys)
    surface = {"asphalt": ASPHALT, "paving": PAVING, "path": SAND}
    for street in world.streets:
        _paint(grid, street.polygon, surface[street.surface], xs, ys)
    return grid


# --------------------------------------------------------------------------------------------
# A box index: which boxes may contain which points
# --------------------------------------------------------------------------------------------


class BoxIndex:
    """Axis-parallel boxes bucketed on a grid; ``pairs`` lists (point, box) candidates."""

    def __init__(self, boxes: FloatArray, origin: tuple[float, float], cell: float,
                 shape: tuple[int, int]) -> None:
        self.origin = origin
        self.cell = cell
        self.shape = shape
        ox, oy = origin
        rows, cols = shape
        c0 = np.clip(np.floor((boxes[:, 0] - ox) / cell), 0, cols - 1).astype(np.int64)
        c1 = np.clip(np.floor((boxes[:, 2] - ox) / cell), 0, cols - 1).astype(np.int64)
        r0 = np.clip(np.floor((boxes[:, 1] - oy) / cell), 0, rows - 1).astype(np.int64)
        r1 = np.clip(np.floor((boxes[:, 3] - oy) / cell), 0, rows - 1).astype(np.int64)
        keys, owners = [], []
        for k in range(len(boxes)):
            rr, cc = np.meshgrid(np.arange(r0[k], r1[k] + 1), np.arange(c0[k], c1[k] + 1),
                                 indexing="ij")
            keys.append((rr * cols + cc).ravel())
            owners.append(np.full(rr.size, k, dtype=np.int64))
        key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        order = np.argsort(key, kind="stable")
        self.key = key[order]
        self.owner = owner[order]

    def pairs(self, x: FloatArray, y: FloatArray) -> tuple[IntArray, IntArray]:
        """(point index, box index) for every box whose cell holds the point."""
        ox, oy = self.origin
        rows, cols = self.shape
        c = np.clip(np.floor((x - ox) / self.cell), 0, cols - 1).astype(np.int64)
        r = np.clip(np.floor((y - oy) / self.cell), 0, rows - 1).astype(np.int64)
        key = r * cols + c
        start = np.searchsorted(self.key, key, side="left")
        stop = np.searchsorted(self.key, key, side="right")
        counts = stop - start
        point = np.repeat(np.arange(len(x)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return point, self.owner[np.repeat(start, counts) + offsets]


# --------------------------------------------------------------------------------------------
# Sampling one tile
# --------------------------------------------------------------------------------------------


@dataclass
class Points:
    """Points of one tile in survey order."""

    x: FloatArray
    y: FloatArray
    z: FloatArray
    classification: npt.NDArray[np.uint8]
    intensity: npt.NDArray[np.uint16]
    rgb: npt.NDArray[np.uint16]
    return_number: npt.NDArray[np.uint8]
    number_of_returns: npt.NDArray[np.uint8]
    gps_time: FloatArray
    scan_angle: npt.NDArray[np.int16]
    point_source: npt.NDArray[np.uint16]
    scan_direction: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Roofs:
    """Every roof polygon of the world once: outline, plane, colour, intensity, box."""

    polygons: npt.NDArray[np.object_]
    planes: FloatArray
    """(k, 5): a, b, x0, y0, c with z = a(x-x0) + b(y-y0) + c."""
    rgb: FloatArray
    intensity: FloatArray
    boxes: FloatArray


def roofs(world: World) -> Roofs:
    """The roof table of the world's existing buildings (the LiDAR's class 6 source)."""
    from tools.sample_data.shapes import plane

    polygons, planes, rgb, intensity = [], [], [], []
    for building in world.buildings:
        colour = np.asarray(building.roof_colour, dtype=np.float64)
        for ring in building.roof_rings():
            coefficients = plane(ring)
            if coefficients is None:
                continue
            polygons.append(shapely.Polygon(ring[:, :2]))
            a, b, c = coefficients
            planes.append((a, b, ring[0, 0], ring[0, 1], c))
            rgb.append(colour)
            intensity.append(250.0 + 4.0 * float(colour.mean()))
    outlines = np.asarray(polygons, dtype=object)
    shapely.prepare(outlines)
    return Roofs(outlines, np.asarray(planes).reshape(-1, 5), np.asarray(rgb).reshape(-1, 3),
                 np.asarray(intensity), shapely.bounds(outlines).reshape(-1, 4))


@dataclass
class _Scene:
    """What the tile's pulses can hit, prepared once per tile."""

    roofs: npt.NDArray[np.int64]
    """Indices into the world's roof table."""
    roof_index: BoxIndex | None
    plant_index: BoxIndex | None
    plants: npt.NDArray[np.int64]


def tiles(extent: Extent) -> list[tuple[int, int]]:
    """(E km, N km) of the 1 km tiles the extent touches (area > 0), west-east, south-north."""
    out = []
    for n in range(int(extent.n_min // 1000), int(np.ceil(extent.n_max / 1000))):
        for e in range(int(extent.e_min // 1000), int(np.ceil(extent.e_max / 1000))):
            if min(extent.e_max, (e + 1) * 1000) > max(extent.e_min, e * 1000) and \
                    min(extent.n_max, (n + 1) * 1000) > max(extent.n_min, n * 1000):
                out.append((e, n))
    return out


def tile_window(extent: Extent, tile: tuple[int, int]) -> tuple[float, float, float, float]:
    """The part of a 1 km tile inside the extent."""
    e, n = tile
    return (max(extent.e_min, e * 1000.0), max(extent.n_min, n * 1000.0),
            min(extent.e_max, (e + 1) * 1000.0), min(extent.n_max, (n + 1) * 1000.0))


def _scene(world: World, table: Roofs, window: tuple[float, float, float, float]) -> _Scene:
    x0, y0, x1, y1 = window
    b = table.boxes
    near = (b[:, 2] > x0 - 1.0) & (b[:, 0] < x1 + 1.0) & (b[:, 3] > y0 - 1.0) & (b[:, 1] < y1 + 1.0)
    roof_ids = np.flatnonzero(near)
    cell = 4.0
    shape = (int(np.ceil((y1 - y0) / cell)) + 1, int(np.ceil((x1 - x0) / cell)) + 1)
    roof_index = BoxIndex(b[roof_ids], (x0, y0), cell, shape) if len(roof_ids) else None
    veg = world.vegetation
    r = veg.radius
    near = ((veg.e + r > x0) & (veg.e - r < x1) & (veg.n + r > y0) & (veg.n - r < y1))
    plants = np.flatnonzero(near)
    plant_boxes = np.column_stack([veg.e[plants] - r[plants], veg.n[plants] - r[plants],
                                   veg.e[plants] + r[plants], veg.n[plants] + r[plants]])
    plant_index = BoxIndex(plant_boxes, (x0, y0), cell, shape) if len(plants) else None
    return _Scene(roof_ids, roof_index, plant_index, plants)


def _pulses(extent: Extent, window: tuple[float, float, float, float], density: float,
            rng: np.random.Generator) -> dict[str, npt.NDArray[np.generic]]:
    """Pulse positions in survey order: strips, scan lines along each strip, points across."""
    x0, y0, x1, y1 = window
    step = 1.0 / np.sqrt(density)
    xs_all, ys_all, t_all, strip_all, dir_all = [], [], [], [], []
    first_strip = int((y0 - extent.n_min) // STRIP_WIDTH)
    last_strip = int(np.ceil((y1 - extent.n_min) / STRIP_WIDTH))
    for strip in range(first_strip, last_strip):
        lo = max(y0, extent.n_min + strip * STRIP_WIDTH)
        hi = min(y1, extent.n_min + (strip + 1) * STRIP_WIDTH)
        if hi <= lo:
            continue
        # Lines and points on the survey's global lattice, so neighbouring tiles interlock.
        i = np.arange(np.ceil((x0 - extent.e_min) / step - 0.5),
                      np.ceil((x1 - extent.e_min) / step - 0.5))
        j = np.arange(np.ceil((lo - extent.n_min) / step - 0.5),
                      np.ceil((hi - extent.n_min) / step - 0.5))
        if len(i) == 0 or len(j) == 0:
            continue
        eastward = strip % 2 == 0
        if not eastward:
            i = i[::-1]
        ii = np.repeat(i, len(j))
        # Every other scan line runs the other way (the mirror sweeps back and forth).
        jj = np.tile(j, (len(i), 1))
        jj[1::2] = jj[1::2, ::-1]
        jj = jj.reshape(-1)
        jitter = rng.uniform(-0.35, 0.35, (len(ii), 2)) * step
        # On the file's centimetre grid from the start: what is classified (water or not,
        # roof or not) is exactly what is stored.
        x = np.round(extent.e_min + (ii + 0.5) * step + jitter[:, 0], 2)
        y = np.round(extent.n_min + (jj + 0.5) * step + jitter[:, 1], 2)
        inside = (x >= x0) & (x < x1) & (y >= lo) & (y < hi)
        # The clock ticks once per pulse, scan line after scan line (the survey's global
        # line number sets the start, so neighbouring tiles' times continue each other).
        first_line = i[0] if eastward else (extent.e_max - extent.e_min) / step - i[0]
        sequence = np.arange(len(ii), dtype=np.float64) / len(j)
        t = GPS_T0 + strip * 300.0 + (first_line + sequence) * step / SPEED
        xs_all.append(x[inside])
        ys_all.append(y[inside])
        t_all.append(t[inside])
        strip_all.append(np.full(int(inside.sum()), strip + 1, dtype=np.uint16))
        dir_all.append(np.full(int(inside.sum()), 1 if eastward else 0, dtype=np.uint8))
    centre_y = extent.n_min + (np.concatenate(strip_all).astype(np.float64) - 0.5) * STRIP_WIDTH \
        if strip_all else np.zeros(0)
    y_all = np.concatenate(ys_all) if ys_all else np.zeros(0)
    angle = np.degrees(np.arctan((y_all - centre_y) / FLYING_HEIGHT))
    return {"x": np.concatenate(xs_all) if xs_all else np.zeros(0), "y": y_all,
            "t": np.concatenate(t_all) if t_all else np.zeros(0),
            "strip": np.concatenate(strip_all) if strip_all else np.zeros(0, np.uint16),
            "direction": np.concatenate(dir_all) if dir_all else np.zeros(0, np.uint8),
            "angle": angle}


def sample_tile(world: World, materials: TerrainGrid, table: Roofs, tile: tuple[int, int],
                density: float, seed: int) -> Points:
    """Every return of the pulses over one tile (within the extent), in survey order."""
    rng = np.random.default_rng([seed, 0x1A5, tile[0], tile[1]])
    window = tile_window(world.extent, tile)
    pulse = _pulses(world.extent, window, density, rng)
    x, y = pulse["x"], pulse["y"]
    n = len(x)
    scene = _scene(world, table, window)
    ground = world.terrain_height(x, y)
    z = ground + rng.normal(0.0, 0.03, n)
    cls = np.full(n, GROUND, dtype=np.uint8)
    material = materials.heights[
        np.clip(np.rint((y - materials.n0) / materials.cell).astype(np.int64), 0,
                materials.heights.shape[0] - 1),
        np.clip(np.rint((x - materials.e0) / materials.cell).astype(np.int64), 0,
                materials.heights.shape[1] - 1)].astype(np.int64)
    rgb = MATERIAL_RGB[material].copy()
    intensity = MATERIAL_INTENSITY[material] * rng.uniform(0.85, 1.15, n)
    # Low vegetation in the meadows.
    low = (material == MEADOW) & (rng.random(n) < 0.35)
    z[low] = ground[low] + rng.uniform(0.1, 0.45, int(low.sum()))
    cls[low] = LOW_VEGETATION
    rgb[low] = (120.0, 146.0, 72.0)
    # Water: the surface at the mean water level; specular pulses return nothing.
    water = world.is_water(x, y)
    z[water] = WATER_LEVEL + rng.normal(0.0, 0.02, int(water.sum()))
    cls[water] = WATER
    rgb[water] = WATER_RGB
    intensity[water] = rng.uniform(15.0, 90.0, int(water.sum()))
    lost = water & (rng.random(n) < 0.25)
    # Crowns: the highest crown over each pulse.
    veg = world.vegetation
    crown_top = np.full(n, -np.inf)
    crown_plant = np.full(n, -1, dtype=np.int64)
    if scene.plant_index is not None:
        p, k = scene.plant_index.pairs(x, y)
        plant = scene.plants[k]
        r2 = (x[p] - veg.e[plant]) ** 2 + (y[p] - veg.n[plant]) ** 2
        inside = r2 < veg.radius[plant] ** 2
        p, plant, r2 = p[inside], plant[inside], r2[inside]
        shape = np.sqrt(1.0 - r2 / veg.radius[plant] ** 2)
        base = veg.ground[plant] + veg.bottom[plant]
        zc = base + (veg.top[plant] - veg.bottom[plant]) * (0.45 + 0.55 * shape)
        order = np.lexsort((zc, p))  # per pulse, the highest crown last
        p, plant, zc = p[order], plant[order], zc[order]
        last = np.append(p[1:] != p[:-1], True)
        crown_top[p[last]] = zc[last]
        crown_plant[p[last]] = plant[last]
    # Roofs: the highest roof polygon over each pulse.
    roof_z = np.full(n, -np.inf)
    roof_k = np.full(n, -1, dtype=np.int64)
    if scene.roof_index is not None:
        p, k = scene.roof_index.pairs(x, y)
        k = scene.roofs[k]
        hit = shapely.contains_xy(table.polygons[k], x[p], y[p])
        p, k = p[hit], k[hit]
        a, b, rx, ry, c = table.planes[k].T
        zr = a * (x[p] - rx) + b * (y[p] - ry) + c
        order = np.lexsort((zr, p))
        p, k, zr = p[order], k[order], zr[order]
        last = np.append(p[1:] != p[:-1], True)
        roof_z[p[last]] = zr[last]
        roof_k[p[last]] = k[last]
    on_roof = roof_k >= 0
    on_plant = (crown_plant >= 0) & ~on_roof & ~water
    z[on_roof] = roof_z[on_roof] + rng.normal(0.0, 0.02, int(on_roof.sum()))
    cls[on_roof] = BUILDING
    rgb[on_roof] = table.rgb[roof_k[on_roof]]
    intensity[on_roof] = table.intensity[roof_k[on_roof]] * rng.uniform(
        0.85, 1.15, int(on_roof.sum()))
    z[on_plant] = crown_top[on_plant] - np.abs(rng.normal(0.0, 0.15, int(on_plant.sum())))
    height = z[on_plant] - ground[on_plant]
    cls[on_plant] = np.where(height > 2.0, HIGH_VEGETATION,
                             np.where(height > 0.5, MEDIUM_VEGETATION, LOW_VEGETATION))
    rgb[on_plant] = veg.colour[crown_plant[on_plant]]
    intensity[on_plant] = rng.uniform(180.0, 800.0, int(on_plant.sum()))
    # Existing bridges: the deck over everything below it.
    for bridge in world.existing_bridges:
        deck = shapely.contains_xy(bridge.outline, x, y)
        z[deck] = bridge.height(x[deck], y[deck]) + rng.normal(0.0, 0.02, int(deck.sum()))
        cls[deck] = BRIDGE
        rgb[deck] = BRIDGE_RGB
        intensity[deck] = rng.uniform(140.0, 260.0, int(deck.sum()))
        lost &= ~deck
        on_plant &= ~deck
    # Further returns under crowns: one inside the crown, the last on the ground.
    plant = crown_plant
    tree = on_plant & (veg.kind[np.maximum(plant, 0)] == HIGH_VEGETATION)
    mid = tree & (rng.random(n) < 0.3)
    to_ground = on_plant & (rng.random(n) < np.where(tree, 0.55, 0.3))
    returns = 1 + mid.astype(np.uint8) + to_ground.astype(np.uint8)
    lo = ground + veg.bottom[np.maximum(plant, 0)]
    mid_z = rng.uniform(np.minimum(lo, z - 0.3), z - 0.3)
    keep = ~lost
    pulse_id = np.arange(n)

    def take(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        return np.flatnonzero(mask & keep)

    first, second, last = take(np.ones(n, bool)), take(mid), take(to_ground)
    index = np.concatenate([first, second, last])
    rank = np.concatenate([np.zeros(len(first), np.int64), np.ones(len(second), np.int64),
                           np.full(len(last), 2, np.int64)])
    order = np.lexsort((rank, pulse_id[index]))
    index, rank = index[order], rank[order]
    out_z = np.concatenate([z[first], mid_z[second], ground[last] + rng.normal(0.0, 0.03,
                                                                               len(last))])[order]
    out_cls = np.concatenate([cls[first], np.full(len(second), HIGH_VEGETATION, np.uint8),
                              np.full(len(last), GROUND, np.uint8)])[order]
    ground_rgb = MATERIAL_RGB[material] * 0.8
    out_rgb = np.concatenate([rgb[first], veg.colour[plant[second]].astype(np.float64) * 0.8,
                              ground_rgb[last]])[order]
    out_int = np.concatenate([intensity[first], intensity[second] * 0.6,
                              MATERIAL_INTENSITY[material[last]] * 0.5])[order]
    return_number = np.where(rank == 0, 1, np.where(rank == 1, 2, returns[index])).astype(
        np.uint8)
    # Brightness varies point to point (one factor for all three channels, as shading does).
    out_rgb = np.clip(out_rgb * rng.normal(1.0, 0.03, (len(out_rgb), 1)), 0.0, 255.0)
    return Points(
        x=x[index], y=y[index], z=out_z, classification=out_cls,
        intensity=np.clip(out_int, 0, 65535).astype(np.uint16),
        rgb=(np.rint(out_rgb) * 257.0).astype(np.uint16),
        return_number=return_number, number_of_returns=returns[index].astype(np.uint8),
        gps_time=pulse["t"][index],
        scan_angle=np.rint(pulse["angle"][index] / 0.006).astype(np.int16),
        point_source=pulse["strip"][index].astype(np.uint16),
        scan_direction=pulse["direction"][index].astype(np.uint8),
    )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def tile_name(tile: tuple[int, int]) -> str:
    """The M-V file name of a 1 km ALS tile."""
    return f"3dm_33_{tile[0]}_{tile[1]}_1.laz"


def write_laz(path: Path, points: Points, tile: tuple[int, int]) -> None:
    """Write one tile as LAZ (LAS 1.4, point format 7, WKT CRS)."""
    header = laspy.LasHeader(point_format=7, version="1.4")
    header.scales = np.array([SCALE, SCALE, SCALE])
    header.offsets = np.array([tile[0] * 1000.0, tile[1] * 1000.0, 0.0])
    header.add_crs(pyproj.CRS.from_user_input(CRS))
    header.global_encoding.gps_time_type = laspy.header.GpsTimeType.STANDARD
    header.system_identifier = SYSTEM_IDENTIFIER
    header.generating_software = GENERATING_SOFTWARE
    header.creation_date = CREATION_DATE
    header.file_source_id = 0
    record = laspy.ScaleAwarePointRecord.zeros(len(points), header=header)
    record.x = points.x
    record.y = points.y
    record.z = points.z
    record.intensity = points.intensity
    record.return_number = points.return_number
    record.number_of_returns = points.number_of_returns
    record.classification = points.classification
    record.scan_direction_flag = points.scan_direction
    record.scan_angle = points.scan_angle
    record.point_source_id = points.point_source
    record.gps_time = points.gps_time
    record.red = points.rgb[:, 0]
    record.green = points.rgb[:, 1]
    record.blue = points.rgb[:, 2]
    with laspy.open(path, mode="w", header=header, do_compress=True,
                    laz_backend=laspy.LazBackend.Lazrs) as writer:
        writer.write_points(record)
