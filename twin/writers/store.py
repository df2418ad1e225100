"""Publishing output folders atomically: build in a staging folder, then swap it in.

Readers of ``out`` never see half a tileset: they see the old folder or the new one (during
the swap, for a moment, none). A failed build leaves ``out`` as it was.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGING_PREFIX = ".twin-tmp-"


@contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out``; on success it replaces ``out``."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    staging = out.parent / f"{STAGING_PREFIX}{out.name}-{token}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish(staging, out, token)


def publish(staging: Path, out: Path, token: str) -> None:
    """Swap ``staging`` in at ``out`` (same filesystem, so both renames are atomic)."""
    retired = out.parent / f"{STAGING_PREFIX}{out.name}-{token}-old"
    if out.exists() or out.is_symlink():
        os.rename(out, retired)
    os.rename(staging, out)
    if retired.exists():
        shutil.rmtree(retired, ignore_errors=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file through a temporary name and rename it into place."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
