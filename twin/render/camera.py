"""Cameras: from a tour stop or given explicitly in EPSG:25833 + DHHN2016, placed in the
scene's east-north-up render frame, with the projection the renderer uses.

Angles follow CesiumJS, so a render matches the web viewer at the same stop: heading in
degrees clockwise from *true* north in the east-north-up frame at the camera (not grid
north: UTM's grid north differs by the meridian convergence, about 0.9° at Rostock), pitch
in degrees (negative looks down), roll about the view direction. ``fov`` is CesiumJS's
``PerspectiveFrustum.fov``: the angle across the wider side of the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from twin.crs import enu_to_ecef_matrix
from twin.errors import InputError
from twin.readers.tileset import ViewFrustum
from twin.render.scene import PublishedScene, TourStop

__all__ = [
    "CameraSpec",
    "PlacedCamera",
    "check_above_terrain",
    "place_camera",
]

FloatArray = npt.NDArray[np.float64]

TERRAIN_CLEARANCE = 0.5
"""A camera must be at least this far (m) above the terrain under it."""
DEFAULT_FOCAL_DISTANCE = 200.0
"""Focal distance (m) of a camera given by angles only (scale bar, north arrow)."""


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """A camera in EPSG:25833 + DHHN2016: a position and either a look-at point or angles."""

    position: tuple[float, float, float]
    look_at: tuple[float, float, float] | None = None
    heading: float | None = None
    pitch: float | None = None
    roll: float = 0.0
    fov: float = 60.0
    label: str = "camera"
    """How messages name it ("--camera", "tour stop 3 of scene warnowbruecke")."""

    @classmethod
    def from_stop(cls, scene_id: str, stop: TourStop) -> CameraSpec:
        """The stop's camera as CesiumJS flies to it: position, heading, pitch, roll, fov."""
        return cls(
            position=stop.position,
            look_at=stop.look_at,
            heading=stop.heading,
            pitch=stop.pitch,
            roll=stop.roll,
            fov=stop.fov,
            label=f"tour stop {stop.number} ({stop.id}) of scene {scene_id!r}",
        )

    def __post_init__(self) -> None:
        if not 1.0 <= self.fov <= 150.0:
            raise InputError(f"{self.label}: field of view {self.fov:g}° is not in 1..150°")
        if self.look_at is None and (self.heading is None or self.pitch is None):
            raise InputError(f"{self.label}: needs a look-at point or heading and pitch")
        if self.look_at is not None and self.heading is None:
            gap = np.subtract(self.look_at, self.position)
            if float(np.linalg.norm(gap)) < 0.01:
                raise InputError(f"{self.label}: the look-at point is the camera position")


@dataclass(frozen=True, slots=True)
class PlacedCamera:
    """A camera in the render frame (metres, east-north-up at the scene centre)."""

    position: FloatArray
    direction: FloatArray
    """Unit view direction."""
    up: FloatArray
    """Unit up vector, perpendicular to ``direction``."""
    focal_distance: float
    fov: float
    """Degrees across the wider side of the image (CesiumJS's ``fov``)."""

    @property
    def focal_point(self) -> FloatArray:
        return self.position + self.direction * self.focal_distance

    @property
    def right(self) -> FloatArray:
        right = np.cross(self.direction, self.up)
        return right / np.linalg.norm(right)

    def fov_y(self, width: int, height: int) -> float:
        """Vertical field of view in degrees for an image of this size."""
        if height >= width:
            return self.fov
        half = math.radians(self.fov) / 2.0
        return math.degrees(2.0 * math.atan(math.tan(half) * height / width))

    def project(self, points: npt.ArrayLike, width: int, height: int) -> tuple[
        FloatArray, FloatArray
    ]:
        """(n, 3) frame points -> (n, 2) pixel positions (x right, y down, pixel centres at
        .5) and (n,) depths along the view direction (<= 0: behind the camera)."""
        rel = np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.position
        depth = rel @ self.direction
        tan_y = math.tan(math.radians(self.fov_y(width, height)) / 2.0)
        tan_x = tan_y * width / height
        safe = np.where(np.abs(depth) > 1e-9, depth, 1e-9)
        ndc_x = (rel @ self.right) / (safe * tan_x)
        ndc_y = (rel @ self.up) / (safe * tan_y)
        pixels = np.column_stack([(ndc_x + 1.0) / 2.0 * width, (1.0 - ndc_y) / 2.0 * height])
        return pixels, depth

    def frustum(self, frame_to_ecef: FloatArray, width: int, height: int) -> ViewFrustum:
        """The camera in ECEF, as tile selection needs it."""
        rotation = frame_to_ecef[:3, :3]
        return ViewFrustum(
            position=rotation @ self.position + frame_to_ecef[:3, 3],
            direction=rotation @ self.direction,
            up=rotation @ self.up,
            fov_y=math.radians(self.fov_y(width, height)),
            aspect=width / height,
            height_px=height,
        )


def _enu_basis(scene: PublishedScene, ecef: FloatArray) -> FloatArray:
    """3x3 whose columns are east, north, up at ``ecef``, expressed in the render frame."""
    to_frame = scene.ecef_to_frame[:3, :3]
    return to_frame @ enu_to_ecef_matrix(ecef)[:3, :3]


def place_camera(scene: PublishedScene, spec: CameraSpec) -> PlacedCamera:
    """The camera in the scene's render frame."""
    points = [spec.position] + ([spec.look_at] if spec.look_at is not None else [])
    ecef = scene.transformer.to_ecef(np.asarray(points, dtype=np.float64))
    m = scene.ecef_to_frame
    frame = ecef @ m[:3, :3].T + m[:3, 3]
    position = frame[0]
    basis = _enu_basis(scene, ecef[0])
    if spec.heading is not None and spec.pitch is not None:
        h, p = math.radians(spec.heading), math.radians(spec.pitch)
        direction = basis @ np.array([math.sin(h) * math.cos(p), math.cos(h) * math.cos(p),
                                      math.sin(p)])
        up = basis @ np.array([-math.sin(h) * math.sin(p), -math.cos(h) * math.sin(p),
                               math.cos(p)])
        focal = (float(np.linalg.norm(frame[1] - position)) if spec.look_at is not None
                 else DEFAULT_FOCAL_DISTANCE)
    else:
        offset = frame[1] - position
        focal = float(np.linalg.norm(offset))
        direction = offset / focal
        up = basis[:, 2]
        if abs(float(direction @ up)) > 0.9999:
            # Looking straight down (or up): north is up in the image.
            up = basis[:, 1]
        up = up - direction * float(up @ direction)
        up /= np.linalg.norm(up)
    if spec.roll:
        r = math.radians(spec.roll)
        right = np.cross(direction, up)
        up = up * math.cos(r) + right * math.sin(r)
    direction = direction / np.linalg.norm(direction)
    up = up / np.linalg.norm(up)
    return PlacedCamera(position, direction, up, max(focal, 1.0), spec.fov)


def check_above_terrain(scene: PublishedScene, spec: CameraSpec) -> None:
    """InputError when the camera is inside (or within 0.5 m of) the terrain."""
    grid = scene.heights
    if grid is None:
        return
    e, n, h = spec.position
    ground = float(grid.sample(np.array([e]), np.array([n]))[0])
    if math.isnan(ground) or h >= ground + TERRAIN_CLEARANCE:
        return
    gap = abs(h - ground)
    relation = f"{gap:.1f} m below" if h < ground else f"only {gap:.1f} m above"
    raise InputError(
        f"{spec.label}: the camera at E {e:.1f} N {n:.1f} H {h:.1f} m is {relation} the terrain "
        f"({ground:.1f} m DHHN2016 there): place it at least {TERRAIN_CLEARANCE} m above the "
        "ground"
    )
