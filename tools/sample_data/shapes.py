"""Building bodies as closed LoD2 shells: footprints, roofs and the walls between them.

Pure geometry. A body is built in a local frame (footprint counter-clockwise from the
origin, z = 0 at the ground) and placed with a rotation, a translation and a ground height.
Roofs are exact planar polygons; every footprint corner is a roof vertex, so each wall runs
from a footprint edge up to the roof outline above it (gable walls are pentagons) and the
shell is closed with outward-facing rings (ground clockwise seen from above, roofs and walls
counter-clockwise seen from outside), the way the M-V LoD2 tiles are built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# AdV roof type codes (Dachform)
FLAT, SHED, GABLE, HIP, PYRAMID, TOWER = "1000", "2100", "3100", "3200", "3500", "4000"

Point2 = tuple[float, float]
Point3 = tuple[float, float, float]


@dataclass(slots=True)
class Body:
    """One closed building body in its local frame."""

    footprint: list[Point2]
    """Counter-clockwise, z = 0."""
    roofs: list[list[Point3]]
    roof_type: str
    eaves: float

    @property
    def top(self) -> float:
        """Highest roof point above the ground."""
        return max(z for roof in self.roofs for _, _, z in roof)


def signed_area(ring: list[Point2] | list[Point3]) -> float:
    """Shoelace area in the xy plane (positive when counter-clockwise)."""
    total = 0.0
    for i in range(len(ring)):
        x1, y1 = ring[i][0], ring[i][1]
        x2, y2 = ring[(i + 1) % len(ring)][0], ring[(i + 1) % len(ring)][1]
        total += x1 * y2 - x2 * y1
    return total / 2.0


def _ccw(ring: list[Point3]) -> list[Point3]:
    return ring if signed_area(ring) > 0 else ring[::-1]


def rectangle(a: float, b: float, eaves: float, roof: str, pitch: float) -> Body:
    """An a × b body (a along x) with the roof's ridge along x; pitch in degrees.

    Hip roofs need a > b; pyramid (and tower) roofs suit a ≈ b; shed roofs rise along y.
    """
    fp: list[Point2] = [(0.0, 0.0), (a, 0.0), (a, b), (0.0, b)]
    h = eaves
    k = math.tan(math.radians(pitch))
    if roof == FLAT:
        roofs = [[(0.0, 0.0, h), (a, 0.0, h), (a, b, h), (0.0, b, h)]]
    elif roof == SHED:
        top = h + k * b
        roofs = [[(0.0, 0.0, h), (a, 0.0, h), (a, b, top), (0.0, b, top)]]
    elif roof == GABLE:
        r = h + k * b / 2.0
        m = b / 2.0
        roofs = [[(0.0, 0.0, h), (a, 0.0, h), (a, m, r), (0.0, m, r)],
                 [(0.0, m, r), (a, m, r), (a, b, h), (0.0, b, h)]]
    elif roof == HIP:
        if a <= b:
            raise ValueError(f"hip roof needs length > depth (got {a:.2f} x {b:.2f})")
        m = b / 2.0
        r = h + k * m
        roofs = [[(0.0, 0.0, h), (a, 0.0, h), (a - m, m, r), (m, m, r)],
                 [(a, 0.0, h), (a, b, h), (a - m, m, r)],
                 [(a, b, h), (0.0, b, h), (m, m, r), (a - m, m, r)],
                 [(0.0, b, h), (0.0, 0.0, h), (m, m, r)]]
    elif roof in (PYRAMID, TOWER):
        apex = (a / 2.0, b / 2.0, h + k * min(a, b) / 2.0)
        corners = [(0.0, 0.0, h), (a, 0.0, h), (a, b, h), (0.0, b, h)]
        roofs = [[corners[i], corners[(i + 1) % 4], apex] for i in range(4)]
    else:
        raise ValueError(f"unknown roof type {roof}")
    return Body(fp, [_ccw(r) for r in roofs], roof, eaves)


def l_shape(a: float, length: float, w: float, eaves: float, roof: str, pitch: float) -> Body:
    """An L of two wings of equal width ``w``: one along x (length ``a``), one along y
    (length ``length``), meeting at the origin corner. Gable and hip roofs meet in true
    valleys and hips (equal widths and pitches)."""
    fp: list[Point2] = [(0.0, 0.0), (a, 0.0), (a, w), (w, w), (w, length), (0.0, length)]
    h = eaves
    if roof == FLAT:
        return Body(fp, [[(x, y, h) for x, y in fp]], roof, eaves)
    k = math.tan(math.radians(pitch))
    m = w / 2.0
    r = h + k * m
    if roof == GABLE:
        roofs = [[(0.0, 0.0, h), (a, 0.0, h), (a, m, r), (m, m, r)],
                 [(a, m, r), (a, w, h), (w, w, h), (m, m, r)],
                 [(0.0, 0.0, h), (m, m, r), (m, length, r), (0.0, length, h)],
                 [(m, m, r), (w, w, h), (w, length, h), (m, length, r)]]
    elif roof == HIP:
        roofs = [[(0.0, 0.0, h), (a, 0.0, h), (a - m, m, r), (m, m, r)],
                 [(a, 0.0, h), (a, w, h), (a - m, m, r)],
                 [(a - m, m, r), (a, w, h), (w, w, h), (m, m, r)],
                 [(0.0, 0.0, h), (m, m, r), (m, length - m, r), (0.0, length, h)],
                 [(0.0, length, h), (m, length - m, r), (w, length, h)],
                 [(m, m, r), (w, w, h), (w, length, h), (m, length - m, r)]]
    else:
        raise ValueError(f"L-shaped bodies take flat, gable or hip roofs, not {roof}")
    return Body(fp, [_ccw(x) for x in roofs], roof, eaves)


def walls(body: Body) -> list[list[Point3]]:
    """One wall per footprint edge, its top following the roof outline along that edge."""
    vertices = {v for roof in body.roofs for v in roof}
    out = []
    fp = body.footprint
    for i in range(len(fp)):
        p, q = fp[i], fp[(i + 1) % len(fp)]
        dx, dy = q[0] - p[0], q[1] - p[1]
        l2 = dx * dx + dy * dy
        on: dict[float, Point3] = {}
        for x, y, z in sorted(vertices):
            t = ((x - p[0]) * dx + (y - p[1]) * dy) / l2
            if -1e-9 <= t <= 1.0 + 1e-9:
                ex, ey = p[0] + t * dx - x, p[1] + t * dy - y
                if ex * ex + ey * ey < 1e-12:
                    on[round(t, 9)] = (x, y, z)
        ts = sorted(on, reverse=True)
        if not ts or ts[0] != 1.0 or ts[-1] != 0.0:
            raise ValueError("the roof does not cover a footprint corner")
        out.append([(p[0], p[1], 0.0), (q[0], q[1], 0.0)] + [on[t] for t in ts])
    return out


def surfaces(body: Body) -> list[tuple[str, list[Point3]]]:
    """(CityGML boundary surface class, ring) of the closed shell, in the local frame."""
    out: list[tuple[str, list[Point3]]] = [
        ("GroundSurface", [(x, y, 0.0) for x, y in body.footprint[::-1]])]
    out += [("WallSurface", w) for w in walls(body)]
    out += [("RoofSurface", r) for r in body.roofs]
    return out


@dataclass(frozen=True, slots=True)
class Placement:
    """Local frame → world: rotate by ``angle`` (radians, counter-clockwise), then move the
    local origin to (e, n) and the ground to height z."""

    e: float
    n: float
    z: float
    angle: float

    def xy(self, points: FloatArray) -> FloatArray:
        """Local (k, 2+) → world (k, 2)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        x, y = points[:, 0], points[:, 1]
        return np.column_stack([self.e + x * c - y * s, self.n + x * s + y * c])

    def ring(self, ring: list[Point3]) -> FloatArray:
        """A local ring → world (k, 3), rounded to millimetres as written."""
        return self.rings([ring])[0]

    def rings(self, rings: list[list[Point3]]) -> list[FloatArray]:
        """Local rings → world (k, 3) arrays, rounded to millimetres as written."""
        local = np.asarray([p for ring in rings for p in ring], dtype=np.float64)
        out = np.empty_like(local)
        out[:, :2] = self.xy(local)
        out[:, 2] = self.z + local[:, 2]
        out = np.round(out, 3)
        bounds = np.cumsum([0] + [len(ring) for ring in rings])
        return [out[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def centred(body: Body) -> tuple[float, float]:
    """Centre of the footprint's bounding box in the local frame."""
    xs = [x for x, _ in body.footprint]
    ys = [y for _, y in body.footprint]
    return (min(xs) + max(xs)) / 2.0, (min(ys) + max(ys)) / 2.0


def plane(ring: FloatArray) -> tuple[float, float, float] | None:
    """(a, b, c) with z = a·x + b·y + c through a roof ring; None for vertical rings.

    x and y are taken relative to the ring's first point so that the coefficients stay
    well-conditioned at UTM magnitudes: evaluate as a·(x - x0) + b·(y - y0) + c.
    """
    p = ring - ring[0]
    nx = np.sum((p[:, 1] - np.roll(p[:, 1], -1)) * (p[:, 2] + np.roll(p[:, 2], -1)))
    ny = np.sum((p[:, 2] - np.roll(p[:, 2], -1)) * (p[:, 0] + np.roll(p[:, 0], -1)))
    nz = np.sum((p[:, 0] - np.roll(p[:, 0], -1)) * (p[:, 1] + np.roll(p[:, 1], -1)))
    if abs(nz) < 1e-9 * max(1.0, math.sqrt(nx * nx + ny * ny + nz * nz)):
        return None
    return (-nx / nz, -ny / nz, float(ring[0, 2]))
