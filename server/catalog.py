"""The scenes the service serves: published scene folders and single-file packages.

``SceneCatalog`` keeps an in-memory snapshot: scene id → ``SceneVersion`` (the version
``current`` points at, with its manifest, tour and overlays parsed and its API documents
built). Requests work on the ``SceneVersion`` they looked up, whose files are addressed through
``versions/<version>/`` (never through ``current``): a request that started before a
republish finishes on the version it started with, while the next lookup after the swap gets
the new one. A background task looks at the folders again every ``current_check_seconds`` (0:
before every lookup), in a worker thread, as is every file read: nothing blocks the event loop,
and no request waits for a look.

Published files are served from a bounded in-memory cache keyed by (scene, version, path);
misses are read in a thread, checked against the manifest's SHA-256 and compressed once.
Only paths the manifest lists can be read, and folder reads refuse symlinks that leave the
version folder, so no URL reaches anything else on the disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
import shapely
from shapely.geometry import shape

from server import metrics
from server.delivery import Entry, EntryCache, json_entry, media_type
from server.settings import Settings
from twin.errors import FormatError, TwinError
from twin.readers.package import PackageReader
from twin.readers.published import (
    MANIFEST,
    SCENE_ID_PATTERN,
    VERSION_PATTERN,
    Manifest,
    current_version,
    parse_manifest,
    version_folder,
)

__all__ = ["API_PREFIX", "SceneCatalog", "SceneVersion"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
_LARGEST_HELD = 16 << 20
"""Files above this (or a quarter of the cache) are streamed from storage, not held."""
_OLD_VERSIONS_HELD = 8


class NotPublished(TwinError, LookupError):
    """A file the version does not have, or one that would lead out of the scene."""


class Source(Protocol):
    """Where a version's files are: a folder or a package (all methods block: use a thread)."""

    origin: str

    def read(self, path: str) -> bytes: ...
    def size(self, path: str) -> int: ...
    def open_stream(self, path: str) -> Callable[[int, int], bytes]: ...


class FolderSource:
    """Files of ``<scene>/versions/<version>/``; symlinks out of that folder are refused."""

    def __init__(self, folder: Path) -> None:
        self.origin = str(folder)
        self.root = os.path.realpath(folder)

    def _resolve(self, path: str) -> str:
        real = os.path.realpath(os.path.join(self.root, path))
        if not real.startswith(self.root + os.sep):
            raise NotPublished(f"{self.origin}/{path}: leads out of the version folder")
        return real

    def read(self, path: str) -> bytes:
        with open(self._resolve(path), "rb") as stream:
            return stream.read()

    def size(self, path: str) -> int:
        return os.stat(self._resolve(path)).st_size

    def open_stream(self, path: str) -> Callable[[int, int], bytes]:
        """A reader of byte ranges on one open descriptor (valid even if the file is deleted)."""
        descriptor = os.open(self._resolve(path), os.O_RDONLY)

        def read(start: int, length: int) -> bytes:
            if length == 0:
                os.close(descriptor)
                return b""
            return os.pread(descriptor, length, start)

        return read


class PackageSource:
    """Entries of a ``.3dtiles`` package."""

    def __init__(self, reader: PackageReader) -> None:
        self.origin = str(reader.path)
        self.reader = reader

    def read(self, path: str) -> bytes:
        data = self.reader.read(path)
        if data is None:
            raise NotPublished(f"{self.origin}: no entry {path!r}")
        return data

    def size(self, path: str) -> int:
        size = self.reader.size(path)
        if size is None:
            raise NotPublished(f"{self.origin}: no entry {path!r}")
        return size

    def open_stream(self, path: str) -> Callable[[int, int], bytes]:
        def read(start: int, length: int) -> bytes:
            if length == 0:
                return b""
            return self.reader.read_range(path, start, length) or b""

        return read


@dataclass(eq=False)
class SceneVersion:
    """One published version of a scene, as the API shows it."""

    scene_id: str
    version: str
    manifest: Manifest
    source: Source
    identity: tuple[Any, ...]
    """What the version was loaded from (folder and version, or package file and its stat)."""
    files: dict[str, str]
    """Every servable path (the manifest's files and manifest.json) → SHA-256."""
    tour: dict[str, Any]
    overlay_features: list[dict[str, Any]]
    overlay_shapes: list[Any]
    documents: dict[str, Entry] = field(default_factory=dict)
    """API documents of this version: 'detail', 'tour', 'stop/<n>'."""

    @property
    def layer_ids(self) -> tuple[str, ...]:
        return self.manifest.layer_ids

    @property
    def epoch_ids(self) -> tuple[str, ...]:
        return self.manifest.epoch_ids

    @property
    def overlay_ids(self) -> set[str]:
        return {str(feature["id"]) for feature in self.overlay_features}

    def url(self, path: str = "") -> str:
        """The immutable URL of a file of this version."""
        return f"{API_PREFIX}/scenes/{self.scene_id}/v/{self.version}/{path}"

    def summary(self) -> dict[str, Any]:
        """The scene's entry in the scene list."""
        document = self.manifest.document
        base = f"{API_PREFIX}/scenes/{self.scene_id}"
        return {
            "id": self.scene_id,
            "title": document.get("title"),
            "description": document.get("description"),
            "version": self.version,
            "stops": len(self.tour.get("stops", [])),
            "links": {"detail": base, "tour": f"{base}/tour", "preview": f"/tour/{self.scene_id}"},
        }


def _checked(source: Source, path: str, digest: str) -> bytes:
    data = source.read(path)
    if hashlib.sha256(data).hexdigest() != digest:
        raise FormatError(
            f"{source.origin}/{path}: SHA-256 differs from {MANIFEST}; the version was changed "
            "after publishing — rebuild the scene"
        )
    return data


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{where}: not JSON ({exc})") from exc


def load_version(scene_id: str, source: Source, identity: tuple[Any, ...]) -> SceneVersion:
    """Read and check one version's manifest, tour and overlays; build its API documents."""
    manifest_bytes = source.read(MANIFEST)
    manifest = parse_manifest(manifest_bytes, f"{source.origin}/{MANIFEST}")
    tour = _json(
        _checked(source, manifest.tour, manifest.files[manifest.tour]),
        f"{source.origin}/{manifest.tour}",
    )
    stops = tour.get("stops") if isinstance(tour, dict) else None
    if not isinstance(stops, list) or not all(isinstance(stop, dict) for stop in stops):
        raise FormatError(f"{source.origin}/{manifest.tour}: field 'stops' must be a list")
    overlays_where = f"{source.origin}/{manifest.overlays}"
    collection = _json(
        _checked(source, manifest.overlays, manifest.files[manifest.overlays]), overlays_where
    )
    features = collection.get("features") if isinstance(collection, dict) else None
    if not isinstance(features, list):
        raise FormatError(f"{overlays_where}: not a GeoJSON FeatureCollection")
    shapes = []
    for index, feature in enumerate(features):
        if not isinstance(feature, dict) or not isinstance(feature.get("id"), str):
            raise FormatError(f"{overlays_where}: features[{index}]: needs a string 'id'")
        try:
            shapes.append(shape(feature["geometry"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FormatError(
                f"{overlays_where}: features[{index}] ({feature['id']}): bad geometry ({exc})"
            ) from exc
    shapely.prepare(shapes)
    files = dict(manifest.files)
    files[MANIFEST] = hashlib.sha256(manifest_bytes).hexdigest()
    version = SceneVersion(
        scene_id=scene_id,
        version=manifest.version,
        manifest=manifest,
        source=source,
        identity=identity,
        files=files,
        tour=tour,
        overlay_features=features,
        overlay_shapes=shapes,
    )
    _build_documents(version)
    return version


def _build_documents(version: SceneVersion) -> None:
    """The detail, tour and stop documents of a version, each with its ETag and compression."""
    document = {key: value for key, value in version.manifest.document.items() if key != "files"}
    base = f"{API_PREFIX}/scenes/{version.scene_id}"
    document["id"] = version.scene_id
    document["layers"] = [
        dict(layer, tileset_url=version.url(layer["tileset"])) for layer in document["layers"]
    ]
    document["epochs"] = [
        dict(epoch, tileset_url=version.url(epoch["tileset"])) for epoch in document["epochs"]
    ]
    document["base_url"] = version.url()
    document["manifest_url"] = version.url(MANIFEST)
    document["tour_url"] = f"{base}/tour"
    document["overlays_url"] = f"{base}/overlays"
    document["files"] = len(version.files)
    version.documents["detail"] = json_entry(document)
    version.documents["tour"] = json_entry(version.tour)
    for stop in version.tour.get("stops", []):
        number = stop.get("number")
        if isinstance(number, int):
            version.documents[f"stop/{number}"] = json_entry(stop)


class SceneCatalog:
    """Scene id → current ``SceneVersion``, checked again at most every few seconds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scenes_dir = Path(settings.scenes_dir)
        self._scenes: dict[str, SceneVersion] = {}
        self._errors: dict[str, str] = {}
        self._old: OrderedDict[tuple[str, str], SceneVersion] = OrderedDict()
        self._refreshing: asyncio.Future[None] | None = None
        self.cache = EntryCache(settings.tile_cache_bytes)
        self.cache.on_change = metrics.CACHE_BYTES.set
        self._largest_held = min(_LARGEST_HELD, settings.tile_cache_bytes // 4)
        self._loading: dict[tuple[str, str, str], asyncio.Future[Entry]] = {}

    # -- the snapshot ---------------------------------------------------------------------

    def has_scene(self, scene_id: str) -> bool:
        """Whether a scene is published (as of the last check)."""
        return scene_id in self._scenes

    def scene(self, scene_id: str) -> SceneVersion | None:
        """The current version of a scene (as of the last check), or None."""
        return self._scenes.get(scene_id)

    def scene_ids(self) -> list[str]:
        """Every published scene, sorted."""
        return sorted(self._scenes)

    def overlay_features(self, scene_id: str) -> list[dict[str, Any]]:
        """The published overlay features of a scene's current version (empty if none)."""
        version = self._scenes.get(scene_id)
        return list(version.overlay_features) if version is not None else []

    @property
    def errors(self) -> dict[str, str]:
        """Scenes that could not be read at the last check: name → one-line reason."""
        return dict(self._errors)

    def version_now(self, scene_id: str, version: str | None) -> SceneVersion | None:
        """The current (``version`` None) or given version when that needs no waiting (it is in
        memory, and lookups need not check first). None means: ask ``current``/``version``."""
        if not self.settings.current_check_seconds:
            return None
        scene = self._scenes.get(scene_id)
        if scene is None or version is None or scene.version == version:
            return scene
        return self._old.get((scene_id, version))

    def entry_now(self, version: SceneVersion, path: str) -> Entry | None:
        """A published file's entry when it is in memory (counted as a cache hit), else None."""
        entry = self.cache.get((version.scene_id, version.version, path))
        if entry is not None:
            metrics.TALLY.cache_hits += 1
        return entry

    async def current(self, scene_id: str) -> SceneVersion | None:
        """The current version of a scene (checking the folders first when the interval is 0)."""
        if not self.settings.current_check_seconds:
            await self.refresh()
        return self._scenes.get(scene_id)

    async def all_current(self) -> list[SceneVersion]:
        """The current version of every scene (checking first when the interval is 0)."""
        if not self.settings.current_check_seconds:
            await self.refresh()
        return [self._scenes[scene_id] for scene_id in sorted(self._scenes)]

    async def version(self, scene_id: str, version: str) -> SceneVersion | None:
        """A given version of a scene: the current one, a recent one, or one still on disk."""
        current = await self.current(scene_id)
        if current is None:
            return None
        if current.version == version:
            return current
        if not VERSION_PATTERN.fullmatch(version):
            return None
        key = (scene_id, version)
        old = self._old.get(key)
        if old is not None:
            self._old.move_to_end(key)
            return old
        if not isinstance(current.source, FolderSource):
            return None
        folder = version_folder(self.scenes_dir / scene_id, version)
        try:
            old = await anyio.to_thread.run_sync(
                load_version, scene_id, _folder_source(self.scenes_dir, scene_id, folder),
                ("folder", scene_id, version),
            )
        except (OSError, TwinError) as exc:
            log.debug("scene %s version %s: %s", scene_id, version, exc)
            return None
        if old.version != version:
            return None
        self._old[key] = old
        while len(self._old) > _OLD_VERSIONS_HELD:
            self._old.popitem(last=False)
        return old

    async def refresh(self) -> None:
        """Look at the published folders and packages again (one look at a time)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
        await asyncio.shield(self._refreshing)

    async def watch(self) -> None:
        """Look again every ``current_check_seconds`` (run as a task while the app runs)."""
        interval = self.settings.current_check_seconds
        if not interval:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - keep serving the last good snapshot
                log.exception("looking at the published scenes failed")

    async def _refresh(self) -> None:
        scenes, errors = await anyio.to_thread.run_sync(self._scan, dict(self._scenes))
        for name, reason in errors.items():
            if self._errors.get(name) != reason:
                log.warning("scene %s not served: %s", name, reason)
        for scene_id, version in scenes.items():
            previous = self._scenes.get(scene_id)
            if previous is not None and previous is not version:
                self._old[(scene_id, previous.version)] = previous
                while len(self._old) > _OLD_VERSIONS_HELD:
                    self._old.popitem(last=False)
        self._scenes, self._errors = scenes, errors

    def _scan(
        self, previous: dict[str, SceneVersion]
    ) -> tuple[dict[str, SceneVersion], dict[str, str]]:
        """The current snapshot (runs in a thread): unchanged versions are kept as they are."""
        scenes: dict[str, SceneVersion] = {}
        errors: dict[str, str] = {}
        if self.scenes_dir.is_dir():
            for entry in sorted(os.scandir(self.scenes_dir), key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                if not SCENE_ID_PATTERN.fullmatch(entry.name):
                    errors[entry.name] = f"{entry.path}: not a scene id ([a-z0-9_-])"
                    continue
                try:
                    scenes[entry.name] = self._scan_folder(entry.name, previous.get(entry.name))
                except (OSError, TwinError) as exc:
                    errors[entry.name] = _reason(exc)
        for package in self.settings.packages:
            scene_id = package.stem
            try:
                if not SCENE_ID_PATTERN.fullmatch(scene_id):
                    raise FormatError(f"{package}: the file stem is not a scene id ([a-z0-9_-])")
                if scene_id in scenes:
                    raise FormatError(
                        f"{package}: scene {scene_id!r} is also a folder in {self.scenes_dir}; "
                        "rename the package"
                    )
                scenes[scene_id] = self._scan_package(package, previous.get(scene_id))
            except (OSError, TwinError) as exc:
                errors[str(package)] = _reason(exc)
        return scenes, errors

    def _scan_folder(self, scene_id: str, previous: SceneVersion | None) -> SceneVersion:
        scene_folder = self.scenes_dir / scene_id
        version = current_version(scene_folder)
        identity = ("folder", scene_id, version)
        if previous is not None and previous.identity == identity:
            return previous
        folder = version_folder(scene_folder, version)
        loaded = load_version(scene_id, _folder_source(self.scenes_dir, scene_id, folder), identity)
        if loaded.version != version:
            raise FormatError(
                f"{folder}/{MANIFEST}: says version {loaded.version}, but lies in {folder.name}"
            )
        return loaded

    def _scan_package(self, package: Path, previous: SceneVersion | None) -> SceneVersion:
        status = os.stat(package)
        identity = ("package", str(package), status.st_ino, status.st_size, status.st_mtime_ns)
        if previous is not None and previous.identity == identity:
            return previous
        # A replaced package's old reader stays open for requests still using its version; it
        # is closed when the last reference to that version goes.
        return load_version(package.stem, PackageSource(PackageReader(package)), identity)

    def close(self) -> None:
        """Close the package readers (at shutdown)."""
        for version in [*self._scenes.values(), *self._old.values()]:
            if isinstance(version.source, PackageSource):
                version.source.reader.close()

    # -- published files ------------------------------------------------------------------

    async def file_entry(self, version: SceneVersion, path: str) -> Entry | None:
        """A published file's entry (from memory, else read in a thread); None if not listed."""
        digest = version.files.get(path)
        if digest is None:
            return None
        key = (version.scene_id, version.version, path)
        entry = self.cache.get(key)
        if entry is not None:
            metrics.TALLY.cache_hits += 1
            return entry
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        metrics.TALLY.cache_misses += 1
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            entry = await anyio.to_thread.run_sync(self._load_entry, version, path, digest)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._loading[key]
        future.set_result(entry)
        self.cache.put(key, entry)
        return entry

    def _load_entry(self, version: SceneVersion, path: str, digest: str) -> Entry:
        size = version.source.size(path)
        content_type = media_type(path)
        if size > self._largest_held:
            return Entry(None, size, digest, content_type)
        data = version.source.read(path)
        if hashlib.sha256(data).hexdigest() != digest:
            raise FormatError(
                f"{version.source.origin}/{path}: SHA-256 differs from {MANIFEST}; "
                "the published version was changed — rebuild the scene"
            )
        return Entry(data, len(data), digest, content_type)

    def stream(
        self, version: SceneVersion, path: str
    ) -> Callable[[int, int], Awaitable[bytes]]:
        """Read byte ranges of a large file in a thread, on one open file."""
        opened: list[Callable[[int, int], bytes]] = []

        def read(start: int, length: int) -> bytes:
            if not opened:
                if length == 0:
                    return b""
                opened.append(version.source.open_stream(path))
            return opened[0](start, length)

        async def chunk(start: int, length: int) -> bytes:
            if length == 0:
                return read(start, 0)  # closing a descriptor does not wait for the disk
            return await anyio.to_thread.run_sync(read, start, length)

        return chunk


def _folder_source(scenes_dir: Path, scene_id: str, folder: Path) -> FolderSource:
    """A version folder, refused when it (or the scene folder) is a symlink leading elsewhere."""
    versions = os.path.realpath(scenes_dir / scene_id / "versions")
    scene_root = os.path.realpath(scenes_dir / scene_id)
    if os.path.dirname(scene_root) != os.path.realpath(scenes_dir):
        raise FormatError(f"{scenes_dir / scene_id}: a symlink out of {scenes_dir}")
    if os.path.dirname(versions) != scene_root or not os.path.isdir(versions):
        raise FormatError(f"{scenes_dir / scene_id}/versions: not a folder inside the scene")
    if os.path.dirname(os.path.realpath(folder)) != versions:
        raise FormatError(f"{folder}: leads out of {scenes_dir / scene_id}/versions")
    if not os.path.isdir(folder):
        raise FormatError(f"{folder}: no such version folder")
    return FolderSource(folder)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)
