"""``twin build``: run a pipeline and publish its output."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tools.options import crs_option, geoid_option, inputs_argument, out_option
from tools.progress import progress_bar
from twin.constants import TILING


@click.group()
def build() -> None:
    """Build tilesets from source data."""


@build.command("citygml")
@inputs_argument
@out_option
@crs_option
@geoid_option
@click.option(
    "--max-features-per-tile",
    type=click.IntRange(1),
    default=TILING.max_features_per_tile,
    show_default=True,
    help="Most city objects in one tile.",
)
@click.option(
    "--max-bytes-per-tile",
    type=click.IntRange(10_000),
    default=TILING.max_bytes_per_tile,
    show_default=True,
    help="Leaves split until their content is estimated below this size.",
)
@click.option("--skip-invalid", is_flag=True, help="Drop (and count) invalid polygons.")
@click.option("--attribution", default="", help="Attribution stored in the tileset metadata.")
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
@click.pass_context
def build_citygml_command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    out: Path,
    crs: str | None,
    geoid: Path | None,
    max_features_per_tile: int,
    max_bytes_per_tile: int,
    skip_invalid: bool,
    attribution: str,
    as_json: bool,
) -> None:
    """CityGML 1.0/2.0/3.0 files → one 3D Tiles 1.1 tileset at OUT."""
    from twin.pipeline.citygml import CityGMLOptions, build_citygml

    options = CityGMLOptions(
        crs=crs,
        geoid=geoid,
        max_features_per_tile=max_features_per_tile,
        max_bytes_per_tile=max_bytes_per_tile,
        skip_invalid=skip_invalid,
        attribution=attribution,
    )
    with progress_bar("city objects", "obj", not ctx.obj["quiet"]) as progress:
        report = build_citygml(list(paths), out, options, progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    elif not ctx.obj["quiet"]:
        objects = ", ".join(f"{n} {cls}" for cls, n in sorted(report.objects.items()))
        click.echo(
            f"{out / 'tileset.json'}: {report.features} features ({objects}), "
            f"{report.tiles} tiles, {report.tile_bytes / 1e6:.1f} MB in {report.seconds:.1f} s; "
            f"heights: {report.vertical_model} (±{report.vertical_error_m:g} m)"
        )
        if report.degenerate_rings or report.skipped_objects or report.converted_high_lod:
            click.echo(
                f"  dropped {report.degenerate_rings} degenerate rings; "
                f"skipped objects {report.skipped_objects or 0}; "
                f"LoD3/4 taken as is for {report.converted_high_lod}",
                err=True,
            )

