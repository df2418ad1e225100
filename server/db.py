"""The planners' project store: overlay features and scenario variants of every scene.

Two backends behind one class, :class:`ProjectStore`:

- ``sqlite:///path`` (the default, one machine): SQLite in WAL mode, so readers never wait
  for the writer, with ``synchronous=FULL``: every acknowledged write is fsynced to the WAL
  before the commit returns, so it survives a power cut or an OS crash as well as a killed
  process (NORMAL would survive only the latter). Planners write a few records a minute; one
  fsync per commit costs nothing they would notice. Writes take the lock up front
  (``BEGIN IMMEDIATE``) so several worker processes queue on the busy timeout instead of
  failing on a lock upgrade.
- ``postgresql://…`` (several instances): psycopg 3 with a connection pool.

Each operation is one transaction, a plain function run in a worker thread (never on the
event loop), with the SQL written once for both backends. The schema is created and migrated
at :meth:`ProjectStore.open`, idempotently, under a lock (a ``schema_migrations`` table holds
the applied versions).
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.to_thread

from twin.errors import TwinError

log = logging.getLogger(__name__)

T = TypeVar("T")

POOL_SIZE = 4
"""Connections per process: planners' writes are rare, reads are short."""
SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for another process's write transaction to finish."""
POSTGRES_CONNECT_TIMEOUT_S = 10.0
MIGRATION_LOCK_KEY = 0x7477696E  # "twin": serialises schema migrations of concurrent openers


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------


class ProjectStoreError(TwinError):
    """The project store cannot do what was asked."""


class StoreConfigError(ProjectStoreError, ValueError):
    """The database URL is not usable (scheme, path, schema version)."""


class StoreUnavailable(ProjectStoreError, ConnectionError):
    """The database cannot be reached or refused the operation."""


class RecordExists(ProjectStoreError):
    """A record with this id already exists in the scene."""


class RecordNotFound(ProjectStoreError, LookupError):
    """No record with this id in the scene."""


class RevisionMismatch(ProjectStoreError):
    """The record changed since the client read it (If-Match does not match)."""


class OverlayInUse(ProjectStoreError):
    """An overlay feature cannot be deleted while scenario variants show it."""


class UnknownOverlays(ProjectStoreError, ValueError):
    """A variant names overlay features that exist neither published nor in the store."""

    def __init__(self, message: str, feature_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.feature_ids = tuple(feature_ids)


# ------------------------------------------------------------------------------------------
# records
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverlayRecord:
    """A planner's overlay feature with its bookkeeping."""

    scene: str
    id: str
    feature: dict[str, Any]
    """The GeoJSON Feature (RFC 7946, lon/lat) exactly as served."""
    revision: int
    created: str
    updated: str


@dataclass(frozen=True)
class VariantRecord:
    """A scenario variant: a planner's named alternative of a scene."""

    scene: str
    id: str
    document: dict[str, Any]
    """title, description, base_epoch, layers, overlays, author."""
    revision: int
    created: str
    updated: str

    def to_json(self) -> dict[str, Any]:
        """The variant as the API serves it."""
        return {
            "id": self.id,
            "scene": self.scene,
            **self.document,
            "created": self.created,
            "updated": self.updated,
            "revision": self.revision,
        }


BBox = tuple[float, float, float, float]


def _canonical_json(value: Any) -> str:
    """Sorted, compact, NaN-free JSON: the same record is stored as the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _now() -> str:
    """The current time as RFC 3339 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------
# schema
# ------------------------------------------------------------------------------------------

# Types spelled so both databases read them the same: DOUBLE PRECISION is float8 in
# PostgreSQL (its REAL would be float4) and REAL affinity in SQLite.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE overlays (
                scene TEXT NOT NULL,
                id TEXT NOT NULL,
                feature TEXT NOT NULL,
                west DOUBLE PRECISION NOT NULL,
                south DOUBLE PRECISION NOT NULL,
                east DOUBLE PRECISION NOT NULL,
                north DOUBLE PRECISION NOT NULL,
                revision INTEGER NOT NULL,
                created TEXT NOT NULL,
                updated TEXT NOT NULL,
                PRIMARY KEY (scene, id))""",
            """CREATE TABLE variants (
                scene TEXT NOT NULL,
                id TEXT NOT NULL,
                document TEXT NOT NULL,
                revision INTEGER NOT NULL,
                created TEXT NOT NULL,
                updated TEXT NOT NULL,
                PRIMARY KEY (scene, id))""",
            """CREATE TABLE variant_overlays (
                scene TEXT NOT NULL,
                variant_id TEXT NOT NULL,
                feature_id TEXT NOT NULL,
                PRIMARY KEY (scene, variant_id, feature_id),
                FOREIGN KEY (scene, variant_id) REFERENCES variants (scene, id)
                    ON DELETE CASCADE)""",
            "CREATE INDEX variant_overlays_feature ON variant_overlays (scene, feature_id)",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


# ------------------------------------------------------------------------------------------
# backends: one transaction = one function run in a worker thread
# ------------------------------------------------------------------------------------------


class Transaction:
    """The statements of one transaction; SQL uses ``?`` placeholders for both backends."""

    def __init__(self, cursor: Any, paramstyle_format: bool, row_locks: bool) -> None:
        self._cursor = cursor
        self._format = paramstyle_format
        self.row_locks = row_locks
        """True where ``FOR UPDATE`` / ``FOR SHARE`` exist (PostgreSQL); SQLite's writer
        holds the whole database from ``BEGIN IMMEDIATE`` on, which is stronger."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the cursor."""
        if self._format:
            sql = sql.replace("%", "%%").replace("?", "%s")
        self._cursor.execute(sql, tuple(params))
        return self._cursor

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and fetch every row."""
        return [tuple(row) for row in self.execute(sql, params).fetchall()]

    def row(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run a query and fetch the first row (or None)."""
        found = self.execute(sql, params).fetchone()
        return None if found is None else tuple(found)

    def lock_clause(self, mode: str) -> str:
        """`` FOR UPDATE`` / `` FOR SHARE`` where the database has row locks, else nothing."""
        return f" FOR {mode}" if self.row_locks else ""


class Backend(Protocol):
    """A database the store runs transactions in."""

    name: str

    def transaction(self, work: Callable[[Transaction], T], write: bool) -> T:
        """Run ``work`` in one transaction (blocking; called from a worker thread)."""
        ...

    def close(self) -> None:
        """Close every connection."""
        ...

    def migration_lock(self, tx: Transaction) -> None:
        """Serialise schema migrations of processes opening the store at the same time."""
        ...


class SQLiteBackend:
    """SQLite file in WAL mode; a small pool of connections shared by worker threads."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            for _ in range(POOL_SIZE):
                connection = self._connect()
                self._all.append(connection)
                self._idle.put(connection)
        except BaseException:
            self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # transactions are begun explicitly below
                check_same_thread=False,  # one thread at a time, handed over by the pool
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"{self.path}: cannot open the SQLite database: {exc}; check the path and its "
                "permissions (TWIN_DATABASE_URL)"
            ) from exc
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreConfigError(
                    f"{self.path}: SQLite refused WAL mode (journal_mode is {mode}); put the "
                    "database on a local file system (TWIN_DATABASE_URL)"
                )
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        except BaseException as exc:
            connection.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(
                    f"{self.path}: cannot set up the SQLite database: {exc}; check that it is a "
                    "SQLite file on a local file system (TWIN_DATABASE_URL)"
                ) from exc
            raise
        return connection

    def transaction(self, work: Callable[[Transaction], T], write: bool) -> T:
        if self._closed:
            raise StoreUnavailable(f"{self.path}: the project store is closed")
        connection = self._idle.get()
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = work(Transaction(connection.cursor(), False, False))
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return result
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"{self.path}: SQLite error: {exc}") from exc
        finally:
            self._idle.put(connection)

    def migration_lock(self, tx: Transaction) -> None:
        pass  # BEGIN IMMEDIATE already holds the database's write lock

    def close(self) -> None:
        """Close every connection once its work is done: closing one that a worker thread
        still uses (a cancelled request's transaction) crashes the sqlite3 module."""
        with self._lock:
            self._closed = True
            deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000 + 5.0
            for _ in range(len(self._all)):
                try:
                    connection = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    log.warning("%s: a transaction is still running; its connection stays "
                                "open", self.path)
                    break
                connection.close()
            self._all.clear()


class PostgresBackend:
    """PostgreSQL through psycopg 3 and its connection pool."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self._psycopg = psycopg
        self.shown_url = redact_url(url)
        try:  # one direct attempt first: the pool would retry a refused login until its timeout
            psycopg.connect(url, connect_timeout=int(POSTGRES_CONNECT_TIMEOUT_S)).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            raise StoreUnavailable(
                f"{self.shown_url}: cannot connect to PostgreSQL: {reason}; check that the "
                "server runs and TWIN_DATABASE_URL (host, port, user, password, database)"
            ) from exc
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            timeout=POSTGRES_CONNECT_TIMEOUT_S,
            kwargs={"connect_timeout": int(POSTGRES_CONNECT_TIMEOUT_S)},
            name="twin-project-store",
        )
        try:
            self._pool.open(wait=True, timeout=POSTGRES_CONNECT_TIMEOUT_S)
        except Exception as exc:
            self._pool.close()
            raise StoreUnavailable(
                f"{self.shown_url}: cannot connect to PostgreSQL within "
                f"{POSTGRES_CONNECT_TIMEOUT_S:.0f} s ({type(exc).__name__}); check that the "
                "server runs and TWIN_DATABASE_URL (host, port, user, password, database)"
            ) from exc

    def transaction(self, work: Callable[[Transaction], T], write: bool) -> T:
        psycopg = self._psycopg
        try:
            with self._pool.connection() as connection:
                # the pool's context commits on success and rolls back on an exception
                with connection.cursor() as cursor:
                    return work(Transaction(cursor, True, True))
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"{self.shown_url}: PostgreSQL error: {exc}") from exc
        except psycopg.errors.SerializationFailure as exc:  # pragma: no cover - defensive
            raise StoreUnavailable(f"{self.shown_url}: concurrent update, retry: {exc}") from exc

    def migration_lock(self, tx: Transaction) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_KEY,))

    def close(self) -> None:
        self._pool.close()


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    rest = url[len("sqlite://"):]
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        raise StoreConfigError(
            f"database URL {url!r}: expected sqlite:///relative/path.sqlite3 or "
            "sqlite:////absolute/path.sqlite3 (a file: every worker process must see the "
            "same database)"
        )
    return Path(rest[1:])


def open_backend(url: str) -> Backend:
    """The backend for a database URL (blocking)."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        path = sqlite_path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreConfigError(f"{path}: cannot create its folder: {exc}") from exc
        return SQLiteBackend(path)
    if scheme in ("postgresql", "postgres"):
        return PostgresBackend(url)
    raise StoreConfigError(
        f"database URL {redact_url(url)!r}: unknown scheme {scheme!r}; use sqlite:///path or "
        "postgresql://user:password@host:port/database (TWIN_DATABASE_URL)"
    )


def migrate(backend: Backend) -> int:
    """Create or upgrade the schema; returns the version now in force (blocking)."""

    def work(tx: Transaction) -> int:
        backend.migration_lock(tx)
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, applied TEXT NOT NULL)"
        )
        found = tx.row("SELECT MAX(version) FROM schema_migrations")
        current = int(found[0]) if found and found[0] is not None else 0
        if current > SCHEMA_VERSION:
            raise StoreConfigError(
                f"the project database has schema version {current}, newer than this "
                f"program's {SCHEMA_VERSION}; upgrade rostock-virtuell"
            )
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                tx.execute(statement)
            tx.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES (?, ?)",
                (version, _now()),
            )
            log.info("project store: schema migrated to version %d", version)
        return SCHEMA_VERSION

    return backend.transaction(work, write=True)


# ------------------------------------------------------------------------------------------
# the store
# ------------------------------------------------------------------------------------------


def _in_reading_order(feature: dict[str, Any]) -> dict[str, Any]:
    """A Feature with its members in the usual order (type, id, geometry, properties)."""
    geometry = feature["geometry"]
    return {
        "type": feature["type"],
        "id": feature["id"],
        "geometry": {"type": geometry["type"], "coordinates": geometry["coordinates"]},
        "properties": feature["properties"],
    }


def _overlay_record(scene: str, row: tuple[Any, ...]) -> OverlayRecord:
    feature_id, text, revision, created, updated = row
    feature = _in_reading_order(json.loads(text))
    return OverlayRecord(scene, feature_id, feature, revision, created, updated)


def _variant_record(scene: str, row: tuple[Any, ...]) -> VariantRecord:
    variant_id, document, revision, created, updated = row
    return VariantRecord(scene, variant_id, json.loads(document), revision, created, updated)


_OVERLAY_COLUMNS = "id, feature, revision, created, updated"
_VARIANT_COLUMNS = "id, document, revision, created, updated"


@dataclass(frozen=True)
class _RecordKind:
    """A table of revisioned records and its records' names in messages (``missing_noun``
    where there is no record with the id, ``noun`` about its revision)."""

    table: str
    noun: str
    missing_noun: str


_OVERLAYS = _RecordKind("overlays", "overlay feature", "planner overlay feature")
_VARIANTS = _RecordKind("variants", "scenario variant", "scenario variant")


def _locked_revision(
    tx: Transaction,
    kind: _RecordKind,
    scene: str,
    record_id: str,
    if_revision: int | None,
    *,
    replacing: bool,
) -> tuple[int, str]:
    """Lock a stored record for a replacement or a deletion and return its revision and
    creation time; RecordNotFound, or RevisionMismatch when ``if_revision`` is given and
    differs from the stored one."""
    found = tx.row(
        f"SELECT revision, created FROM {kind.table} WHERE scene = ? AND id = ?"
        + tx.lock_clause("UPDATE"),
        (scene, record_id),
    )
    if found is None:
        raise RecordNotFound(f"scene {scene}: no {kind.missing_noun} {record_id!r}")
    revision, created = found
    if if_revision is not None and revision != if_revision:
        raise RevisionMismatch(
            f"scene {scene}: {kind.noun} {record_id!r} is at revision {revision}, "
            f"not {if_revision}; read it again" + (" and reapply the change" if replacing else "")
        )
    return revision, created


def feature_bbox(feature: dict[str, Any]) -> BBox:
    """West, south, east, north of a Feature's geometry (degrees)."""
    lons: list[float] = []
    lats: list[float] = []

    def walk(value: Any) -> None:
        if value and isinstance(value[0], int | float):
            lons.append(float(value[0]))
            lats.append(float(value[1]))
        else:
            for item in value:
                walk(item)

    geometry = feature["geometry"]
    parts = geometry["geometries"] if geometry["type"] == "GeometryCollection" else [geometry]
    for part in parts:
        walk(part["coordinates"])
    if not lons:
        raise ValueError("the feature's geometry has no positions")
    return min(lons), min(lats), max(lons), max(lats)


class ProjectStore:
    """Planners' overlay features and scenario variants, per scene."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._limiter = anyio.CapacityLimiter(POOL_SIZE)
        self._closed = False

    @property
    def backend_name(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._backend.name

    @classmethod
    async def open(cls, url: str) -> ProjectStore:
        """Connect to ``url`` (sqlite:///path or postgresql://…) and migrate its schema."""
        backend = await anyio.to_thread.run_sync(open_backend, url)
        try:
            await anyio.to_thread.run_sync(migrate, backend)
        except BaseException:
            await anyio.to_thread.run_sync(backend.close)
            raise
        return cls(backend)

    async def close(self) -> None:
        """Close every connection; the store cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            await anyio.to_thread.run_sync(self._backend.close)

    async def _run(self, work: Callable[[Transaction], T], write: bool = False) -> T:
        if self._closed:
            raise StoreUnavailable("the project store is closed")
        return await anyio.to_thread.run_sync(
            self._backend.transaction, work, write, limiter=self._limiter
        )

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers a query."""
        await self._run(lambda tx: tx.row("SELECT 1"))

    async def schema_version(self) -> int:
        """The highest applied migration."""
        found = await self._run(lambda tx: tx.row("SELECT MAX(version) FROM schema_migrations"))
        return int(found[0]) if found else 0

    # -- overlays --------------------------------------------------------------------------

    async def overlay_features(self, scene: str, bbox: BBox | None = None) -> list[dict[str, Any]]:
        """The scene's planner features (GeoJSON Feature dicts) by id; optionally only those
        whose bounding box intersects ``bbox`` (west, south, east, north in degrees)."""
        return [record.feature for record in await self.overlay_records(scene, bbox)]

    async def overlay_records(self, scene: str, bbox: BBox | None = None) -> list[OverlayRecord]:
        """The scene's planner features with their bookkeeping, by id."""
        sql = f"SELECT {_OVERLAY_COLUMNS} FROM overlays WHERE scene = ?"
        params: list[Any] = [scene]
        if bbox is not None:
            west, south, east, north = bbox
            sql += " AND east >= ? AND west <= ? AND north >= ? AND south <= ?"
            params += [west, east, south, north]
        sql += " ORDER BY id"
        rows = await self._run(lambda tx: tx.rows(sql, params))
        return [_overlay_record(scene, row) for row in rows]

    async def overlay_feature(self, scene: str, feature_id: str) -> dict[str, Any] | None:
        """One planner feature, or None."""
        record = await self.overlay_record(scene, feature_id)
        return None if record is None else record.feature

    async def overlay_record(self, scene: str, feature_id: str) -> OverlayRecord | None:
        """One planner feature with its bookkeeping, or None."""
        row = await self._run(
            lambda tx: tx.row(
                f"SELECT {_OVERLAY_COLUMNS} FROM overlays WHERE scene = ? AND id = ?",
                (scene, feature_id),
            )
        )
        return None if row is None else _overlay_record(scene, row)

    async def create_overlay(self, scene: str, feature: dict[str, Any]) -> OverlayRecord:
        """Store a new feature (its ``id`` is set); RecordExists if the id is taken."""
        feature_id = str(feature["id"])
        text = _canonical_json(feature)
        west, south, east, north = feature_bbox(feature)
        now = _now()

        def work(tx: Transaction) -> OverlayRecord:
            inserted = tx.execute(
                "INSERT INTO overlays (scene, id, feature, west, south, east, north, revision, "
                "created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?) "
                "ON CONFLICT (scene, id) DO NOTHING",
                (scene, feature_id, text, west, south, east, north, now, now),
            ).rowcount
            if inserted != 1:
                raise RecordExists(f"scene {scene}: overlay feature {feature_id!r} exists")
            return OverlayRecord(scene, feature_id, _in_reading_order(feature), 1, now, now)

        return await self._run(work, write=True)

    async def replace_overlay(
        self, scene: str, feature: dict[str, Any], if_revision: int | None = None
    ) -> OverlayRecord:
        """Replace a stored feature (same id); RecordNotFound, RevisionMismatch."""
        feature_id = str(feature["id"])
        text = _canonical_json(feature)
        west, south, east, north = feature_bbox(feature)
        now = _now()

        def work(tx: Transaction) -> OverlayRecord:
            revision, created = _locked_revision(
                tx, _OVERLAYS, scene, feature_id, if_revision, replacing=True
            )
            tx.execute(
                "UPDATE overlays SET feature = ?, west = ?, south = ?, east = ?, north = ?, "
                "revision = ?, updated = ? WHERE scene = ? AND id = ?",
                (text, west, south, east, north, revision + 1, now, scene, feature_id),
            )
            return OverlayRecord(
                scene, feature_id, _in_reading_order(feature), revision + 1, created, now
            )

        return await self._run(work, write=True)

    async def delete_overlay(
        self, scene: str, feature_id: str, if_revision: int | None = None
    ) -> None:
        """Delete a stored feature; RecordNotFound, RevisionMismatch, OverlayInUse."""

        def work(tx: Transaction) -> None:
            _locked_revision(tx, _OVERLAYS, scene, feature_id, if_revision, replacing=False)
            users = [
                row[0]
                for row in tx.rows(
                    "SELECT variant_id FROM variant_overlays WHERE scene = ? AND feature_id = ? "
                    "ORDER BY variant_id",
                    (scene, feature_id),
                )
            ]
            if users:
                raise OverlayInUse(
                    f"scene {scene}: overlay feature {feature_id!r} is shown in scenario "
                    f"variants {', '.join(users)}; take it out of them first"
                )
            tx.execute("DELETE FROM overlays WHERE scene = ? AND id = ?", (scene, feature_id))

        await self._run(work, write=True)

    # -- variants --------------------------------------------------------------------------

    async def variants(self, scene: str) -> list[VariantRecord]:
        """The scene's scenario variants by id."""
        rows = await self._run(
            lambda tx: tx.rows(
                f"SELECT {_VARIANT_COLUMNS} FROM variants WHERE scene = ? ORDER BY id", (scene,)
            )
        )
        return [_variant_record(scene, row) for row in rows]

    async def variant(self, scene: str, variant_id: str) -> VariantRecord | None:
        """One scenario variant, or None."""
        row = await self._run(
            lambda tx: tx.row(
                f"SELECT {_VARIANT_COLUMNS} FROM variants WHERE scene = ? AND id = ?",
                (scene, variant_id),
            )
        )
        return None if row is None else _variant_record(scene, row)

    @staticmethod
    def _check_overlays(
        tx: Transaction, scene: str, feature_ids: Sequence[str], published: frozenset[str]
    ) -> None:
        """Every id is published or a stored planner feature, locked against deletion."""
        wanted = sorted(set(feature_ids) - published)
        if not wanted:
            return
        marks = ", ".join("?" for _ in wanted)
        present = {
            row[0]
            for row in tx.rows(
                f"SELECT id FROM overlays WHERE scene = ? AND id IN ({marks})"
                + tx.lock_clause("SHARE"),
                (scene, *wanted),
            )
        }
        missing = [feature_id for feature_id in wanted if feature_id not in present]
        if missing:
            raise UnknownOverlays(
                f"scene {scene}: no overlay feature {', '.join(map(repr, missing))} (neither "
                "published with the scene nor created by a planner)",
                missing,
            )

    @staticmethod
    def _link_overlays(
        tx: Transaction, scene: str, variant_id: str, feature_ids: Sequence[str]
    ) -> None:
        tx.execute(
            "DELETE FROM variant_overlays WHERE scene = ? AND variant_id = ?", (scene, variant_id)
        )
        for feature_id in sorted(set(feature_ids)):
            tx.execute(
                "INSERT INTO variant_overlays (scene, variant_id, feature_id) VALUES (?, ?, ?)",
                (scene, variant_id, feature_id),
            )

    async def create_variant(
        self,
        scene: str,
        variant_id: str,
        document: dict[str, Any],
        published_overlays: frozenset[str] = frozenset(),
    ) -> VariantRecord:
        """Store a new variant; RecordExists, UnknownOverlays (ids neither published nor
        stored)."""
        text = _canonical_json(document)
        now = _now()

        def work(tx: Transaction) -> VariantRecord:
            self._check_overlays(tx, scene, document.get("overlays", []), published_overlays)
            inserted = tx.execute(
                "INSERT INTO variants (scene, id, document, revision, created, updated) "
                "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (scene, id) DO NOTHING",
                (scene, variant_id, text, now, now),
            ).rowcount
            if inserted != 1:
                raise RecordExists(f"scene {scene}: scenario variant {variant_id!r} exists")
            self._link_overlays(tx, scene, variant_id, document.get("overlays", []))
            return VariantRecord(scene, variant_id, json.loads(text), 1, now, now)

        return await self._run(work, write=True)

    async def replace_variant(
        self,
        scene: str,
        variant_id: str,
        document: dict[str, Any],
        published_overlays: frozenset[str] = frozenset(),
        if_revision: int | None = None,
    ) -> VariantRecord:
        """Replace a stored variant; RecordNotFound, RevisionMismatch, UnknownOverlays."""
        text = _canonical_json(document)
        now = _now()

        def work(tx: Transaction) -> VariantRecord:
            revision, created = _locked_revision(
                tx, _VARIANTS, scene, variant_id, if_revision, replacing=True
            )
            self._check_overlays(tx, scene, document.get("overlays", []), published_overlays)
            tx.execute(
                "UPDATE variants SET document = ?, revision = ?, updated = ? "
                "WHERE scene = ? AND id = ?",
                (text, revision + 1, now, scene, variant_id),
            )
            self._link_overlays(tx, scene, variant_id, document.get("overlays", []))
            return VariantRecord(scene, variant_id, json.loads(text), revision + 1, created, now)

        return await self._run(work, write=True)

    async def delete_variant(
        self, scene: str, variant_id: str, if_revision: int | None = None
    ) -> None:
        """Delete a stored variant; RecordNotFound, RevisionMismatch."""

        def work(tx: Transaction) -> None:
            _locked_revision(tx, _VARIANTS, scene, variant_id, if_revision, replacing=False)
            # variant_overlays rows go by ON DELETE CASCADE
            tx.execute("DELETE FROM variants WHERE scene = ? AND id = ?", (scene, variant_id))

        await self._run(work, write=True)

    # -- maintenance -----------------------------------------------------------------------

    async def check_consistency(self) -> list[str]:
        """Problems found in the stored data (empty when consistent): the database's own
        integrity check, unreadable records, links to missing variants."""

        def work(tx: Transaction) -> list[str]:
            problems: list[str] = []
            if self._backend.name == "sqlite":
                result = [row[0] for row in tx.rows("PRAGMA integrity_check")]
                if result != ["ok"]:
                    problems += [f"integrity_check: {line}" for line in result]
                problems += [
                    f"foreign_key_check: {row}" for row in tx.rows("PRAGMA foreign_key_check")
                ]
            for scene, feature_id, text in tx.rows("SELECT scene, id, feature FROM overlays"):
                try:
                    feature = json.loads(text)
                except ValueError as exc:
                    problems.append(f"overlay {scene}/{feature_id}: unreadable JSON: {exc}")
                    continue
                if feature.get("id") != feature_id:
                    problems.append(f"overlay {scene}/{feature_id}: feature id differs")
            for scene, variant_id, text in tx.rows("SELECT scene, id, document FROM variants"):
                try:
                    json.loads(text)
                except ValueError as exc:
                    problems.append(f"variant {scene}/{variant_id}: unreadable JSON: {exc}")
            problems += [
                f"variant_overlays {scene}/{variant_id}: no such variant"
                for scene, variant_id in tx.rows(
                    "SELECT l.scene, l.variant_id FROM variant_overlays l LEFT JOIN variants v "
                    "ON v.scene = l.scene AND v.id = l.variant_id WHERE v.id IS NULL"
                )
            ]
            return problems

        return await self._run(work)

