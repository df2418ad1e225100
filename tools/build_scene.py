"""``twin build scene``: build and publish the scenes of scenes/*.toml."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from tools.options import geoid_option
from twin.pipeline.common import Progress


class _Bars:
    """One progress bar per pipeline run on a terminal; nothing when piped."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar: tqdm | None = None

    def __call__(self, label: str) -> Progress | None:
        self.close()
        if not self.enabled:
            return None
        self.bar = tqdm(desc=label, unit="item", leave=False, dynamic_ncols=True)
        return self.bar.update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@click.command("scene")
@click.argument("name")
@click.option("--scenes", "scenes_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("scenes"), show_default=True, help="Folder of scene definitions.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              default=Path("data/sample"), show_default=True,
              help="Folder the scenes' source globs are relative to (real LAiV M-V tiles, or "
                   "the output of `twin sample-data`).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build/scenes"), show_default=True,
              help="Published scene folders go here (<out>/<scene>/current).")
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True,
              help="Worker processes per pipeline (0: one per core).")
@geoid_option
@click.option("--json", "as_json", is_flag=True, help="Print the build reports as JSON.")
@click.pass_context
def build_scene_command(
    ctx: click.Context,
    name: str,
    scenes_dir: Path,
    data: Path,
    out: Path,
    workers: int,
    geoid: Path | None,
    as_json: bool,
) -> None:
    """Build scene NAME (or all) from its definition and publish it atomically.

    Only what changed since the last build is rebuilt; a build with nothing changed
    publishes nothing.
    """
    from twin.pipeline.scene import SceneBuildOptions, build_scene, scene_definitions

    options = SceneBuildOptions(data=data, out=out, workers=workers, geoid=geoid)
    reports = []
    bars = _Bars(not ctx.obj["quiet"])
    try:
        for definition in scene_definitions(scenes_dir, name):
            report = build_scene(definition, options, bars)
            bars.close()
            reports.append(report)
            if not as_json and not ctx.obj["quiet"]:
                rebuilt = [p for p in report.parts if not p.cached]
                state = (f"published version {report.version}" if report.published
                         else f"up to date (version {report.version})")
                click.echo(
                    f"{report.out}: {state}; {len(rebuilt)} of {len(report.parts)} parts "
                    f"built, {report.files_written} of {report.files} files new, "
                    f"{report.bytes / 1e6:.1f} MB, {report.seconds:.1f} s"
                )
                for warning in report.warnings:
                    click.echo(f"  warning: {warning}")
    finally:
        bars.close()
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in reports], indent=2, default=str))
