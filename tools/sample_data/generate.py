"""Write the sample data folder: CityGML tiles, LAZ tiles, the planned projects, world.json.

The folder is built under a temporary name beside ``out`` and renamed into place when every
file is written: ``out`` holds the previous complete data or the new complete data, never a
mix. The output is a pure function of the seed and the options (byte-identical files).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyproj

from tools.sample_data import DEFAULT_DENSITY, MAX_DENSITY, citygml, lidar
from tools.sample_data.world import FORMAT, TerrainGrid, World, dumps
from twin import __version__
from twin.errors import InputError
from twin.pipeline.common import Progress
from twin.writers.store import staged_directory


@dataclass
class SampleDataReport:
    """What was written."""

    out: str
    seed: int
    density: float
    files: dict[str, int] = field(default_factory=dict)
    """File name (relative to ``out``) → size in bytes."""
    points: dict[str, int] = field(default_factory=dict)
    """LiDAR points by ASPRS class."""
    buildings: int = 0
    planned_buildings: int = 0
    seconds: float = 0.0
    up_to_date: bool = False
    """True when ``out`` already held exactly this data and nothing was written."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"out": self.out, "seed": self.seed, "density": self.density,
                "files": self.files, "points": self.points, "buildings": self.buildings,
                "planned_buildings": self.planned_buildings, "seconds": self.seconds,
                "up_to_date": self.up_to_date}


def building_tile_name(tile: tuple[int, int]) -> str:
    """The M-V file name of a 2 km LoD2 tile."""
    return f"LoD2_33_{tile[0]}_{tile[1]}_2_MV.gml"


def _check_out(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"{out}: exists and is not a folder: choose a folder for the sample "
                         "data (it is replaced as a whole)")
    if out.is_dir() and any(out.iterdir()):
        world = out / "world.json"
        try:
            known = json.loads(world.read_text(encoding="utf-8")).get("format") == FORMAT
        except (OSError, ValueError, AttributeError):
            known = False
        if not known:
            raise InputError(f"{out}: the folder is not empty and holds no world.json of "
                             "`twin sample-data`; it would be replaced as a whole: choose a "
                             "new or empty folder")


def fingerprint() -> str:
    """What the output depends on besides seed and options: this generator's source and the
    versions of the libraries that shape the bytes (laspy/lazrs, PROJ's WKT, numpy, ...)."""
    digest = hashlib.sha256(f"{FORMAT}\n{__version__}\n".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for name in ("numpy", "scipy", "shapely", "pyproj", "laspy", "lazrs"):
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{name}={version}\n".encode())
    digest.update(f"proj={pyproj.proj_version_str}\n".encode())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _up_to_date(out: Path, seed: int, options: dict[str, Any]) -> SampleDataReport | None:
    """The report of the data at ``out`` if it is exactly what this run would write."""
    try:
        document = json.loads((out / "world.json").read_text(encoding="utf-8"))
        if (document.get("format") != FORMAT or document.get("seed") != seed
                or document.get("options") != options
                or document.get("generator", {}).get("fingerprint") != fingerprint()):
            return None
        hashes: dict[str, str] = document["sha256"]
        present = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        if present != sorted([*hashes, "world.json"]):
            return None
        if any(_sha256(out / name) != digest for name, digest in hashes.items()):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    report = SampleDataReport(str(out), seed, options["density"], up_to_date=True)
    report.files = {name: (out / name).stat().st_size for name in present}
    report.points = dict(document.get("points", {}))
    report.buildings = int(document["buildings"]["existing"])
    report.planned_buildings = int(document["buildings"]["planned"])
    return report


def generate_sample_data(out: Path, seed: int = 1, density: float = DEFAULT_DENSITY,
                         progress: Progress | None = None, world: World | None = None,
                         force: bool = False) -> SampleDataReport:
    """Generate the sample world for ``seed`` and publish its files at ``out`` (``world``:
    an already built ``World(seed)``, to save its construction). When ``out`` already holds
    exactly these files (same seed, options, generator and contents) nothing is rewritten,
    unless ``force``."""
    if not 0.0 < density <= MAX_DENSITY:
        raise InputError(f"--density {density}: LiDAR density must be above 0 and at most "
                         f"{MAX_DENSITY:g} points per m²")
    out = Path(out)
    _check_out(out)
    started = time.perf_counter()
    if not force and (current := _up_to_date(out, seed, {"density": density})) is not None:
        current.seconds = round(time.perf_counter() - started, 2)
        return current
    step = progress or (lambda _n: None)
    if world is None:
        world = World(seed)
    elif world.seed != seed:
        raise InputError(f"the world given was built for seed {world.seed}, not {seed}")
    step(1)
    options = {"density": density}
    # No "--" in the note: it goes into XML comments.
    note = (f"Synthetic sample data of rostock-virtuell {__version__} (twin sample-data, seed "
            f"{seed}): not LAiV M-V data; buildings, terrain and positions are approximate.")
    report = SampleDataReport(str(out), seed, density, buildings=len(world.buildings),
                              planned_buildings=len(world.planned_buildings))
    counts: Counter[int] = Counter()
    with staged_directory(out) as staging:
        by_tile: dict[tuple[int, int], list[Any]] = {}
        for building in world.buildings:
            by_tile.setdefault(building.tile(), []).append(building)
        for tile in sorted(by_tile):
            name = building_tile_name(tile)
            data = citygml.building_tile(name[:-4], by_tile[tile], seed, note)
            (staging / name).write_bytes(data)
            report.files[name] = len(data)
            step(1)
        (staging / "geplant").mkdir()
        planned = {
            "geplant/Warnowbruecke_LoD2.gml": citygml.bridge_file(world.planned_bridge, note),
            "geplant/WarnowQuartier_LoD2.gml": citygml.building_tile(
                "WarnowQuartier_LoD2", world.planned_buildings, seed, note),
        }
        for name, data in planned.items():
            (staging / name).write_bytes(data)
            report.files[name] = len(data)
        step(1)
        cell = world.terrain_parameters.cell
        materials = TerrainGrid(world.extent.e_min, world.extent.n_min, cell,
                                lidar.ground_materials(world))
        roofs = lidar.roofs(world)
        for tile in lidar.tiles(world.extent):
            points = lidar.sample_tile(world, materials, roofs, tile, density, seed)
            name = lidar.tile_name(tile)
            lidar.write_laz(staging / name, points, tile)
            report.files[name] = (staging / name).stat().st_size
            counts.update(dict(zip(*np.unique(points.classification, return_counts=True),
                                   strict=True)))
            step(1)
        names = sorted([*report.files, "world.json"])
        document = world.to_json(options, names)
        document["points"] = {str(int(k)): int(v) for k, v in sorted(counts.items())}
        document["generator"] = {"name": "twin sample-data", "version": __version__,
                                 "fingerprint": fingerprint()}
        document["sha256"] = {name: _sha256(staging / name) for name in sorted(report.files)}
        data = dumps(document).encode("utf-8")
        (staging / "world.json").write_bytes(data)
        report.files["world.json"] = len(data)
    report.files = dict(sorted(report.files.items()))
    report.points = {str(int(k)): int(v) for k, v in sorted(counts.items())}
    report.seconds = round(time.perf_counter() - started, 2)
    return report
