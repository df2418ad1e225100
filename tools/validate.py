"""``twin validate``: check a tileset as a client would rely on it."""

from __future__ import annotations

from pathlib import Path

import click

from twin.errors import ValidationError


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--no-gltf", is_flag=True, help="Skip the Khronos glTF validator.")
@click.option("--no-containment", is_flag=True, help="Skip the bounding-volume containment check.")
@click.pass_context
def validate(ctx: click.Context, path: Path, no_gltf: bool, no_containment: bool) -> None:
    """Validate a tileset (folder or tileset.json): 3D Tiles 1.1 schemas, every GLB through the
    Khronos glTF validator, and that bounding volumes contain their decoded geometry."""
    from twin.validate import validate_tileset

    tileset = path / "tileset.json" if path.is_dir() else path
    report = validate_tileset(tileset, gltf=not no_gltf, containment=not no_containment)
    for line in report.warnings:
        if ctx.obj["verbose"]:
            click.echo(f"warning: {line}", err=True)
    for line in report.errors:
        click.echo(f"error: {line}", err=True)
    if not report.ok:
        raise ValidationError(
            f"{tileset}: {len(report.errors)} errors in {report.tiles} tiles / {report.glbs} GLBs"
        )
    if not ctx.obj["quiet"]:
        click.echo(
            f"{tileset}: valid ({report.tiles} tiles, {report.glbs} GLBs, "
            f"{len(report.warnings)} warnings)"
        )
