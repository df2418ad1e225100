"""``twin render``: planner images of a published scene (pyvista offscreen).

Examples::

    twin render --stop warnowbruecke:3 --out bruecke.png
    twin render --stop warnowbruecke:3 --compare heute,geplant --difference --out vergleich.png
    twin render --stop gehlsdorf:1 --sun 2026-06-21T15:00+02:00 --out schatten.png
    twin render --stop gehlsdorf:1 --sun-series 2026-06-21 --every 1h --out schatten.png
    twin render --scene rostocker-oval --camera 312000,5997600,300 \\
        --look-at 312330,5998011,5 --fov 60 --color-by height --out hoehen.png
    twin render --scene warnowbruecke --flythrough tour.mp4 --size 1280x720
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from tools.progress import progress_bar
from twin.errors import InputError

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def _size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    match = _SIZE.match(value)
    if match is None:
        raise click.BadParameter(f"{value!r}: write the size as WIDTHxHEIGHT, e.g. 1920x1080")
    return int(match.group(1)), int(match.group(2))


def _point(ctx: click.Context, param: click.Parameter, value: str | None) -> (
    tuple[float, float, float] | None
):
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 3:
        raise click.BadParameter(
            f"{value!r}: write E,N,H in EPSG:25833 metres and DHHN2016 height, "
            "e.g. 312400,5997500,60"
        )
    return numbers[0], numbers[1], numbers[2]


def _pair(ctx: click.Context, param: click.Parameter, value: str | None) -> (
    tuple[str, str] | None
):
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise click.BadParameter(f"{value!r}: name two epochs, e.g. heute,geplant")
    return parts[0], parts[1]


@click.command("render")
@click.option("--scenes", "scenes_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build/scenes"), show_default=True,
              help="Folder of published scenes (twin build scene --out).")
@click.option("--stop", metavar="SCENE:STOP", help="A tour stop by number or id, e.g. "
              "warnowbruecke:3.")
@click.option("--scene", "scene_id", metavar="SCENE", help="The scene, for --camera or "
              "--flythrough.")
@click.option("--camera", callback=_point, metavar="E,N,H",
              help="Camera position (EPSG:25833, DHHN2016 height).")
@click.option("--look-at", callback=_point, metavar="E,N,H", help="Point the camera looks at.")
@click.option("--fov", type=click.FloatRange(1, 150), default=60.0, show_default=True,
              help="Field of view in degrees across the wider side of the image.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write (with --sun-series: one file per time, FILE-HHMM.png).")
@click.option("--size", callback=_size, default="1920x1080", show_default=True,
              help="Image size WIDTHxHEIGHT (per panel with --compare).")
@click.option("--epoch", help="Epoch to show [default: the stop's, else the scene's].")
@click.option("--compare", callback=_pair, metavar="A,B",
              help="Two epochs side by side from the same camera, e.g. heute,geplant.")
@click.option("--difference", is_flag=True,
              help="With --compare: a third panel with what changes in magenta.")
@click.option("--sun", "sun_time", metavar="TIME",
              help="Sun and shadows at this time, e.g. 2026-06-21T15:00+02:00.")
@click.option("--sun-series", metavar="DATE", help="Images through a day, e.g. 2026-06-21.")
@click.option("--every", default="1h", show_default=True, help="Step of --sun-series.")
@click.option("--color-by", type=click.Choice(["function", "height", "year"]),
              help="Colour buildings by an attribute, with a legend.")
@click.option("--overlays", type=click.Choice(["draped", "extruded", "off"]), default="draped",
              show_default=True, help="Project overlays on the terrain, as volumes, or none.")
@click.option("--overlay-height", type=click.FloatRange(1, 500), default=20.0,
              show_default=True, help="Height (m) of extruded overlays.")
@click.option("--highlight", metavar="IDS", help="Overlay ids to highlight [default: the "
              "stop's].")
@click.option("--flythrough", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.gif|FILE.mp4", help="Fly along the tour's stops.")
@click.option("--fps", type=click.FloatRange(1, 60), help="Frames per second of "
              "--flythrough [default: 10 GIF, 25 MP4].")
@click.option("--lang", type=click.Choice(["de", "en"]), default="de", show_default=True,
              help="Language of labels and legend.")
@click.option("--max-sse", type=click.FloatRange(min=0.1), default=16.0, show_default=True,
              help="Largest screen-space error (pixels) of the tiles drawn.")
@click.option("--no-annotations", is_flag=True,
              help="Only the 3D view: no labels, legend, scale, north arrow or credits.")
@click.pass_context
def render(
    ctx: click.Context,
    scenes_dir: Path,
    stop: str | None,
    scene_id: str | None,
    camera: tuple[float, float, float] | None,
    look_at: tuple[float, float, float] | None,
    fov: float,
    out: Path | None,
    size: tuple[int, int],
    epoch: str | None,
    compare: tuple[str, str] | None,
    difference: bool,
    sun_time: str | None,
    sun_series: str | None,
    every: str,
    color_by: str | None,
    overlays: str,
    overlay_height: float,
    highlight: str | None,
    flythrough: Path | None,
    fps: float | None,
    lang: str,
    max_sse: float,
    no_annotations: bool,
) -> None:
    """Render a published scene: a tour stop or a camera, today or planned, with sun."""
    quiet = bool((ctx.obj or {}).get("quiet"))
    stop_ref = None
    if stop is not None:
        if ":" not in stop:
            raise InputError(f"--stop {stop!r}: write SCENE:STOP, e.g. warnowbruecke:3")
        stop_scene, stop_ref = stop.rsplit(":", 1)
        if scene_id is not None and scene_id != stop_scene:
            raise click.UsageError("--scene and the scene of --stop differ")
        scene_id = stop_scene
    if scene_id is None:
        raise click.UsageError("name the scene: --stop SCENE:STOP or --scene SCENE")
    if flythrough is None:
        if out is None:
            raise click.UsageError("--out FILE.png is required")
        if stop_ref is None and (camera is None or look_at is None):
            raise click.UsageError("give --stop SCENE:STOP, or --camera E,N,H and --look-at E,N,H")
        if stop_ref is not None and (camera is not None or look_at is not None):
            raise click.UsageError("--stop and --camera/--look-at exclude each other")
    elif out is not None or compare is not None or sun_series is not None:
        raise click.UsageError("--flythrough writes one file: drop --out, --compare, --sun-series")
    if sun_time is not None and sun_series is not None:
        raise click.UsageError("--sun and --sun-series exclude each other")
    if epoch is not None and compare is not None:
        raise click.UsageError("--epoch and --compare exclude each other")
    if difference and compare is None:
        raise click.UsageError("--difference needs --compare")

    # Imported here: VTK takes a second to load, and other commands do not need it.
    import twin.render as planner
    from twin.render.sun import parse_day, parse_interval, parse_time
    from twin.render.views import scene_sun_positions

    scene = planner.open_scene(scenes_dir, scene_id)
    options = planner.RenderOptions(
        size=size,
        epoch=epoch,
        compare=compare,
        difference=difference,
        sun=parse_time(sun_time) if sun_time is not None else None,
        color_by=color_by,
        overlays=overlays,
        overlay_height=overlay_height,
        highlight=tuple(h.strip() for h in highlight.split(",") if h.strip())
        if highlight is not None else None,
        language=lang,
        max_screen_space_error=max_sse,
        annotations=not no_annotations,
    )
    options.check(scene)
    if flythrough is not None:
        with progress_bar("flythrough", "frame", enabled=not quiet) as progress:
            frames = planner.flythrough(scene, options, flythrough, fps=fps, progress=progress)
        if not quiet:
            click.echo(f"{flythrough} ({frames} frames)")
        return
    spec = None
    if camera is not None and look_at is not None:
        spec = planner.CameraSpec(position=camera, look_at=look_at, fov=fov, label="--camera")
    view = planner.view_for(scene, stop_ref, spec)
    assert out is not None
    if sun_series is not None:
        positions = scene_sun_positions(scene, parse_day(sun_series), parse_interval(every))
        with progress_bar("sun series", "image", enabled=not quiet) as progress:
            paths = planner.sun_series(scene, view, options, positions, out, progress=progress)
        if not quiet:
            for path in paths:
                click.echo(str(path))
        return
    planner.render_view(scene, view, options, out)
    if not quiet:
        click.echo(str(out))
