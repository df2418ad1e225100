"""``twin info``: what a source file holds."""

from __future__ import annotations

import json
from pathlib import Path

import click

from twin.info import describe


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def info(path: Path) -> None:
    """Format, version, CRS, counts and bounds of a CityGML or LAS/LAZ file, as JSON."""
    click.echo(json.dumps(describe(path), indent=2, ensure_ascii=False))
