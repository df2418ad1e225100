"""Options shared by several ``twin`` subcommands."""

from __future__ import annotations

from pathlib import Path

import click

crs_option = click.option(
    "--crs",
    metavar="CRS",
    help="Source CRS, overriding the files' own (e.g. EPSG:25833+7837, urn:adv:crs:…, WKT).",
)
geoid_option = click.option(
    "--geoid",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Geoid/quasigeoid grid for normal heights (e.g. GCG2016 .tif); default EGM96.",
)
out_option = click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder; replaced atomically when the build succeeds.",
)
inputs_argument = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
