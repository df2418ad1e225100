"""``twin build lidar``: LAS/LAZ/COPC files → point-cloud tiles and/or a terrain mesh."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tools.options import crs_option, geoid_option, inputs_argument, out_option
from tools.progress import progress_bar
from twin.errors import InputError
from twin.pipeline.lidar import (
    DEFAULT_MEMORY_BUDGET,
    MODES,
    LidarOptions,
    build_lidar,
    parse_memory,
)
from twin.tiling.points import POINT_TILING


def _classes(text: str | None) -> tuple[int, ...] | None:
    if text is None or not text.strip():
        return None
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected class numbers such as 2,6,9") from None
    if not values or any(not 0 <= v <= 255 for v in values):
        raise click.BadParameter(f"{text!r}: classes are numbers from 0 to 255")
    return values


@click.command("lidar")
@inputs_argument
@out_option
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="points",
    show_default=True,
    help="Point-cloud tiles, a terrain mesh (DTM from ground points), or both.",
)
@click.option("--classes", metavar="LIST", help="Keep only these ASPRS classes, e.g. 2,6,9.")
@click.option(
    "--cell", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
    help="Terrain grid cell size in metres.",
)
@click.option(
    "--dsm", is_flag=True,
    help="Terrain as a surface model (highest return per cell: roofs, trees) instead of a DTM.",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=None,
    help="Worker processes [default: one per CPU core].",
)
@click.option(
    "--memory-budget", default=f"{DEFAULT_MEMORY_BUDGET >> 30}GB", show_default=True,
    help="Memory the whole build may use (e.g. 800MB, 2GB).",
)
@click.option(
    "--max-points-per-tile", type=click.IntRange(1000), default=POINT_TILING.max_points_per_tile,
    show_default=True, help="Most points in one tile.",
)
@crs_option
@geoid_option
@click.option("--attribution", default="", help="Attribution stored in the tileset metadata.")
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
@click.pass_context
def build_lidar_command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    out: Path,
    mode: str,
    classes: str | None,
    cell: float,
    dsm: bool,
    workers: int | None,
    memory_budget: str,
    max_points_per_tile: int,
    crs: str | None,
    geoid: Path | None,
    attribution: str,
    as_json: bool,
) -> None:
    """LAS/LAZ/COPC files → one 3D Tiles 1.1 tileset at OUT (points, terrain or both)."""
    try:
        budget = parse_memory(memory_budget)
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--memory-budget") from None
    options = LidarOptions(
        mode=mode,
        crs=crs,
        geoid=geoid,
        classes=_classes(classes),
        cell=cell,
        dsm=dsm,
        workers=workers,
        memory_budget=budget,
        max_points_per_tile=max_points_per_tile,
        attribution=attribution,
    )
    with progress_bar("points (read, then tiled)", "pt", not ctx.obj["quiet"]) as progress:
        report = build_lidar(list(paths), out, options, progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    elif not ctx.obj["quiet"]:
        lines = [
            f"{out / 'tileset.json'}: {report.points_read:,} points read, "
            f"{report.points_kept:,} kept, in {report.seconds:.1f} s "
            f"({report.points_per_second / 1e6:.2f} M points/s, {report.workers} workers)"
        ]
        if mode in ("points", "both"):
            lines.append(
                f"  points: {report.tiles} tiles, {report.tile_bytes / 1e6:.1f} MB, depth "
                f"{report.depth}, root geometric error {report.root_geometric_error:g} m"
                + (", colours" if report.rgb else ", no colours")
            )
        if mode in ("terrain", "both"):
            lines.append(
                f"  terrain: {report.terrain_cells:,} cells of {cell:g} m, "
                f"{report.terrain_tiles} tiles, {report.terrain_bytes / 1e6:.1f} MB"
            )
        lines.append(f"  heights: {report.vertical_model} (±{report.vertical_error_m:g} m)")
        click.echo("\n".join(lines))
        for warning in report.warnings[:10]:
            click.echo(f"twin: warning: {warning}", err=True)
