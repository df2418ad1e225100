"""``twin sample-data``: write the synthetic sample data at the real coordinates."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tools.progress import progress_bar
from tools.sample_data import DEFAULT_DENSITY, MAX_DENSITY


@click.command("sample-data")
@click.option(
    "--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("data/sample"),
    show_default=True,
    help="Output folder; replaced as a whole (atomically) when every file is written.",
)
@click.option("--seed", type=int, default=1, show_default=True,
              help="Random seed: the same seed and options give byte-identical files.")
@click.option(
    "--density", metavar="PTS_PER_M2",
    type=click.FloatRange(min=0.0, max=MAX_DENSITY, min_open=True), default=DEFAULT_DENSITY,
    show_default=True, help="LiDAR pulses per square metre.",
)
@click.option("--force", is_flag=True,
              help="Write the data even if the folder already holds exactly this data.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def sample_data_command(ctx: click.Context, out: Path, seed: int, density: float, force: bool,
                        as_json: bool) -> None:
    """Synthetic Rostock sample data: M-V-style LoD2 CityGML and LAZ tiles, the planned
    Warnowbrücke and WarnowQuartier, and world.json (EPSG:25833, DHHN2016 heights)."""
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    with progress_bar("sample data", "steps", enabled=not quiet) as bar:
        from tools.sample_data.generate import generate_sample_data

        report = generate_sample_data(out, seed, density, bar, force=force)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    elif report.up_to_date and not quiet:
        click.echo(f"{out}: up to date (seed {seed}, density {density:g}; --force rewrites it)")
    elif not quiet:
        size = sum(report.files.values()) / 1e6
        points = sum(report.points.values())
        click.echo(f"{out}: {len(report.files)} files, {size:.1f} MB: {report.buildings} "
                   f"buildings, {report.planned_buildings} planned, {points:,} LiDAR points "
                   f"({report.seconds:.1f} s; synthetic data, not LAiV M-V)")
