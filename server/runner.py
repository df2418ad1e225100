"""Running the service with production settings (``twin serve``).

uvicorn with uvloop and httptools, ``workers`` processes sharing one listening socket, no
reload, no proxy headers (the client address is the peer's, unless told otherwise), no access
log by default (the metrics count every request). With several workers, each process writes
its metrics to a private temporary folder that ``/metrics`` adds up
(prometheus_client's multiprocess mode); the folder is removed when the server stops.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import pydantic
import uvicorn
from pydantic_settings import SettingsError

from server.settings import Settings
from twin.errors import InputError

__all__ = ["check_settings", "serve"]


def check_settings() -> Settings:
    """The TWIN_* settings, or one clear error naming the variable."""
    example = 'lists are JSON, e.g. TWIN_PACKAGES=\'["build/packages/warnowbruecke.3dtiles"]\''
    try:
        return Settings()
    except SettingsError as exc:
        match = re.search(r'field "(\w+)"', str(exc))
        name = f"TWIN_{match.group(1).upper()}" if match else "a TWIN_* variable"
        raise InputError(f"environment variable {name}: cannot be read ({example})") from None
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        hint = f" ({example})" if field in ("packages", "cors_origins") else ""
        raise InputError(
            f"environment variable TWIN_{field.upper()}: {error['msg']}{hint}"
        ) from None


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = False,
    proxy_headers: bool = False,
    log_level: str = "info",
) -> None:
    """Run the service until interrupted."""
    settings = check_settings()
    for package in settings.packages:
        if not package.is_file():
            raise InputError(f"TWIN_PACKAGES: {package}: no such file; make it with twin package")
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="twin-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "server.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            reload=False,
            proxy_headers=proxy_headers,
            forwarded_allow_ips="127.0.0.1" if proxy_headers else None,
            access_log=access_log,
            server_header=False,
            log_level=log_level,
            timeout_keep_alive=15,
        )
    finally:
        if metrics_dir is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
