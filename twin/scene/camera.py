"""Camera resolution: a tour stop's camera as the CesiumJS-ready camera of tour.json.

A scene file gives a camera either as a position (E, N, H) with heading and pitch, or as a
target (``look_at``) seen from a distance with heading and pitch. Headings are clockwise from
*true* north, as CesiumJS measures them in the east-north-up frame at a point. In EPSG:25833
grid north is not true north: at Rostock, west of the zone's central meridian (15° E), the two
differ by the meridian convergence, about −2.3°. Aiming in grid coordinates with a true
heading would miss a target 1 km away by about 40 m.

So the view ray is built where heading and pitch are defined — in the local east-north-up
frame on the WGS 84/ETRS89 ellipsoid — and followed in ECEF; grid coordinates and DHHN2016
heights come back through the scene's vertical model (twin.crs: EGM96 by default, a GCG2016
grid when given). The convergence is then handled exactly rather than by a correction angle,
and the camera's heading and pitch are re-measured in its own frame (where CesiumJS applies
them), so the target sits exactly in the centre of the view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.crs import (
    EcefTransformer,
    ecef_to_geodetic,
    ecef_transformer,
    enu_to_ecef_matrix,
    parse_srs_name,
)
from twin.scene.definition import Camera

SCENE_CRS = "EPSG:25833+7837"
"""Scene coordinates: ETRS89 / UTM 33N with DHHN2016 normal heights (LAiV M-V's CRS)."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CameraDefaults:
    """How a position camera's look-at point is found, and how tour.json rounds numbers."""

    look_at_level: float = 0.0
    """DHHN2016 height (m) where a position camera's view ray ends: the Warnow's water level,
    the lowest ground of the scenes. The terrain itself is not known when tours are resolved."""
    max_look_distance: float = 5000.0
    """Rays that do not reach that level within this distance (m) end here instead."""
    level_tolerance: float = 1e-4
    """The ray's end lies within this height (m) of the level."""
    metres_decimals: int = 2
    degrees_decimals: int = 7
    """Longitude/latitude: 1e-7° is about 1 cm at Rostock."""
    angle_decimals: int = 4
    """Heading, pitch, fov: 1e-4° is under 1 cm at 5 km."""


CAMERA = CameraDefaults()


@dataclass(frozen=True, slots=True)
class ResolvedCamera:
    """A camera as tour.json publishes it (docs/scenes.md, "tour.json")."""

    position: tuple[float, float, float]
    """EPSG:25833 easting, northing and DHHN2016 height (m)."""
    look_at: tuple[float, float, float]
    """The point in the centre of the view, EPSG:25833 + DHHN2016."""
    longitude: float
    latitude: float
    height: float
    """Ellipsoidal height (m) of the camera, in the scene's vertical model."""
    heading: float
    """Degrees clockwise from true north, in [0, 360), measured at the camera."""
    pitch: float
    """Degrees, negative looks down, measured at the camera."""
    roll: float
    fov: float
    """Degrees across the wider side of the view (CesiumJS' ``PerspectiveFrustum.fov``)."""

    def to_json(self) -> dict[str, Any]:
        """The tour.json camera: rounded (0.01 m, 1e-7°, 1e-4° for angles), keys sorted."""
        metres, angle = CAMERA.metres_decimals, CAMERA.angle_decimals
        heading = _clean(round(self.heading, angle))
        return {
            "fov": _clean(round(self.fov, angle)),
            "heading": 0.0 if heading >= 360.0 else heading,
            "height": _clean(round(self.height, metres)),
            "latitude": _clean(round(self.latitude, CAMERA.degrees_decimals)),
            "longitude": _clean(round(self.longitude, CAMERA.degrees_decimals)),
            "look_at": [_clean(round(v, metres)) for v in self.look_at],
            "pitch": _clean(round(self.pitch, angle)),
            "position": [_clean(round(v, metres)) for v in self.position],
            "roll": _clean(round(self.roll, angle)),
        }


def scene_transformer(geoid: Path | str | None = None) -> EcefTransformer:
    """Scene coordinates (EPSG:25833 + DHHN2016) to ECEF; EGM96 unless a geoid grid is given."""
    return ecef_transformer(parse_srs_name(SCENE_CRS), geoid)


def view_direction(heading: float, pitch: float) -> FloatArray:
    """Unit view vector in east-north-up for a heading (clockwise from north) and a pitch."""
    h, p = math.radians(heading), math.radians(pitch)
    return np.array([math.sin(h) * math.cos(p), math.cos(h) * math.cos(p), math.sin(p)])


def heading_pitch(direction_enu: FloatArray) -> tuple[float, float]:
    """Heading (degrees in [0, 360)) and pitch of an east-north-up direction."""
    east, north, up = (float(v) for v in direction_enu / np.linalg.norm(direction_enu))
    heading = math.degrees(math.atan2(east, north)) % 360.0
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, up))))
    return heading, pitch


def resolve_camera(camera: Camera, vertical: EcefTransformer) -> ResolvedCamera:
    """A stop camera as published: grid and geographic position, angles at the camera."""
    if camera.look_at is not None:
        assert camera.distance is not None
        look_at = np.asarray(camera.look_at, dtype=np.float64)
        target_ecef = vertical.to_ecef(look_at[None, :])[0]
        # CesiumJS' lookAt(target, HeadingPitchRange) measures the angles at the target.
        direction = _enu_rotation(target_ecef) @ view_direction(camera.heading, camera.pitch)
        position_ecef = target_ecef - camera.distance * direction
        position = vertical.from_ecef(position_ecef[None, :])[0]
        heading, pitch = heading_pitch(_enu_rotation(position_ecef).T @ direction)
        if abs(camera.pitch) > 89.99:
            # Straight down: the direction has no heading; the given one turns the view.
            heading = camera.heading % 360.0
    else:
        assert camera.position is not None
        position = np.asarray(camera.position, dtype=np.float64)
        position_ecef = vertical.to_ecef(position[None, :])[0]
        direction = _enu_rotation(position_ecef) @ view_direction(camera.heading, camera.pitch)
        target_ecef = _ray_to_level(position_ecef, direction, vertical)
        look_at = vertical.from_ecef(target_ecef[None, :])[0]
        heading, pitch = camera.heading % 360.0, camera.pitch
    lon, lat, height = ecef_to_geodetic(position_ecef)
    return ResolvedCamera(
        position=_triple(position),
        look_at=_triple(look_at),
        longitude=float(lon),
        latitude=float(lat),
        height=float(height),
        heading=heading,
        pitch=pitch,
        roll=0.0,
        fov=float(camera.fov),
    )


def _enu_rotation(origin_ecef: FloatArray) -> FloatArray:
    """3x3 rotation taking east-north-up at the point to ECEF directions."""
    return enu_to_ecef_matrix(origin_ecef)[:3, :3]


def _ray_to_level(
    start: FloatArray, direction: FloatArray, vertical: EcefTransformer
) -> FloatArray:
    """Where the ray from ``start`` meets the look-at level, or its end at the maximum distance."""
    start_height = float(vertical.from_ecef(start[None, :])[0, 2])
    drop = start_height - CAMERA.look_at_level
    # Height changes along the ray by about up·t (the ENU up component), less the Earth's
    # curvature; Newton steps with that slope converge in two or three rounds.
    slope = float(direction @ _enu_rotation(start)[:, 2])
    if drop <= 0.0 or slope >= 0.0 or drop / -slope > CAMERA.max_look_distance:
        return start + CAMERA.max_look_distance * direction
    distance = drop / -slope
    for _ in range(20):
        point = start + distance * direction
        error = float(vertical.from_ecef(point[None, :])[0, 2]) - CAMERA.look_at_level
        if abs(error) < CAMERA.level_tolerance:
            break
        distance = min(distance - error / slope, CAMERA.max_look_distance)
    return start + distance * direction


def _triple(values: FloatArray) -> tuple[float, float, float]:
    return float(values[0]), float(values[1]), float(values[2])


def _clean(value: float) -> float:
    # -0.0 prints as "-0.0": the same number must always give the same bytes.
    return value + 0.0
