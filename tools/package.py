"""``twin package``: one published scene → one ``.3dtiles`` file (SQLite, 3d-tiles-tools)."""

from __future__ import annotations

from pathlib import Path

import click

from tools.progress import progress_bar
from twin.pipeline.package import package_scene


@click.command("package")
@click.argument("scene")
@click.option(
    "--scenes",
    default=Path("build/scenes"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of published scenes.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Package file to write  [default: <scenes>/../packages/SCENE.3dtiles].",
)
@click.pass_context
def package(ctx: click.Context, scene: str, scenes: Path, out: Path | None) -> None:
    """Write the current version of a published SCENE as one .3dtiles package.

    The package serves with `TWIN_PACKAGES='["FILE"]' twin serve` under the same URLs as the
    published folder. It is written under a temporary name and renamed into place.
    """
    out = out or scenes.parent / "packages" / f"{scene}.3dtiles"
    quiet = ctx.obj.get("quiet", False) if ctx.obj else False
    with progress_bar("files", "file", not quiet) as progress:
        report = package_scene(scenes, scene, out, progress)
    if not quiet:
        click.echo(
            f"{report.out}: scene {report.scene} version {report.version}, {report.files} "
            f"files, {report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s"
        )
