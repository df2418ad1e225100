"""The offscreen renderer: selected tiles, overlays, lights and sun shadows in one VTK window.

Shadows are computed here rather than with VTK's shadow-map pass (``Plotter.enable_shadows``),
which was tried first and fails two ways on these machines (VTK 9.7, Mesa llvmpipe via EGL):
its shadow lookup uses the window's aspect ratio, so in any non-square image shadows land in
the wrong place and light bands cross the ground; and its exponential shadow maps fade at
city scale (a 10 m building in a 2.6 km scene casts a barely visible shadow). Instead, the
classic shadow-map test runs on the CPU with exact depths: the view is rendered with the sun
and without it; the depth buffer gives each pixel's position; an orthographic depth map seen
from the sun, fitted to exactly those positions (and the tiles that can shade them), tells
which of them the sun does not reach; those pixels take the colour of the sunless render.
That is ordinary shadow mapping, only with float depths compared at full precision, so the
result is deterministic and correct in any image size.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyvista as pv
from vtkmodules.vtkCommonCore import vtkFloatArray

from twin.crs import geodetic_to_ecef
from twin.readers.tileset import Bounds, Selection, read_tile_meshes
from twin.render.camera import PlacedCamera
from twin.render.meshes import TileGeometry, tile_geometry
from twin.render.overlays import OverlayGeometry
from twin.render.scene import Epoch, PublishedScene
from twin.render.style import SKY_BOTTOM, SKY_TOP
from twin.render.sun import SunPosition

__all__ = ["Frame", "SceneRenderer"]


@dataclass(frozen=True, slots=True)
class Lighting:
    """Light intensities and material terms of the renders."""

    ambient: float = 0.32
    diffuse: float = 0.68
    key_intensity: float = 0.85
    key_azimuth: float = 200.0
    """Without --sun: a fixed light from the south-south-west..."""
    key_elevation: float = 50.0
    """...and this high."""
    fill_intensity: float = 0.22
    """A headlight that keeps faces turned from the key light readable."""
    sun_intensity: float = 0.95
    sky_intensity: float = 0.18
    """With --sun: light from the zenith, also in the shade (no shadow of its own)."""


LIGHTING = Lighting()
CACHE_BYTES = 1_500_000_000
"""Decoded tiles kept between renders (comparisons, series, flythrough frames)."""
NEAR_FAR_RATIO = 0.0005
"""Near plane at this fraction of the far plane: with a 24-bit depth buffer, depth steps
stay below 3 cm at 1 km for a 3 km deep view."""


@dataclass(frozen=True, slots=True)
class ShadowSettings:
    """The CPU shadow-map test."""

    min_resolution: int = 1024
    max_resolution: int = 4096
    """Side of the sun's depth map: twice the image's longer side within these bounds."""
    bias: float = 0.15
    """Metres a point may lie behind the sun's depth map and still be lit..."""
    bias_texels: float = 1.5
    """...plus this many texel widths (depth varies across a texel on slopes)."""
    reach: float = 1000.0
    """Largest distance (m) at which tiles outside the view are loaded as shadow casters."""
    min_facing: float = 0.03
    """Cosine between surface normal and sun below which a surface counts as turned away."""


SHADOWS = ShadowSettings()


@dataclass(slots=True)
class Frame:
    """One rendered view."""

    image: np.ndarray
    """(H, W, 3) uint8."""
    selection: Selection
    shadow_casters: int = 0
    """Tiles outside the view loaded because their shadows may fall into it."""
    shadowed_fraction: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _matrix(vtk_matrix: Any) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(i, j) for j in range(4)] for i in range(4)])


class SceneRenderer:
    """Renders views of one published scene at one image size; keeps decoded tiles and VTK
    actors between renders. Use as a context manager (the window is released on exit)."""

    def __init__(
        self,
        scene: PublishedScene,
        width: int,
        height: int,
        *,
        language: str = "de",
        max_screen_space_error: float = 16.0,
    ) -> None:
        self.scene = scene
        self.width, self.height = width, height
        self.language = language
        self.max_screen_space_error = max_screen_space_error
        self.frame_to_ecef = np.linalg.inv(scene.ecef_to_frame)
        self._region_corners = _region_corners(scene)
        plotter = pv.Plotter(off_screen=True, window_size=(width, height), lighting=None)
        # No multisampling: its sample positions are the driver's business (and VTK's FXAA
        # is not available with EGL).
        plotter.ren_win.SetMultiSamples(0)
        plotter.set_background(SKY_BOTTOM, top=SKY_TOP)
        self.plotter = plotter
        self._geometry: OrderedDict[tuple[str, str | None], TileGeometry] = OrderedDict()
        self._cached_bytes = 0
        self._actors: dict[tuple[str, str | None], list[Any]] = {}
        self._overlay_actors: list[Any] = []
        self.overlay_key: object = None
        self._key = self._light()
        self._fill = pv.Light(light_type="headlight", intensity=LIGHTING.fill_intensity)
        plotter.add_light(self._fill)
        self._sun = self._light()
        self._sky = self._light()
        self._set_direction(self._sky, np.array([0.0, 0.0, 1.0]))

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self.plotter.close()
        self._actors.clear()
        self._geometry.clear()

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- scene content --------------------------------------------------------------------

    def _light(self) -> pv.Light:
        light = pv.Light(light_type="scene light", intensity=0.0)
        light.positional = False
        self.plotter.add_light(light)
        return light

    @staticmethod
    def _set_direction(light: pv.Light, towards: np.ndarray) -> None:
        """Point a directional light so that it shines from ``towards`` (a unit vector)."""
        light.position = tuple(float(v) for v in towards)
        light.focal_point = (0.0, 0.0, 0.0)

    def _tile(self, path: Any, world: np.ndarray, color_by: str | None) -> TileGeometry:
        key = (str(path), color_by)
        geometry = self._geometry.get(key)
        if geometry is not None:
            self._geometry.move_to_end(key)
            return geometry
        meshes = read_tile_meshes(path, self.scene.ecef_to_frame @ world,
                                  source=self.scene.tileset_name(path))
        layer = self.scene.layer_of(path)
        recolour = color_by if layer is not None and layer.get("kind") == "citygml" else None
        geometry = tile_geometry(meshes, recolour, self.language)
        self._geometry[key] = geometry
        self._cached_bytes += geometry.bytes
        while self._cached_bytes > CACHE_BYTES and len(self._geometry) > 1:
            old_key, old = self._geometry.popitem(last=False)
            self._cached_bytes -= old.bytes
            for actor in self._actors.pop(old_key, []):
                self.plotter.remove_actor(actor, render=False)
        return geometry

    def _show_tiles(self, selection: Selection, color_by: str | None, extra: list[Any]) -> None:
        """Make exactly the selected contents visible (adding actors in traversal order)."""
        wanted: list[tuple[str, str | None]] = []
        for tile in list(selection.tiles) + extra:
            for path in tile.contents:
                key = (str(path), color_by)
                if key in wanted:
                    continue
                wanted.append(key)
                if key not in self._actors:
                    geometry = self._tile(path, tile.world, color_by)
                    self._actors[key] = self._add_geometry(geometry)
        visible = set(wanted)
        for key, actors in self._actors.items():
            for actor in actors:
                actor.SetVisibility(key in visible)

    def _add_geometry(self, geometry: TileGeometry) -> list[Any]:
        actors = []
        if geometry.surfaces is not None:
            actors.append(self.plotter.add_mesh(
                geometry.surfaces, scalars="rgb", rgb=True, ambient=LIGHTING.ambient,
                diffuse=LIGHTING.diffuse, specular=0.0, show_scalar_bar=False, render=False,
                reset_camera=False))
        if geometry.points is not None:
            actors.append(self.plotter.add_mesh(
                geometry.points, scalars="rgb", rgb=True, style="points", point_size=2,
                ambient=LIGHTING.ambient, diffuse=LIGHTING.diffuse, show_scalar_bar=False,
                render=False, reset_camera=False))
        return actors

    def set_overlays(self, key: object, geometry: OverlayGeometry | None) -> None:
        """Show these overlays (replacing others); ``key`` identifies them for reuse."""
        if key == self.overlay_key:
            return
        for actor in self._overlay_actors:
            self.plotter.remove_actor(actor, render=False)
        self._overlay_actors = []
        self.overlay_key = key
        if geometry is None:
            return
        line_width = max(2.0, self.height / 300.0)
        if geometry.surfaces is not None:
            self._overlay_actors.append(self.plotter.add_mesh(
                geometry.surfaces, scalars="rgb", rgb=True, opacity=0.45, ambient=0.6,
                diffuse=0.4, specular=0.0, show_scalar_bar=False, render=False,
                reset_camera=False))
        if geometry.lines is not None:
            self._overlay_actors.append(self.plotter.add_mesh(
                geometry.lines, scalars="rgb", rgb=True, line_width=line_width, lighting=False,
                show_scalar_bar=False, render=False, reset_camera=False))
        if geometry.pins is not None:
            self._overlay_actors.append(self.plotter.add_mesh(
                geometry.pins, scalars="rgb", rgb=True, ambient=0.5, diffuse=0.5,
                show_scalar_bar=False, render=False, reset_camera=False))

    # --- camera and lights ----------------------------------------------------------------

    def _place(self, camera: PlacedCamera) -> None:
        vtk_camera = self.plotter.camera
        vtk_camera.SetParallelProjection(False)
        vtk_camera.SetPosition(*camera.position)
        vtk_camera.SetFocalPoint(*camera.focal_point)
        vtk_camera.SetViewUp(*camera.up)
        vtk_camera.SetViewAngle(camera.fov_y(self.width, self.height))
        # Near and far planes from the scene's region, not from what is loaded: the depth
        # buffer then resolves coplanar surfaces the same way in every epoch of a comparison.
        distances = np.linalg.norm(self._region_corners - camera.position, axis=1)
        far = float(distances.max()) * 1.05 + 10.0
        vtk_camera.SetClippingRange(max(0.2, far * NEAR_FAR_RATIO), far)

    def _lights(self, sun: SunPosition | None, sun_on: bool = True) -> None:
        if sun is None:
            a, e = math.radians(LIGHTING.key_azimuth), math.radians(LIGHTING.key_elevation)
            key = np.array([math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), math.sin(e)])
            self._set_direction(self._key, key)
            self._key.intensity = LIGHTING.key_intensity
            self._fill.intensity = LIGHTING.fill_intensity
            self._sun.intensity = 0.0
            self._sky.intensity = 0.0
        else:
            self._key.intensity = 0.0
            self._fill.intensity = 0.0
            self._set_direction(self._sun, self._sun_frame(sun))
            self._sun.intensity = LIGHTING.sun_intensity if sun_on else 0.0
            self._sky.intensity = LIGHTING.sky_intensity

    def _sun_frame(self, sun: SunPosition) -> np.ndarray:
        """The direction towards the sun in the render frame (ENU at the scene centre)."""
        return sun.direction

    def _screenshot(self) -> np.ndarray:
        self.plotter.render()
        image = self.plotter.screenshot(return_img=True)
        return np.ascontiguousarray(image[:, :, :3])

    def _zbuffer(self, width: int, height: int) -> np.ndarray:
        """(height, width) depth buffer values 0..1, row 0 at the bottom."""
        values = vtkFloatArray()
        self.plotter.ren_win.GetZbufferData(0, 0, width - 1, height - 1, values)
        return np.array(pv.convert_array(values), dtype=np.float32).reshape(height, width)

    # --- rendering ------------------------------------------------------------------------

    def select(self, camera: PlacedCamera, epoch: Epoch,
               keep: Any = None) -> Selection:
        """The tiles of ``epoch`` this camera needs."""
        frustum = camera.frustum(self.frame_to_ecef, self.width, self.height)
        return self.scene.tileset(epoch).select(frustum, self.max_screen_space_error, keep)

    def render(
        self,
        camera: PlacedCamera,
        epoch: Epoch,
        *,
        color_by: str | None = None,
        sun: SunPosition | None = None,
    ) -> Frame:
        """Render one view (overlays as last set with ``set_overlays``)."""
        selection = self.select(camera, epoch)
        self._show_tiles(selection, color_by, [])
        self._place(camera)
        self._lights(sun)
        image = self._screenshot()
        frame = Frame(image=image, selection=selection)
        if sun is not None:
            self._shade(frame, camera, epoch, color_by, sun)
        return frame

    def _shade(self, frame: Frame, camera: PlacedCamera, epoch: Epoch, color_by: str | None,
               sun: SunPosition) -> None:
        """Replace the pixels the sun does not reach by the sunless render."""
        width, height = self.width, self.height
        inverse = np.linalg.inv(_matrix(self.plotter.camera.GetCompositeProjectionTransformMatrix(
            width / height, -1, 1)))
        world = _unproject(self._zbuffer(width, height), inverse)  # (H, W, 3), NaN: sky
        visible = ~np.isnan(world[:, :, 0])
        if not visible.any():
            return
        towards = self._sun_frame(sun)
        lo = np.nanmin(world.reshape(-1, 3), axis=0).astype(np.float64)
        hi = np.nanmax(world.reshape(-1, 3), axis=0).astype(np.float64)

        # Tiles outside the view whose shadows can reach the visible points.
        top = float(self.scene.region[5]) + 50.0
        elevation = max(math.radians(sun.elevation), math.radians(1.0))
        reach = min(SHADOWS.reach, max(0.0, top - float(lo[2])) / math.tan(elevation))
        horizontal = np.array([towards[0], towards[1], 0.0])
        if np.linalg.norm(horizontal) > 1e-9:
            horizontal /= np.linalg.norm(horizontal)
        far = np.array([lo, hi]) + horizontal * reach
        box_lo = np.minimum(lo, far.min(axis=0))
        box_hi = np.maximum(hi, far.max(axis=0))
        box_hi[2] = max(box_hi[2], top)
        to_frame = self.scene.ecef_to_frame

        def casts_into_view(bounds: Bounds) -> bool:
            centre = to_frame[:3, :3] @ bounds.center + to_frame[:3, 3]
            nearest = np.clip(centre, box_lo, box_hi)
            return float(np.linalg.norm(centre - nearest)) <= bounds.radius

        casters = self.select(camera, epoch, keep=casts_into_view)
        shown = {id(t) for t in frame.selection.tiles}
        extra = [t for t in casters.tiles if id(t) not in shown]
        frame.shadow_casters = len(extra)
        self._show_tiles(frame.selection, color_by, extra)
        overlay_visibility = [a.GetVisibility() for a in self._overlay_actors]
        for actor in self._overlay_actors:
            actor.SetVisibility(False)

        # The sun's orthographic depth map, fitted around the visible points.
        u = np.cross(towards, [0.0, 0.0, 1.0] if abs(towards[2]) < 0.99 else [0.0, 1.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(towards, u)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])
        pu, pv_ = _extent(world, u), _extent(world, v)
        centre_uv = np.array([(pu[0] + pu[1]) / 2, (pv_[0] + pv_[1]) / 2])
        half = max(pu[1] - pu[0], pv_[1] - pv_[0]) / 2 + 2.0
        size = int(np.clip(2 * max(width, height), SHADOWS.min_resolution,
                           SHADOWS.max_resolution))
        texel = 2 * half / size
        bounds = np.array(self.plotter.renderer.ComputeVisiblePropBounds())
        extent = float(np.linalg.norm(bounds[1::2] - bounds[::2])) + 10.0
        centre = (centre_uv[0] * u + centre_uv[1] * v
                  + float((corners @ towards).mean()) * towards)
        position = centre + towards * extent
        vtk_camera = self.plotter.camera
        saved = (vtk_camera.GetPosition(), vtk_camera.GetFocalPoint(), vtk_camera.GetViewUp(),
                 vtk_camera.GetViewAngle(), vtk_camera.GetClippingRange())
        vtk_camera.SetParallelProjection(True)
        vtk_camera.SetPosition(*position)
        vtk_camera.SetFocalPoint(*centre)
        vtk_camera.SetViewUp(*v)
        vtk_camera.SetParallelScale(half)
        vtk_camera.SetClippingRange(1.0, 2.0 * extent)
        self.plotter.ren_win.SetSize(size, size)
        self.plotter.render()
        sun_depth = self._zbuffer(size, size)
        sun_matrix = _matrix(vtk_camera.GetCompositeProjectionTransformMatrix(1.0, -1, 1))
        near, far_plane = vtk_camera.GetClippingRange()
        self.plotter.ren_win.SetSize(width, height)
        vtk_camera.SetParallelProjection(False)
        vtk_camera.SetPosition(*saved[0])
        vtk_camera.SetFocalPoint(*saved[1])
        vtk_camera.SetViewUp(*saved[2])
        vtk_camera.SetViewAngle(saved[3])
        vtk_camera.SetClippingRange(*saved[4])
        for actor, shown_before in zip(self._overlay_actors, overlay_visibility, strict=True):
            actor.SetVisibility(shown_before)

        # Which visible points lie behind the sun's depth map, a band of rows at a time.
        facing = _facing_sun(world, camera.position, towards)
        mask = np.zeros((height, width), dtype=bool)
        for start in range(0, height, _BAND):
            band = world[start:start + _BAND].reshape(-1, 3).astype(np.float64)
            band_facing = facing[start:start + _BAND].reshape(-1)
            ok = ~np.isnan(band[:, 0])
            points = band[ok]
            projected = points @ sun_matrix[:3, :3].T + sun_matrix[:3, 3]
            occluder = _bilinear(sun_depth, (projected[:, 0] + 1.0) / 2.0 * size - 0.5,
                                 (projected[:, 1] + 1.0) / 2.0 * size - 0.5)
            behind = (position - points) @ towards - (near + occluder * (far_plane - near))
            cosine = band_facing[ok]
            # Slope-scaled bias: across a texel, depth changes by tan(angle to the sun).
            slope = np.sqrt(np.clip(1.0 - cosine**2, 0.0, 1.0)) / np.maximum(cosine, 0.1)
            bias = SHADOWS.bias + SHADOWS.bias_texels * texel * (1.0 + slope)
            # Surfaces turned from the sun get no direct light anyway: the lit and the
            # sunless render agree there, so they need no test (grazing ones would flicker).
            shadowed = np.zeros(len(band), dtype=bool)
            shadowed[ok] = (cosine > SHADOWS.min_facing) & (behind > bias)
            mask[start:start + _BAND] = shadowed.reshape(-1, width)
        mask = mask[::-1]  # depth rows run bottom-up, image rows top-down
        frame.shadowed_fraction = float(mask.mean())
        frame.extra["shadow_texel_m"] = texel
        frame.extra["shadow_map_px"] = size

        self._lights(sun, sun_on=False)
        self._show_tiles(frame.selection, color_by, [])
        shade = self._screenshot()
        self._lights(sun)
        frame.image = np.where(mask[:, :, None], shade, frame.image)


_BAND = 128
"""Rows of pixels the shadow test handles at once (bounds its float64 temporaries)."""


def _unproject(depth: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """(H, W) depth buffer (0..1, row 0 at the bottom) -> (H, W, 3) float32 positions in the
    render frame (NaN where nothing was drawn); float64 arithmetic, a band at a time."""
    height, width = depth.shape
    world = np.full((height, width, 3), np.nan, dtype=np.float32)
    x = (2.0 * (np.arange(width) + 0.5) / width) - 1.0
    for start in range(0, height, _BAND):
        rows = depth[start:start + _BAND].astype(np.float64)
        y = (2.0 * (np.arange(start, start + len(rows)) + 0.5) / height) - 1.0
        ndc = np.stack(np.broadcast_arrays(x[None, :], y[:, None], 2.0 * rows - 1.0), axis=-1)
        points = ndc @ inverse[:3, :3].T + inverse[:3, 3]
        w = ndc @ inverse[3, :3] + inverse[3, 3]
        points = points / w[..., None]
        points[rows >= 1.0] = np.nan
        world[start:start + len(rows)] = points
    return world


def _extent(world: np.ndarray, axis: np.ndarray) -> tuple[float, float]:
    """Smallest and largest coordinate of the visible points along ``axis``."""
    lo, hi = math.inf, -math.inf
    for start in range(0, world.shape[0], _BAND):
        values = world[start:start + _BAND].reshape(-1, 3).astype(np.float64) @ axis
        values = values[~np.isnan(values)]
        if len(values):
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    return lo, hi


def _bilinear(grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``grid`` at fractional (column x, row y), clamped to the edges."""
    h, w = grid.shape
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
    fx, fy = x - x0, y - y0
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _facing_sun(world: np.ndarray, eye: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """(H, W) cosine between each visible point's surface normal and the sun direction;
    normals from the positions of neighbouring pixels (per axis the neighbour on the same
    surface: the one with the smaller jump), turned towards the camera. 1 where no normal can
    be had (a lone pixel), NaN for the sky."""

    def tangent(axis: int) -> np.ndarray:
        step = np.diff(world, axis=axis)  # (…, 3) differences to the next pixel
        pad = [(0, 0)] * 3
        pad[axis] = (0, 1)
        forward = np.pad(step, pad, constant_values=np.nan)
        pad[axis] = (1, 0)
        backward = np.pad(step, pad, constant_values=np.nan)
        f = np.einsum("ijk,ijk->ij", forward, forward)
        b = np.einsum("ijk,ijk->ij", backward, backward)
        use_forward = np.isnan(b) | (~np.isnan(f) & (f < b))
        return np.where(use_forward[:, :, None], forward, backward)

    normal = np.cross(tangent(1), tangent(0))
    length = np.sqrt(np.einsum("ijk,ijk->ij", normal, normal))
    ok = np.isfinite(length) & (length > 0)
    normal /= np.where(ok, length, 1.0)[:, :, None]
    toward_eye = np.einsum("ijk,ijk->ij", normal, eye.astype(np.float32) - world)
    facing = np.einsum("ijk,k->ij", normal, towards.astype(np.float32))
    facing = np.where(toward_eye < 0, -facing, facing)
    return np.where(ok, facing, np.where(np.isnan(world[:, :, 0]), np.nan, 1.0))


def _region_corners(scene: PublishedScene) -> np.ndarray:
    """(n, 3) points around the scene's region (lon/lat degrees, ellipsoidal heights) in the
    render frame, padded 100 m up for terrain and roofs above the stated heights."""
    west, south, east, north, low, high = scene.region
    lon, lat, h = np.meshgrid([west, (west + east) / 2, east], [south, (south + north) / 2, north],
                              [low - 10.0, high + 100.0], indexing="ij")
    ecef = geodetic_to_ecef(lon.ravel(), lat.ravel(), h.ravel())
    m = scene.ecef_to_frame
    return ecef @ m[:3, :3].T + m[:3, 3]
