"""The sample data and the three published sample scenes, made once for a whole test run.

Both live under ``build/test-cache`` (beside the project's own build output): pytest-xdist
workers take a file lock, the first one generates and builds, the others find the result;
the scene builder is incremental, so a later run with unchanged code and data only checks.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "test-cache"
SCENES = ("gehlsdorf", "rostocker-oval", "warnowbruecke")


@dataclass(frozen=True)
class PublishedScenes:
    """Where the sample data and the published scenes are, and what building them took."""

    data: Path
    out: Path

    def current(self, scene: str) -> Path:
        """The scene's current version folder."""
        return (self.out / scene / "current").resolve()

    def manifest(self, scene: str) -> dict:
        """The current version's manifest."""
        return json.loads((self.current(scene) / "manifest.json").read_text(encoding="utf-8"))

    def tour(self, scene: str) -> dict:
        """The current version's tour."""
        return json.loads((self.current(scene) / "tour.json").read_text(encoding="utf-8"))


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def twin(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``twin`` command of this checkout (quiet: no progress bars)."""
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=ROOT, capture_output=True, text=True, check=check,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def sample_data() -> Path:
    """The sample data at the default options (generated when missing or outdated)."""
    data = CACHE / "sample-data"
    with _locked("sample-data"):
        twin("sample-data", "--out", str(data))
    return data


def published_scenes() -> PublishedScenes:
    """All sample scenes, built (incrementally) into the test cache."""
    data = sample_data()
    out = CACHE / "scenes"
    with _locked("scenes"):
        result = twin("build", "scene", "all", "--data", str(data), "--out", str(out),
                      check=False)
        if result.returncode != 0:
            raise AssertionError(f"twin build scene all failed:\n{result.stderr}")
    return PublishedScenes(data, out)
