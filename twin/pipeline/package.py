"""A published scene version → one ``.3dtiles`` package (``twin package``).

The package holds the version's ``manifest.json`` and every file the manifest lists, under
the same relative paths, each checked against its SHA-256 on the way in: a package always
serves exactly what was published.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from twin.errors import FormatError, InputError
from twin.pipeline.common import Progress
from twin.readers.published import MANIFEST, current_version, parse_manifest, version_folder
from twin.writers.package import write_package

__all__ = ["PackageReport", "package_scene"]


@dataclass(slots=True)
class PackageReport:
    """What ``package_scene`` wrote."""

    scene: str
    version: str
    out: Path
    files: int
    bytes: int
    seconds: float


def _read_inside(folder: Path, relative: str) -> bytes:
    """A file of a version folder; symlinks that lead out of the folder are refused."""
    path = folder / relative
    real = os.path.realpath(path)
    if os.path.commonpath([real, os.path.realpath(folder)]) != os.path.realpath(folder):
        raise FormatError(f"{path}: a symlink out of the version folder; refusing to package it")
    try:
        return Path(real).read_bytes()
    except FileNotFoundError as exc:
        raise FormatError(
            f"{path}: listed in {MANIFEST} but missing; rebuild the scene with `twin build scene`"
        ) from exc


def package_scene(
    scenes_dir: Path, scene_id: str, out: Path, progress: Progress | None = None
) -> PackageReport:
    """Write the current version of a published scene as a ``.3dtiles`` package at ``out``."""
    started = time.perf_counter()
    scene_folder = Path(scenes_dir) / scene_id
    if not scene_folder.is_dir():
        raise InputError(
            f"{scene_folder}: no published scene {scene_id!r}; build it with "
            f"`twin build scene {scene_id} --out {scenes_dir}`"
        )
    version = current_version(scene_folder)
    folder = version_folder(scene_folder, version)
    manifest_bytes = _read_inside(folder, MANIFEST)
    manifest = parse_manifest(manifest_bytes, str(folder / MANIFEST))
    if manifest.version != version or manifest.scene_id != scene_id:
        raise FormatError(
            f"{folder / MANIFEST}: says scene {manifest.scene_id!r} version "
            f"{manifest.version!r}, but lies at {scene_id}/versions/{version}"
        )

    def content(relative: str, digest: str) -> bytes:
        data = _read_inside(folder, relative)
        if hashlib.sha256(data).hexdigest() != digest:
            raise FormatError(
                f"{folder / relative}: SHA-256 differs from {MANIFEST}; the version was changed "
                "after publishing — rebuild the scene with `twin build scene`"
            )
        return data

    entries = [(MANIFEST, lambda: manifest_bytes)]
    entries += [
        (relative, lambda r=relative, d=digest: content(r, d))
        for relative, digest in manifest.files.items()
    ]
    size = write_package(out, entries, progress)
    return PackageReport(
        scene=scene_id,
        version=version,
        out=Path(out),
        files=len(entries),
        bytes=size,
        seconds=time.perf_counter() - started,
    )
