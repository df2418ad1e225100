"""Planner renders of a published scene: one view, today against planned side by side, a
day of sun positions, a flythrough along the tour; with labels, legend, scale bar, north
arrow and the scene's attributions."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from twin.crs import enu_to_ecef_matrix
from twin.errors import InputError
from twin.render.annotate import Annotations, annotate, attribution
from twin.render.camera import CameraSpec, PlacedCamera, check_above_terrain, place_camera
from twin.render.overlays import overlay_geometry
from twin.render.renderer import Frame, SceneRenderer
from twin.render.scene import PublishedScene, TourStop
from twin.render.style import COLOR_BY, HIGHLIGHT_RGB, OVERLAY_STATUS_RGB, LegendEntry, text
from twin.render.style import classify as classify_values
from twin.render.sun import (
    LOCAL_TIME,
    SunPosition,
    day_series,
    require_daylight,
    sun_position,
)
from twin.writers.image import write_gif, write_mp4, write_png

__all__ = [
    "OVERLAY_MODES",
    "RenderOptions",
    "View",
    "flythrough",
    "render_view",
    "sun_series",
    "view_for",
]

OVERLAY_MODES = ("draped", "extruded", "off")
MAX_PIXELS = 8192 * 8192
DIFFERENCE_THRESHOLD = 24
"""A pixel changes when a colour channel differs by more than this between epochs."""
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """What to render and how (the command line's options)."""

    size: tuple[int, int] = (1920, 1080)
    epoch: str | None = None
    """None: the stop's epoch, else the scene's default."""
    compare: tuple[str, str] | None = None
    difference: bool = False
    sun: dt.datetime | None = None
    color_by: str | None = None
    overlays: str = "draped"
    overlay_height: float = 20.0
    highlight: tuple[str, ...] | None = None
    """Overlay features to highlight; None: the stop's."""
    language: str = "de"
    max_screen_space_error: float = 16.0
    annotations: bool = True

    def check(self, scene: PublishedScene) -> None:
        """InputError for options the scene cannot satisfy."""
        width, height = self.size
        if width < 16 or height < 16 or width * height > MAX_PIXELS:
            raise InputError(f"--size {width}x{height}: give 16x16 up to 8192x8192 pixels")
        for epoch in ([self.epoch] if self.epoch else []) + list(self.compare or ()):
            scene.epoch(epoch)
        if self.compare is not None and self.compare[0] == self.compare[1]:
            raise InputError(f"--compare {','.join(self.compare)}: name two different epochs")
        if self.color_by is not None and self.color_by not in COLOR_BY:
            raise InputError(f"--color-by {self.color_by!r}: use one of {', '.join(COLOR_BY)}")
        if self.overlays not in OVERLAY_MODES:
            raise InputError(f"--overlays {self.overlays!r}: use one of {', '.join(OVERLAY_MODES)}")
        if self.language not in ("de", "en"):
            raise InputError(f"--lang {self.language!r}: use de or en")
        if not self.max_screen_space_error > 0:
            raise InputError("--max-sse must be a positive number of pixels")


@dataclass(frozen=True, slots=True)
class View:
    """A camera of a scene, maybe a tour stop's."""

    spec: CameraSpec
    stop: TourStop | None = None


def view_for(scene: PublishedScene, stop: str | None, spec: CameraSpec | None) -> View:
    """The view of ``--stop`` (number or id) or an explicit camera, checked against the
    terrain."""
    if stop is not None:
        tour_stop = scene.stop(stop)
        view = View(CameraSpec.from_stop(scene.id, tour_stop), tour_stop)
    elif spec is not None:
        view = View(spec)
    else:
        raise InputError("give a tour stop (--stop SCENE:N) or a camera (--camera/--look-at)")
    check_above_terrain(scene, view.spec)
    return view


def _scene_lon_lat(scene: PublishedScene) -> tuple[float, float]:
    west, south, east, north = scene.region[:4]
    return (west + east) / 2.0, (south + north) / 2.0


def sun_at(scene: PublishedScene, when: dt.datetime) -> SunPosition:
    """The sun over the scene's centre at ``when``; InputError at night."""
    lon, lat = _scene_lon_lat(scene)
    position = sun_position(lon, lat, when)
    require_daylight(position, lon, lat)
    return position


def _epochs(scene: PublishedScene, view: View, options: RenderOptions) -> list[str]:
    if options.compare is not None:
        return list(options.compare)
    chosen = options.epoch or (view.stop.epoch if view.stop else None) or scene.default_epoch
    return [scene.epoch(chosen).id]


def _north(scene: PublishedScene, camera: PlacedCamera, width: int, height: int) -> tuple[
    float, float
] | None:
    """Screen direction of true north at the focal point."""
    frame_to_ecef = np.linalg.inv(scene.ecef_to_frame)
    focal = camera.focal_point
    ecef = frame_to_ecef[:3, :3] @ focal + frame_to_ecef[:3, 3]
    north = scene.ecef_to_frame[:3, :3] @ enu_to_ecef_matrix(ecef)[:3, 1]
    pixels, depth = camera.project(np.array([focal, focal + north * 5.0]), width, height)
    if (depth <= 0).any():
        return None
    dx, dy = pixels[1] - pixels[0]
    if math.hypot(dx, dy) < 1e-6:
        return None
    return float(dx), float(dy)


def _metres_per_pixel(camera: PlacedCamera, width: int, height: int) -> float:
    fov_y = math.radians(camera.fov_y(width, height))
    return 2.0 * camera.focal_distance * math.tan(fov_y / 2.0) / height


def _sun_line(sun: SunPosition, language: str) -> str:
    local = sun.time.astimezone(LOCAL_TIME)
    stamp = f"{local:%d.%m.%Y %H:%M}" if language == "de" else f"{local:%Y-%m-%d %H:%M}"
    return (f"{text('sun', language)}: {stamp} {local:%Z} · {text('azimuth', language)} "
            f"{sun.azimuth:.0f}° · {text('elevation', language)} {sun.elevation:.0f}°")


def _legend(scene: PublishedScene, options: RenderOptions, overlays_drawn: tuple[list[str], bool]
            ) -> tuple[str | None, list[LegendEntry]]:
    language = options.language
    entries: list[LegendEntry] = []
    title = None
    if options.color_by is not None:
        _, entries = classify_values(options.color_by, [], language)
        title = text(options.color_by, language)
    statuses, highlighted = overlays_drawn
    projects = text("overlays", language)
    extra = [LegendEntry(OVERLAY_STATUS_RGB[s], f"{projects}: {text(s, language)}")
             for s in statuses]
    if highlighted:
        extra.append(LegendEntry(HIGHLIGHT_RGB, f"{projects}: {text('highlight', language)}"))
    if extra:
        title = title or text("overlays", language)
        entries = entries + extra
    return title, entries


class Session:
    """A renderer for one scene and size with its overlays set up, for any number of views."""

    def __init__(self, scene: PublishedScene, options: RenderOptions) -> None:
        options.check(scene)
        self.scene = scene
        self.options = options
        self.renderer = SceneRenderer(scene, *options.size, language=options.language,
                                      max_screen_space_error=options.max_screen_space_error)
        self.overlays_drawn: tuple[list[str], bool] = ([], False)
        self.last_frames: list[Frame] = []
        """The raw renders behind the last ``image`` (tiles drawn, shadow statistics)."""

    def close(self) -> None:
        self.renderer.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def use_overlays(self, highlight: tuple[str, ...]) -> None:
        """Draw the scene's overlays (as the options say) with these features highlighted."""
        mode = self.options.overlays
        key = (mode, self.options.overlay_height, highlight)
        if mode == "off":
            self.renderer.set_overlays(key, None)
            self.overlays_drawn = ([], False)
            return
        if key == self.renderer.overlay_key:
            return
        geometry = overlay_geometry(self.scene, mode, self.options.overlay_height, highlight)
        self.renderer.set_overlays(key, geometry)
        self.overlays_drawn = (geometry.statuses, geometry.highlighted)

    def frames(self, view: View, sun: SunPosition | None) -> tuple[list[tuple[str, Frame]],
                                                                  PlacedCamera]:
        """The raw renders of a view, one per epoch asked for."""
        options = self.options
        highlight = options.highlight if options.highlight is not None else (
            view.stop.highlight if view.stop else ())
        self.use_overlays(tuple(highlight))
        camera = place_camera(self.scene, view.spec)
        rendered = []
        for epoch_id in _epochs(self.scene, view, options):
            epoch = self.scene.epoch(epoch_id)
            rendered.append((epoch_id, self.renderer.render(
                camera, epoch, color_by=options.color_by, sun=sun)))
        return rendered, camera

    def image(self, view: View, sun: SunPosition | None = None) -> np.ndarray:
        """The finished image of a view: panels, labels, legend, scale, north, credits."""
        options = self.options
        language = options.language
        width, height = options.size
        rendered, camera = self.frames(view, sun)
        self.last_frames = [frame for _, frame in rendered]
        compare = options.compare is not None
        panels = []
        notes_common = {}
        if options.annotations:
            legend_title, legend = _legend(self.scene, options, self.overlays_drawn)
            notes_common = {
                "legend_title": legend_title,
                "legend": legend,
                "metres_per_pixel": _metres_per_pixel(camera, width, height),
                "north": _north(self.scene, camera, width, height),
                "language": language,
            }
        scene_title = self.scene.title.get(language) or self.scene.id
        for epoch_id, frame in rendered:
            image = frame.image
            if options.annotations:
                epoch_title = self.scene.epoch(epoch_id).title.get(language) or epoch_id
                lines = []
                if compare:
                    title = epoch_title
                    lines.append(scene_title)
                else:
                    title = scene_title
                    lines.append(epoch_title)
                if view.stop is not None:
                    lines.append(f"{view.stop.number}. "
                                 f"{view.stop.title.get(language) or view.stop.id}")
                if sun is not None:
                    lines.append(_sun_line(sun, language))
                image = annotate(image, Annotations(title=title, lines=lines, **notes_common))
            panels.append(image)
        if compare and options.difference:
            before, after = rendered[0][1].image, rendered[1][1].image
            panel = difference_panel(before, after)
            if options.annotations:
                panel = annotate(panel, Annotations(
                    title=text("changes", language), lines=[
                        f"{self.scene.epoch(rendered[0][0]).title.get(language, rendered[0][0])}"
                        f" → {self.scene.epoch(rendered[1][0]).title.get(language, rendered[1][0])}"
                    ], language=language))
            panels.append(panel)
        image = np.hstack(panels) if len(panels) > 1 else panels[0]
        for k in range(1, len(panels)):
            image[:, k * width - 1: k * width + 1] = 255
        if options.annotations:
            image = attribution(image, self.scene.attributions)
        return np.ascontiguousarray(image)


def difference_panel(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``after`` faded to grey with every changed pixel in magenta."""
    changed = (np.abs(before.astype(np.int16) - after.astype(np.int16)).max(axis=2)
               > DIFFERENCE_THRESHOLD)
    grey = after.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    faded = (150.0 + grey * 0.4).astype(np.uint8)
    panel = np.repeat(faded[:, :, None], 3, axis=2)
    panel[changed] = HIGHLIGHT_RGB
    return panel


def render_view(scene: PublishedScene, view: View, options: RenderOptions, out: Path) -> Path:
    """Render one image (or one comparison) to ``out`` (PNG)."""
    _check_png(out)
    sun = sun_at(scene, options.sun) if options.sun is not None else None
    with Session(scene, options) as session:
        image = session.image(view, sun)
    write_png(out, image)
    return out


def _check_png(out: Path) -> None:
    if out.suffix.lower() != ".png":
        raise InputError(f"--out {out}: renders are PNG files; name it *.png")
    if not out.parent.is_dir():
        raise InputError(f"--out {out}: folder {out.parent} does not exist")


def series_path(out: Path, when: dt.datetime) -> Path:
    """``schatten.png`` at 15:00 local time -> ``schatten-1500.png``."""
    local = when.astimezone(LOCAL_TIME)
    return out.with_name(f"{out.stem}-{local:%H%M}{out.suffix}")


def sun_series(
    scene: PublishedScene,
    view: View,
    options: RenderOptions,
    positions: list[SunPosition],
    out: Path,
    progress: Progress | None = None,
) -> list[Path]:
    """One image per sun position, named by local time (see ``series_path``)."""
    _check_png(out)
    written = []
    with Session(scene, options) as session:
        for position in positions:
            path = series_path(out, position.time)
            write_png(path, session.image(view, position))
            written.append(path)
            if progress is not None:
                progress(1)
    return written


# --- flythrough -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlightPlan:
    """Timing of a flythrough."""

    transition: float = 4.0
    """Seconds of flight between two stops."""
    hold: float = 1.5
    """Seconds the camera rests at each stop."""


def _smoothstep(t: float) -> float:
    return t * t * (3.0 - 2.0 * t)


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    dot = float(np.clip(a @ b, -1.0, 1.0))
    angle = math.acos(dot)
    if angle < 1e-6:
        return a
    result = (math.sin((1 - t) * angle) * a + math.sin(t * angle) * b) / math.sin(angle)
    return result / np.linalg.norm(result)


def flight_cameras(
    scene: PublishedScene, stops: list[TourStop], fps: float, plan: FlightPlan
) -> Iterator[PlacedCamera]:
    """Cameras along the tour: rest at each stop, eased flight to the next; never below the
    terrain (a frame that would dip under it is lifted)."""
    placed = [place_camera(scene, CameraSpec.from_stop(scene.id, s)) for s in stops]
    hold = max(1, round(plan.hold * fps))
    steps = max(2, round(plan.transition * fps))
    grid = scene.heights
    frame_to_ecef = np.linalg.inv(scene.ecef_to_frame)

    def lifted(camera: PlacedCamera) -> PlacedCamera:
        if grid is None:
            return camera
        ecef = frame_to_ecef[:3, :3] @ camera.position + frame_to_ecef[:3, 3]
        e, n, h = scene.transformer.from_ecef(ecef[None, :])[0]
        ground = float(grid.sample(np.array([e]), np.array([n]))[0])
        if math.isnan(ground) or h >= ground + 2.0:
            return camera
        up = scene.ecef_to_frame[:3, :3] @ (ecef / np.linalg.norm(ecef))
        return replace(camera, position=camera.position + up * (ground + 2.0 - h))

    for index, camera in enumerate(placed):
        for _ in range(hold):
            yield camera
        if index + 1 == len(placed):
            break
        target = placed[index + 1]
        for step in range(1, steps):
            t = _smoothstep(step / steps)
            direction = _slerp(camera.direction, target.direction, t)
            up = camera.up * (1 - t) + target.up * t
            up = up - direction * float(up @ direction)
            up /= np.linalg.norm(up)
            yield lifted(PlacedCamera(
                position=camera.position * (1 - t) + target.position * t,
                direction=direction,
                up=up,
                focal_distance=camera.focal_distance * (1 - t) + target.focal_distance * t,
                fov=camera.fov * (1 - t) + target.fov * t,
            ))


def flythrough(
    scene: PublishedScene,
    options: RenderOptions,
    out: Path,
    fps: float | None = None,
    plan: FlightPlan | None = None,
    progress: Progress | None = None,
) -> int:
    """An animated GIF or MP4 along the tour's stops; returns the number of frames."""
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise InputError(f"--flythrough {out}: name it *.gif or *.mp4")
    if not out.parent.is_dir():
        raise InputError(f"--flythrough {out}: folder {out.parent} does not exist")
    if options.compare is not None:
        raise InputError("--flythrough shows one epoch: use --epoch, not --compare")
    stops = scene.stops
    if len(stops) < 2:
        raise InputError(f"scene {scene.id!r}: a flythrough needs a tour with two stops or more")
    for stop in stops:
        check_above_terrain(scene, CameraSpec.from_stop(scene.id, stop))
    fps = fps or (10.0 if suffix == ".gif" else 25.0)
    if not 1.0 <= fps <= 60.0:
        raise InputError(f"--fps {fps:g}: use 1 to 60 frames per second")
    plan = plan or FlightPlan()
    sun = sun_at(scene, options.sun) if options.sun is not None else None
    epoch = scene.epoch(options.epoch or scene.default_epoch)
    options = replace(options, epoch=epoch.id, compare=None, difference=False)
    with Session(scene, options) as session:
        session.use_overlays(tuple(options.highlight or ()))
        language = options.language
        scene_title = scene.title.get(language) or scene.id

        def frames() -> Iterator[np.ndarray]:
            width, height = options.size
            for camera in flight_cameras(scene, stops, fps, plan):
                frame = session.renderer.render(camera, epoch, color_by=options.color_by,
                                                sun=sun)
                image = frame.image
                if options.annotations:
                    legend_title, legend = _legend(scene, options, session.overlays_drawn)
                    image = annotate(image, Annotations(
                        title=scene_title,
                        lines=[epoch.title.get(language) or epoch.id]
                        + ([_sun_line(sun, language)] if sun is not None else []),
                        legend_title=legend_title, legend=legend,
                        north=_north(scene, camera, width, height), language=language))
                    image = attribution(image, scene.attributions)
                if progress is not None:
                    progress(1)
                yield image

        if suffix == ".gif":
            return write_gif(out, frames(), fps)
        return write_mp4(out, frames(), fps, options.size)


def scene_sun_positions(scene: PublishedScene, day: dt.date, step: dt.timedelta
                        ) -> list[SunPosition]:
    """The daylight sun positions of a day over the scene."""
    lon, lat = _scene_lon_lat(scene)
    return day_series(lon, lat, day, step)
