"""Reader of published scenes (docs/scenes.md, "The published scene folder").

A scene is published as ``<scenes>/<scene>/current -> versions/<version>``, each version
complete and immutable, with a ``manifest.json`` that lists every other file of the version
and its SHA-256; or as a single-file ``.3dtiles`` package holding one version's files under
the same keys. This module checks what the service and ``twin package`` rely on: the
manifest's fields, that every listed path is a plain relative path, and that the ``current``
link stays inside the scene's ``versions`` folder.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.errors import FormatError

__all__ = [
    "MANIFEST",
    "SCENE_FORMAT",
    "VERSION_PATTERN",
    "Manifest",
    "current_version",
    "is_plain_path",
    "parse_manifest",
    "version_folder",
]

SCENE_FORMAT = "rostock-virtuell-scene/1"
MANIFEST = "manifest.json"
VERSION_PATTERN = re.compile(r"[0-9a-f]{16}")
SCENE_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def is_plain_path(path: str) -> bool:
    """True for a relative POSIX path without empty, ``.`` or ``..`` segments."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed ``manifest.json``: the fields the service needs, and the document itself."""

    document: dict[str, Any]
    scene_id: str
    version: str
    files: dict[str, str]
    """Path → SHA-256 hex of every file of the version except ``manifest.json``."""
    tour: str
    overlays: str
    layer_ids: tuple[str, ...]
    epoch_ids: tuple[str, ...]


def _field(document: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = document.get(name)
    if not isinstance(value, kind):
        raise FormatError(
            f"{where}: field {name!r} must be a {kind.__name__}, found {type(value).__name__}; "
            "rebuild the scene with `twin build scene`"
        )
    return value


def _tileset_ids(
    document: dict[str, Any], name: str, files: dict[str, Any], where: str
) -> list[str]:
    """Ids of the entries of a list of {id, tileset} whose tileset is a published file."""
    ids: list[str] = []
    for index, entry in enumerate(_field(document, name, list, where)):
        if not isinstance(entry, dict) or not isinstance(entry.get("tileset"), str):
            raise FormatError(f"{where}: {name}[{index}]: needs 'id' and 'tileset'")
        if entry["tileset"] not in files:
            raise FormatError(
                f"{where}: {name}[{index}].tileset {entry['tileset']!r} is not in 'files'"
            )
        ids.append(str(entry.get("id")))
    return ids


def parse_manifest(data: bytes, where: str) -> Manifest:
    """Parse and check a scene manifest; ``where`` names it in errors."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise FormatError(f"{where}: a manifest is a JSON object")
    if document.get("format") != SCENE_FORMAT:
        raise FormatError(
            f"{where}: field 'format' is {document.get('format')!r}, expected "
            f"{SCENE_FORMAT!r}; rebuild the scene with `twin build scene`"
        )
    scene_id = _field(document, "id", str, where)
    if not SCENE_ID_PATTERN.fullmatch(scene_id):
        raise FormatError(f"{where}: field 'id' {scene_id!r} is not a scene id ([a-z0-9_-])")
    version = _field(document, "version", str, where)
    if not VERSION_PATTERN.fullmatch(version):
        raise FormatError(f"{where}: field 'version' {version!r} is not 16 hex digits")
    files = _field(document, "files", dict, where)
    for path, digest in files.items():
        if not is_plain_path(path) or path == MANIFEST:
            raise FormatError(f"{where}: files: {path!r} is not a relative path inside the scene")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise FormatError(f"{where}: files[{path!r}]: not a SHA-256 hex digest")
    layer_ids = _tileset_ids(document, "layers", files, where)
    epoch_ids = _tileset_ids(document, "epochs", files, where)
    tour = _field(document, "tour", str, where)
    overlays = _field(document, "overlays", str, where)
    for name, path in (("tour", tour), ("overlays", overlays)):
        if path not in files:
            raise FormatError(f"{where}: field {name!r}: {path!r} is not in 'files'")
    return Manifest(
        document=document,
        scene_id=scene_id,
        version=version,
        files=dict(files),
        tour=tour,
        overlays=overlays,
        layer_ids=tuple(layer_ids),
        epoch_ids=tuple(epoch_ids),
    )


def current_version(scene_folder: Path) -> str:
    """The version the scene's ``current`` link points at (``versions/<version>``)."""
    link = scene_folder / "current"
    try:
        target = os.readlink(link)
    except FileNotFoundError as exc:
        raise FormatError(f"{link}: missing; publish the scene with `twin build scene`") from exc
    except OSError as exc:
        raise FormatError(f"{link}: not a symlink to versions/<version> ({exc.strerror})") from exc
    parts = Path(target).parts
    if os.path.isabs(target):
        versions = (scene_folder / "versions").resolve()
        if Path(target).parent != versions:
            raise FormatError(f"{link}: points at {target!r}, outside {versions}")
        parts = ("versions", Path(target).name)
    if len(parts) != 2 or parts[0] != "versions" or not VERSION_PATTERN.fullmatch(parts[1]):
        raise FormatError(
            f"{link}: points at {target!r}; expected versions/<16 hex digits>"
        )
    return parts[1]


def version_folder(scene_folder: Path, version: str) -> Path:
    """``<scene>/versions/<version>`` after checking the version's spelling."""
    if not VERSION_PATTERN.fullmatch(version):
        raise FormatError(f"{scene_folder}: {version!r} is not a version (16 hex digits)")
    return scene_folder / "versions" / version
