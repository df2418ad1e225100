"""``twin serve``: the streaming service (settings from TWIN_* environment variables)."""

from __future__ import annotations

import os

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    default=os.cpu_count() or 1,
    show_default="the number of CPUs",
    type=click.IntRange(1, 64),
    help="Worker processes sharing the port.",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@click.option(
    "--proxy-headers/--no-proxy-headers",
    default=False,
    show_default=True,
    help="Trust X-Forwarded-* from a proxy on 127.0.0.1.",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str, port: int, workers: int, access_log: bool, proxy_headers: bool
) -> None:
    """Serve published scenes, tiles, tours and overlays over HTTP.

    \b
    Settings (environment):
      TWIN_SCENES_DIR          published scene folders (default build/scenes)
      TWIN_PACKAGES            JSON list of .3dtiles files served as scenes
      TWIN_DATABASE_URL        sqlite:///path or postgresql://... (planners' overlays)
      TWIN_WRITE_TOKENS        comma-separated sha256:<hex> token hashes (twin token)
      TWIN_WRITE_TOKENS_FILE   a file with one hash per line
      TWIN_CORS_ORIGINS        JSON list of origins allowed cross-origin (default none)
      TWIN_TILE_CACHE_BYTES    memory for hot files per worker (default 256 MiB)
    """
    from server.runner import serve as run_service  # uvicorn only when serving

    quiet = ctx.obj.get("quiet", False) if ctx.obj else False
    run_service(
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        proxy_headers=proxy_headers,
        log_level="warning" if quiet else "info",
    )
