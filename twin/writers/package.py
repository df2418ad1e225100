"""Writer of ``.3dtiles`` packages: the SQLite layout of Cesium's 3d-tiles-tools.

One table, ``media(key TEXT PRIMARY KEY, content BLOB)``, created with the statement
3d-tiles-tools' ``TilesetTarget3dtiles`` uses, one row per file (key: the path relative to the
root, forward slashes). Entries go in sorted by key in one transaction without a journal, and
the file is written under a temporary name and renamed into place: the same entries give a
byte-identical file, and readers of ``out`` see the old package or the new one, never half.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from twin.errors import InputError

__all__ = ["CREATE_MEDIA_TABLE", "write_package"]

CREATE_MEDIA_TABLE = "CREATE TABLE media (key TEXT PRIMARY KEY, content BLOB)"

EntryContent = Callable[[], bytes]
"""Returns one entry's bytes when the writer gets to it (so only one file is in memory)."""


def write_package(
    out: Path,
    entries: Iterable[tuple[str, EntryContent]],
    progress: Callable[[int], object] | None = None,
) -> int:
    """Write ``(key, content)`` entries as a ``.3dtiles`` package at ``out``; returns bytes."""
    out = Path(out)
    items = sorted(entries, key=lambda entry: entry[0])
    seen: set[str] = set()
    for key, _ in items:
        if key in seen:
            raise InputError(f"{out}: two package entries have the key {key!r}")
        if not key or key.startswith("/") or "\\" in key or ".." in key.split("/"):
            raise InputError(f"{out}: package key {key!r} is not a relative path")
        seen.add(key)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        connection = sqlite3.connect(tmp, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=off")
            connection.execute("BEGIN")
            connection.execute(CREATE_MEDIA_TABLE)
            for key, content in items:
                connection.execute("INSERT INTO media VALUES (?, ?)", (key, content()))
                if progress is not None:
                    progress(1)
            connection.execute("COMMIT")
        finally:
            connection.close()
        with tmp.open("rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out.stat().st_size
