"""The ``twin`` command: one group, one module per subcommand.

Exit codes: 0 ok, 1 data error (one line on stderr), 2 usage error.
"""

from __future__ import annotations

import logging
import sys

import click

from twin import __version__
from twin.errors import TwinError


class TwinGroup(click.Group):
    """A group that turns library errors into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except TwinError as exc:
            click.echo(f"twin: error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=TwinGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="twin")
@click.option("-v", "--verbose", count=True, help="More detail (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Rostock virtuell: city data to OGC 3D Tiles 1.1, scenes and tours."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[
        min(verbose, 2)
    ]
    logging.basicConfig(level=level, format="twin: %(levelname)s: %(message)s", stream=sys.stderr)
    ctx.obj = {"quiet": quiet, "verbose": verbose}


def _register() -> None:
    from tools import build, build_lidar, build_scene, info, package, render, serve, token, validate
    from tools.sample_data.command import sample_data_command

    build.build.add_command(build_lidar.build_lidar_command)
    build.build.add_command(build_scene.build_scene_command)
    for command in (build.build, info.info, validate.validate, sample_data_command,
                    package.package, serve.serve, token.token, render.render):
        cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="twin")


if __name__ == "__main__":
    main()
