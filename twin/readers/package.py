"""Reader of ``.3dtiles`` packages: the SQLite layout of Cesium's 3d-tiles-tools.

A package is one SQLite database with one table, ``media(key TEXT PRIMARY KEY, content BLOB)``:
``key`` is a file's path relative to the tileset root with forward slashes
(``layers/buildings/tileset.json``), ``content`` its bytes. The structure check is the one
3d-tiles-tools' ``TilesetSource3dtiles`` makes (a table ``media`` whose two columns are named
and typed exactly so), so packages from either tool read in both.

The database is opened read-only and ``immutable``: packages are replaced by renaming a new
file over the old one, never changed in place, so an open reader keeps seeing the file it
opened. Each thread gets its own connection (reads run in a thread pool in the service).
"""

from __future__ import annotations

import sqlite3
import threading
import urllib.parse
from pathlib import Path

from twin.errors import FormatError

__all__ = ["MEDIA_COLUMNS", "PackageReader"]

MEDIA_COLUMNS = (("key", "TEXT"), ("content", "BLOB"))
"""The ``media`` table's columns, in order, as 3d-tiles-tools requires them."""


class PackageReader:
    """Read entries of one ``.3dtiles`` package; safe to use from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._check_structure()
        except BaseException:
            self.close()
            raise

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self._closed:
                raise FormatError(f"{self.path}: package reader is closed")
            uri = "file:" + urllib.parse.quote(str(self.path.absolute())) + "?mode=ro&immutable=1"
            try:
                connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            except sqlite3.Error as exc:
                raise FormatError(
                    f"{self.path}: cannot open as a .3dtiles package ({exc}); "
                    "make one with `twin package SCENE`"
                ) from exc
            with self._lock:
                self._connections.append(connection)
            self._local.connection = connection
        return connection

    def _check_structure(self) -> None:
        if not self.path.is_file():
            raise FormatError(f"{self.path}: no such package file; check the path")
        try:
            with self.path.open("rb") as stream:
                signature = stream.read(16)
        except OSError as exc:
            raise FormatError(f"{self.path}: cannot read the package ({exc.strerror})") from exc
        if signature != b"SQLite format 3\x00":
            raise FormatError(
                f"{self.path}: not a .3dtiles package (no SQLite signature, found "
                f"{signature[:8]!r}); make one with `twin package SCENE`"
            )
        try:
            rows = self._connection().execute("PRAGMA table_info(media)").fetchall()
        except sqlite3.DatabaseError as exc:
            raise FormatError(f"{self.path}: broken SQLite database ({exc})") from exc
        columns = tuple((str(row[1]), str(row[2]).upper()) for row in rows)
        if not columns:
            raise FormatError(f"{self.path}: no table 'media'; not a .3dtiles package")
        if columns != MEDIA_COLUMNS:
            found = ", ".join(f"{name} {kind}" for name, kind in columns)
            raise FormatError(
                f"{self.path}: table media has columns ({found}); a .3dtiles package needs "
                "(key TEXT, content BLOB)"
            )

    def keys(self) -> list[str]:
        """Every entry's key, sorted."""
        rows = self._connection().execute("SELECT key FROM media ORDER BY key").fetchall()
        return [str(row[0]) for row in rows]

    def read(self, key: str) -> bytes | None:
        """An entry's bytes, or None when the package has no such key."""
        row = self._connection().execute(
            "SELECT content FROM media WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return bytes(row[0]) if row[0] is not None else b""

    def size(self, key: str) -> int | None:
        """An entry's length in bytes, or None when the package has no such key."""
        row = self._connection().execute(
            "SELECT length(content) FROM media WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return int(row[0] or 0)

    def read_range(self, key: str, start: int, length: int) -> bytes | None:
        """``length`` bytes of an entry from byte ``start`` (without reading the rest)."""
        row = self._connection().execute(
            "SELECT substr(content, ?, ?) FROM media WHERE key = ?", (start + 1, length, key)
        ).fetchone()
        if row is None:
            return None
        return bytes(row[0]) if row[0] is not None else b""

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def __enter__(self) -> PackageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
