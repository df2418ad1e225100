"""A small published scene for the service's tests, laid out exactly as docs/scenes.md says.

``publish_scene`` builds the buildings layer from the committed CityGML sample with the real
pipeline, adds an epoch tileset, tour.json and overlays.geojson, writes manifest.json with
real SHA-256s, and publishes the version by swapping the ``current`` link (rename of a new
link), as the scene builder does. ``edition`` changes the tour title, so each edition is a new
version with its own content.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from twin.pipeline import CityGMLOptions, build_citygml

REPO = Path(__file__).resolve().parent.parent
SAMPLE_GML = REPO / "scenes" / "data" / "LoD2_33_312_5998_2_MV.gml"
SCENE_ID = "warnowbruecke"

OVERLAYS: dict[str, Any] = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "id": "warnowbruecke",
            "geometry": {
                "type": "LineString",
                "coordinates": [[12.1322, 54.0945, 42.1], [12.1365, 54.0995, 43.0]],
            },
            "properties": {
                "name": "Warnowbrücke",
                "name_en": "Warnow Bridge",
                "kind": "bridge",
                "status": "planned",
                "start": "2026",
                "end": "2030",
                "cost_eur": 62850000,
                "description_de": "Geh- und Radwegbrücke vom Stadthafen nach Gehlsdorf.",
                "description_en": "Foot and cycle bridge from the Stadthafen to Gehlsdorf.",
                "source": "https://rathaus.rostock.de/",
                "height_mode": "absolute",
            },
        },
        {
            "type": "Feature",
            "id": "primelberg-infotafel",
            "geometry": {"type": "Point", "coordinates": [12.1570, 54.0964, 41.5]},
            "properties": {
                "name": "Primelberg",
                "name_en": "Primelberg",
                "kind": "info-point",
                "status": "done",
                "start": "2018",
                "end": None,
                "cost_eur": None,
                "description_de": "Infotafel zum slawisch-wikingischen Handelsplatz.",
                "description_en": "Information board on the Slavic-Viking trading place.",
                "source": "https://rathaus.rostock.de/",
                "height_mode": "clamp",
            },
        },
        {
            "type": "Feature",
            "id": "stadthafen-kaimauer",
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [
                        [12.1250, 54.0930, 40.0],
                        [12.1330, 54.0930, 40.0],
                        [12.1330, 54.0945, 40.0],
                        [12.1250, 54.0945, 40.0],
                        [12.1250, 54.0930, 40.0],
                    ]
                ],
            },
            "properties": {
                "name": "Kaimauer Stadthafen",
                "name_en": "Stadthafen quay wall",
                "kind": "quay",
                "status": "under construction",
                "start": "2025",
                "end": "2026",
                "cost_eur": 22000000,
                "description_de": "Erneuerung von etwa 450 m Kaimauer.",
                "description_en": "Renewal of about 450 m of quay wall.",
                "source": "https://rathaus.rostock.de/",
                "height_mode": "clamp",
            },
        },
    ],
}


def _tour(edition: int) -> dict[str, Any]:
    suffix = f" ({edition})" if edition else ""
    return {
        "scene": SCENE_ID,
        "title": {"de": f"Über die Warnow{suffix}", "en": f"Across the Warnow{suffix}"},
        "stops": [
            {
                "number": 1,
                "id": "schnickmannstrasse",
                "title": {"de": "Schnickmannstraße", "en": "Schnickmannstrasse"},
                "narration": {"de": "Hier beginnt die Brücke.", "en": "The bridge starts here."},
                "dwell": 12,
                "epoch": "heute",
                "highlight": ["warnowbruecke"],
                "camera": {
                    "position": [312400.0, 5997500.0, 60.0],
                    "longitude": 12.13216,
                    "latitude": 54.09318,
                    "height": 98.3,
                    "heading": 20.0,
                    "pitch": -25.0,
                    "roll": 0.0,
                    "fov": 60.0,
                    "look_at": [312560.0, 5997640.0, 5.0],
                },
            },
            {
                "number": 2,
                "id": "faehrberg",
                "title": {"de": "Fährberg", "en": "Faehrberg"},
                "narration": {"de": "Das Gehlsdorfer Ufer.", "en": "The Gehlsdorf shore."},
                "dwell": 10,
                "epoch": "heute",
                "highlight": [],
                "camera": {
                    "position": [312900.0, 5998300.0, 80.0],
                    "longitude": 12.13810,
                    "latitude": 54.10117,
                    "height": 118.2,
                    "heading": 200.0,
                    "pitch": -30.0,
                    "roll": 0.0,
                    "fov": 60.0,
                    "look_at": [312795.0, 5998160.0, 3.0],
                },
            },
        ],
    }


@cache
def _buildings_layer(cache_dir: str) -> Path:
    """The buildings tileset of the sample, built once per process (small tiles: many URLs)."""
    out = Path(cache_dir) / "buildings"
    if not (out / "tileset.json").exists():
        build_citygml([SAMPLE_GML], out, CityGMLOptions(max_features_per_tile=8))
    return out


def _json_bytes(document: Any) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode()


def publish_scene(
    scenes_dir: Path,
    edition: int = 0,
    scene_id: str = SCENE_ID,
    cache_dir: Path | None = None,
    extra_files: dict[str, bytes] | None = None,
    symlinks: dict[str, Path] | None = None,
) -> str:
    """Publish one version of the test scene under ``scenes_dir``; returns the version.

    ``extra_files`` adds files (path → bytes) to the version; ``symlinks`` adds symlinks
    (path → target), listed in the manifest with their target's SHA-256 as a careless or
    hostile publisher would.
    """
    scene_folder = Path(scenes_dir) / scene_id
    versions = scene_folder / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    layer = _buildings_layer(str(cache_dir or (Path(scenes_dir) / ".build")))
    staging = versions / f".staging-{uuid.uuid4().hex[:8]}"
    shutil.copytree(layer, staging / "layers" / "buildings")
    epoch_tileset = json.loads((layer / "tileset.json").read_text())
    epoch_tileset["root"] = {
        "boundingVolume": epoch_tileset["root"]["boundingVolume"],
        "geometricError": epoch_tileset["geometricError"],
        "refine": "ADD",
        "children": [
            {
                "boundingVolume": epoch_tileset["root"]["boundingVolume"],
                "geometricError": epoch_tileset["geometricError"],
                "content": {"uri": "../../layers/buildings/tileset.json"},
            }
        ],
    }
    if "transform" in epoch_tileset.get("root", {}):
        del epoch_tileset["root"]["transform"]
    (staging / "epochs" / "heute").mkdir(parents=True)
    (staging / "epochs" / "heute" / "tileset.json").write_bytes(_json_bytes(epoch_tileset))
    tour = _tour(edition)
    (staging / "tour.json").write_bytes(_json_bytes(tour))
    (staging / "overlays.geojson").write_bytes(_json_bytes(OVERLAYS))
    for relative, data in (extra_files or {}).items():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_bytes(data)
    for relative, target in (symlinks or {}).items():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, staging / relative)
    files = {
        path.relative_to(staging).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(staging.rglob("*"))
        if path.is_file()
    }
    version = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    manifest = {
        "format": "rostock-virtuell-scene/1",
        "id": scene_id,
        "version": version,
        "title": {"de": "Warnowbrücke", "en": "Warnow Bridge"},
        "description": {
            "de": "Die geplante Brücke zwischen Stadthafen und Gehlsdorf.",
            "en": "The planned bridge between the Stadthafen and Gehlsdorf.",
        },
        "generator": "rostock-virtuell 0.1.0 (tests/server_fixtures.py)",
        "crs": "EPSG:25833",
        "vertical_model": {"name": "EGM96", "expected_error_m": 1.0, "geoid": "egm96_15.gtx"},
        "area": {
            "type": "Polygon",
            "coordinates": [
                [[12.128, 54.090], [12.141, 54.090], [12.141, 54.100], [12.128, 54.100],
                 [12.128, 54.090]]
            ],
        },
        "region": [0.21174, 0.94406, 0.21196, 0.94424, 38.0, 90.0],
        "attributions": ["Synthetische Beispieldaten (Rostock virtuell)"],
        "layers": [
            {
                "id": "buildings",
                "kind": "citygml",
                "title": {"de": "Gebäude", "en": "Buildings"},
                "tileset": "layers/buildings/tileset.json",
                "epochs": ["heute"],
                "visible": True,
                "region": [],
                "tiles": sum(1 for p in files if p.endswith(".glb")),
                "bytes": sum((staging / p).stat().st_size for p in files),
            }
        ],
        "epochs": [
            {
                "id": "heute",
                "title": {"de": "Heute", "en": "Today"},
                "tileset": "epochs/heute/tileset.json",
                "layers": ["buildings"],
            }
        ],
        "default_epoch": "heute",
        "tour": "tour.json",
        "overlays": "overlays.geojson",
        "files": files,
    }
    (staging / "manifest.json").write_bytes(_json_bytes(manifest))
    target = versions / version
    if target.exists():
        shutil.rmtree(staging)
    else:
        os.rename(staging, target)
    link = scene_folder / f".current-{uuid.uuid4().hex[:8]}"
    os.symlink(f"versions/{version}", link)
    os.replace(link, scene_folder / "current")
    return version


def tile_paths(scenes_dir: Path, scene_id: str = SCENE_ID) -> list[str]:
    """The GLB paths (relative to the version) of the current version."""
    folder = Path(scenes_dir) / scene_id / "current"
    manifest = json.loads((folder / "manifest.json").read_text())
    return sorted(path for path in manifest["files"] if path.endswith(".glb"))


# --- a real ``twin serve`` process --------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``/readyz`` until it answers 200; AssertionError with the log's tail if the
    service exits or is not ready within a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"twin serve exited: {log.read_text()[-3000:]}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    raise AssertionError(f"twin serve did not become ready: {log.read_text()[-3000:]}")


@contextmanager
def serving(env: dict[str, str], log: Path, *, workers: int) -> Iterator[int]:
    """``twin serve`` with ``env`` on a free port until the block ends (SIGTERM, then kill);
    yields the port. Its output goes to ``log``."""
    env = dict(env)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "-q", "serve", "--port", str(port),
             "--workers", str(workers)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(port, process, log)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
