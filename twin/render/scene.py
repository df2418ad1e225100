"""A published scene as the renderer sees it: manifest, epochs, tour stops, overlays and the
terrain height grid, read from ``<scenes>/<scene>/current`` (docs/scenes.md)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from twin.crs import (
    EcefTransformer,
    ecef_to_enu_matrix,
    find_grid,
    geodetic_to_ecef,
)
from twin.errors import FormatError, GeoidError, InputError
from twin.model.heights import HeightGrid
from twin.readers.heights import read_heights
from twin.readers.published import (
    MANIFEST,
    Manifest,
    current_version,
    parse_manifest,
    version_folder,
)
from twin.readers.tileset import Tileset
from twin.scene.camera import scene_transformer

__all__ = ["Epoch", "PublishedScene", "TourStop", "open_scene", "published_scene_ids"]

_DEFAULT_GEOID = "egm96_15.gtx"
_REBUILD = "rebuild the scene with `twin build scene`"


@dataclass(frozen=True, slots=True)
class Epoch:
    """One epoch of the scene: its id, titles, tileset and layers."""

    id: str
    title: dict[str, str]
    tileset: str
    layers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TourStop:
    """A tour stop with its camera (EPSG:25833 + DHHN2016 and angles from true north)."""

    number: int
    id: str
    title: dict[str, str]
    epoch: str | None
    highlight: tuple[str, ...]
    dwell: float
    position: tuple[float, float, float]
    look_at: tuple[float, float, float] | None
    heading: float
    pitch: float
    roll: float
    fov: float


def published_scene_ids(scenes_dir: Path) -> list[str]:
    """Ids of the scenes published under ``scenes_dir`` (folders with a ``current`` link)."""
    if not scenes_dir.is_dir():
        return []
    return sorted(p.name for p in scenes_dir.iterdir() if (p / "current").is_symlink())


def open_scene(scenes_dir: Path, scene_id: str) -> PublishedScene:
    """The current version of a published scene; InputError naming the scenes that exist."""
    folder = scenes_dir / scene_id
    if not (folder / "current").is_symlink():
        known = published_scene_ids(scenes_dir)
        listing = f"published: {', '.join(known)}" if known else "none is published there"
        raise InputError(
            f"unknown scene {scene_id!r} in {scenes_dir} ({listing}); build it with "
            f"`twin build scene {scene_id}` or pass --scenes DIR"
        )
    version = version_folder(folder, current_version(folder))
    path = version / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise FormatError(f"{path}: missing; {_REBUILD}") from exc
    return PublishedScene(version, parse_manifest(data, str(path)))


class PublishedScene:
    """The files of one published version, read when first needed."""

    def __init__(self, folder: Path, manifest: Manifest) -> None:
        self.folder = folder
        self.manifest = manifest
        self.id = manifest.scene_id
        document = manifest.document
        self.title: dict[str, str] = dict(document.get("title") or {})
        self.attributions: list[str] = [str(a) for a in document.get("attributions") or []]
        self.layers: dict[str, dict[str, Any]] = {
            str(layer.get("id")): layer for layer in document["layers"]
        }
        self.epochs: dict[str, Epoch] = {}
        for entry in document["epochs"]:
            self.epochs[str(entry["id"])] = Epoch(
                id=str(entry["id"]),
                title=dict(entry.get("title") or {}),
                tileset=str(entry["tileset"]),
                layers=tuple(str(x) for x in entry.get("layers") or ()),
            )
        default = document.get("default_epoch")
        self.default_epoch = default if default in self.epochs else next(iter(self.epochs), "")
        region = document.get("region")
        if not (isinstance(region, list) and len(region) == 6):
            raise FormatError(f"{self.where(MANIFEST)}: field 'region' must hold 6 numbers")
        self.region = [float(v) for v in region]
        self._tilesets: dict[str, Tileset] = {}

    def where(self, name: str) -> str:
        """A file of this version, for messages."""
        return str(self.folder / name)

    def tileset_name(self, path: Path) -> str:
        """A file of this version named for messages (the full path outside it)."""
        try:
            return str(self.folder / path.resolve().relative_to(self.folder.resolve()))
        except ValueError:
            return str(path)

    # --- frames ----------------------------------------------------------------------------

    @cached_property
    def frame_origin(self) -> np.ndarray:
        """ECEF origin of the render frame: the centre of the scene's region on the ellipsoid."""
        west, south, east, north = self.region[:4]
        return np.asarray(geodetic_to_ecef((west + east) / 2, (south + north) / 2, 0.0))

    @cached_property
    def ecef_to_frame(self) -> np.ndarray:
        """4x4 ECEF -> the scene's east-north-up render frame (metres, float32-safe)."""
        return ecef_to_enu_matrix(self.frame_origin)

    @cached_property
    def transformer(self) -> EcefTransformer:
        """EPSG:25833 + DHHN2016 -> ECEF with the geoid the scene was built with."""
        geoid = (self.manifest.document.get("vertical_model") or {}).get("geoid")
        grid = None
        if isinstance(geoid, str) and geoid and geoid != _DEFAULT_GEOID:
            grid = find_grid((geoid,))
            if grid is None:
                raise GeoidError(
                    f"{self.where(MANIFEST)}: the scene was built with the geoid grid {geoid!r}, "
                    "which PROJ cannot find: put it into PROJ's search path (e.g. "
                    "/usr/share/proj) so cameras are placed as the tiles were"
                )
        return scene_transformer(grid)

    def to_frame(self, points: Any) -> np.ndarray:
        """(n, 3) EPSG:25833 + DHHN2016 -> (n, 3) render frame."""
        ecef = self.transformer.to_ecef(np.asarray(points, dtype=np.float64).reshape(-1, 3))
        m = self.ecef_to_frame
        return ecef @ m[:3, :3].T + m[:3, 3]

    # --- content ---------------------------------------------------------------------------

    def epoch(self, epoch_id: str | None) -> Epoch:
        """The epoch (the scene's default for None); InputError listing the epochs."""
        chosen = epoch_id or self.default_epoch
        if chosen not in self.epochs:
            raise InputError(
                f"scene {self.id!r} has no epoch {chosen!r} (epochs: "
                f"{', '.join(self.epochs) or 'none'}); pass --epoch with one of them"
            )
        return self.epochs[chosen]

    def tileset(self, epoch: Epoch) -> Tileset:
        """The epoch's tileset tree (kept, so decoded tiles can be shared between renders)."""
        if epoch.id not in self._tilesets:
            self._tilesets[epoch.id] = Tileset(self.folder / epoch.tileset, root_folder=self.folder)
        return self._tilesets[epoch.id]

    def layer_of(self, path: Path) -> dict[str, Any] | None:
        """The manifest entry of the layer a content file belongs to (``layers/<id>/...``)."""
        try:
            parts = path.resolve().relative_to(self.folder.resolve()).parts
        except ValueError:
            return None
        if len(parts) > 2 and parts[0] == "layers":
            return self.layers.get(parts[1])
        return None

    @cached_property
    def heights(self) -> HeightGrid | None:
        """The terrain grid (``layers/<terrain>/heights.npz``), None without a terrain layer."""
        for layer_id, layer in self.layers.items():
            if layer.get("kind") == "terrain":
                path = self.folder / "layers" / layer_id / "heights.npz"
                if path.is_file():
                    return read_heights(path)
        return None

    def _json(self, name: str) -> Any:
        path = self.folder / name
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise FormatError(f"{path}: missing; {_REBUILD}") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{path}: not JSON ({exc}); {_REBUILD}") from exc

    @cached_property
    def overlays(self) -> list[dict[str, Any]]:
        """The overlay features (lon/lat, ellipsoidal heights), in file order."""
        document = self._json(self.manifest.overlays)
        features = document.get("features") if isinstance(document, dict) else None
        if not isinstance(features, list):
            raise FormatError(
                f"{self.where(self.manifest.overlays)}: not a GeoJSON FeatureCollection; "
                f"{_REBUILD}"
            )
        return [f for f in features if isinstance(f, dict)]

    @cached_property
    def stops(self) -> list[TourStop]:
        """The tour's stops, numbered from 1."""
        document = self._json(self.manifest.tour)
        where = self.where(self.manifest.tour)
        stops = document.get("stops") if isinstance(document, dict) else None
        if not isinstance(stops, list):
            raise FormatError(f"{where}: field 'stops' must be a list; {_REBUILD}")
        return [_stop(entry, index, where) for index, entry in enumerate(stops)]

    def stop(self, reference: str) -> TourStop:
        """A stop by number (from 1) or id; InputError listing the stops."""
        stops = self.stops
        for stop in stops:
            if reference == str(stop.number) or reference == stop.id:
                return stop
        listing = ", ".join(f"{s.number} {s.id}" for s in stops) or "the tour has no stops"
        raise InputError(
            f"scene {self.id!r} has no tour stop {reference!r} (stops: {listing}); pass "
            f"--stop {self.id}:NUMBER or {self.id}:ID"
        )


def _number(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FormatError(f"{where}: {name} must be a number, found {value!r}; {_REBUILD}")
    return float(value)


def _point(value: Any, where: str, name: str) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise FormatError(f"{where}: {name} must be [E, N, H], found {value!r}; {_REBUILD}")
    e, n, h = (_number(v, where, name) for v in value)
    return e, n, h


def _stop(entry: Any, index: int, where: str) -> TourStop:
    place = f"{where}: stops[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("camera"), dict):
        raise FormatError(f"{place}: a stop needs a 'camera' object; {_REBUILD}")
    camera = entry["camera"]
    number = entry.get("number", index + 1)
    look_at = camera.get("look_at")
    return TourStop(
        number=int(_number(number, place, "number")),
        id=str(entry.get("id", number)),
        title=dict(entry.get("title") or {}),
        epoch=entry.get("epoch") if isinstance(entry.get("epoch"), str) else None,
        highlight=tuple(str(h) for h in entry.get("highlight") or ()),
        dwell=_number(entry.get("dwell", 10), place, "dwell"),
        position=_point(camera.get("position"), place, "camera.position"),
        look_at=_point(look_at, place, "camera.look_at") if look_at is not None else None,
        heading=_number(camera.get("heading", 0.0), place, "camera.heading"),
        pitch=_number(camera.get("pitch", -30.0), place, "camera.pitch"),
        roll=_number(camera.get("roll", 0.0), place, "camera.roll"),
        fov=_number(camera.get("fov", 60.0), place, "camera.fov"),
    )
