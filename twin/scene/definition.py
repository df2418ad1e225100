"""Scene definitions (``scenes/<id>.toml``): pydantic models, loading and cross-checks.

A scene is an area of Rostock (an EPSG:25833 polygon), the layers built from source files
(terrain and points from LiDAR, buildings and planned structures from CityGML), the epochs
that switch layers on and off (``heute``, ``geplant``), the project overlays it shows and a
guided tour. docs/scenes.md is the contract; this module checks a file against it and says,
in one line, the file, the field and the fix::

    scenes/warnowbruecke.toml: tour.stops[3].camera.look_at: (313900, 5998000) is outside
    the scene area (E 312250–313050, N 5997350–5998450): move it inside or widen area.polygon

Checks beyond the TOML shape (what pydantic alone cannot know) run after it: epochs that
layers and stops name must exist, cameras must look at the area, highlights must be overlay
features of the scene, overlay ids must be in the overlay file, the area polygon must be
valid.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal, Self

import shapely
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from shapely.geometry import Polygon

from twin.errors import SceneError
from twin.scene.messages import (
    display_path,
    format_number,
    format_point,
    scene_error_from_pydantic,
)
from twin.scene.overlays import (
    IDENTIFIER_PATTERN,
    UTM33_EASTING_RANGE,
    UTM33_NORTHING_RANGE,
    OverlayCollection,
    OverlayFeature,
    load_overlays,
)

LayerKind = Literal["terrain", "points", "citygml"]
DEFAULT_EPOCH = "heute"
"""The epoch a viewer opens with when the scene defines it (else the first epoch)."""
DEFAULT_TERRAIN_CELL = 1.0
"""Grid cell (m) of terrain layers that do not set ``cell``: LAiV M-V's DGM1 resolution."""
DEFAULT_FOV = 60.0
"""Field of view (degrees) of stops that do not set ``fov``: CesiumJS' default. Like CesiumJS'
``PerspectiveFrustum.fov`` it spans the wider side of the view (the width on a landscape
screen)."""
HEIGHT_RANGE = (-50.0, 3000.0)
"""Plausible DHHN2016 heights (m) of camera positions and targets in a city scene."""

DEFAULT_LAYER_TITLES: dict[str, dict[str, str]] = {
    "terrain": {"de": "Gelände", "en": "Terrain"},
    "citygml": {"de": "Gebäude", "en": "Buildings"},
    "points": {"de": "Punktwolke", "en": "Point cloud"},
}


def _coordinates(count: int) -> BeforeValidator:
    names, meaning = {
        2: ("E, N", "EPSG:25833 easting, northing"),
        3: ("E, N, H", "EPSG:25833 easting, northing and the DHHN2016 height"),
    }[count]

    def check(value: object) -> object:
        if not isinstance(value, list | tuple) or len(value) != count:
            raise ValueError(
                f"{value!r} is not [{names}]: give {count} numbers in metres ({meaning})"
            )
        return value

    return BeforeValidator(check)


def _check_source(pattern: str) -> str:
    path = PurePosixPath(pattern)
    if path.is_absolute() or ".." in path.parts or "\\" in pattern:
        raise ValueError(
            f"{pattern!r} must be a glob relative to the data folder (--data), with '/' and "
            "without '..': put the files in the data folder"
        )
    return pattern


Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN, max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Point2 = Annotated[tuple[float, float], _coordinates(2)]
Point3 = Annotated[tuple[float, float, float], _coordinates(3)]
SourceGlob = Annotated[str, StringConstraints(min_length=1), AfterValidator(_check_source)]


class SceneModel(BaseModel):
    """Base of the scene file's tables: unknown keys are errors, so typos do not pass."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Texts(SceneModel):
    """A text in German and English (barrier-free: every text in both languages)."""

    de: Text = Field(description="German text")
    en: Text = Field(description="English text")

    def to_dict(self) -> dict[str, str]:
        """``{"de": …, "en": …}`` as the published documents carry it."""
        return {"de": self.de, "en": self.en}


class Area(SceneModel):
    """The scene's area of interest."""

    polygon: list[Point2] = Field(
        min_length=3,
        description="EPSG:25833 outline [[E, N], …], closed or not",
    )

    @property
    def shape(self) -> Polygon:
        """The area as a shapely polygon (EPSG:25833)."""
        return Polygon(self.polygon)

    def describe(self) -> str:
        """``E 312250–313050, N 5997350–5998450``: the area's bounds for messages."""
        west, south, east, north = self.shape.bounds
        return (
            f"E {format_number(west)}–{format_number(east)}, "
            f"N {format_number(south)}–{format_number(north)}"
        )


class Layer(SceneModel):
    """One layer: built from source files with one pipeline."""

    kind: LayerKind = Field(description="terrain | points | citygml")
    sources: list[SourceGlob] = Field(
        min_length=1, description="globs relative to the data folder (--data)"
    )
    title: Texts | None = Field(default=None, description="name in the viewer's layer list")
    cell: float | None = Field(
        default=None, gt=0, le=100, description="terrain grid cell (m); terrain layers only"
    )
    epochs: list[Identifier] | None = Field(
        default=None, min_length=1, description="epochs showing this layer; omitted: all"
    )
    visible: bool = Field(default=True, description="shown when the scene opens")

    @field_validator("cell")
    @classmethod
    def _cell_for_terrain_only(cls, cell: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if cell is not None and kind is not None and kind != "terrain":
            raise ValueError(f"cell applies to terrain layers only: drop it from this {kind} layer")
        return cell

    def title_dict(self) -> dict[str, str]:
        """The title, or the kind's default (Gelände, Gebäude, Punktwolke), as published."""
        return self.title.to_dict() if self.title else dict(DEFAULT_LAYER_TITLES[self.kind])

    @property
    def grid_cell(self) -> float:
        """The terrain grid cell (m)."""
        return self.cell if self.cell is not None else DEFAULT_TERRAIN_CELL


class Epoch(SceneModel):
    """A state of the city (today, planned) that shows a set of layers."""

    title: Texts

    def title_dict(self) -> dict[str, str]:
        """The title as published."""
        return self.title.to_dict()


class OverlaySelection(SceneModel):
    """Which project overlays the scene shows."""

    source: str = Field(min_length=1, description="GeoJSON file relative to scenes/")
    features: list[Identifier] | None = Field(
        default=None, description="feature ids; omitted: every feature in the area"
    )


class Camera(SceneModel):
    """A stop's view: a position and angles, or a target seen from a distance."""

    position: Point3 | None = Field(default=None, description="camera E, N, H (DHHN2016)")
    look_at: Point3 | None = Field(default=None, description="target E, N, H (DHHN2016)")
    distance: float | None = Field(default=None, gt=0, le=20_000, description="metres")
    heading: float = Field(
        ge=-360, le=360, description="degrees clockwise from true north (CesiumJS)"
    )
    pitch: float = Field(ge=-90, le=90, description="degrees; negative looks down")
    fov: float = Field(
        default=DEFAULT_FOV,
        gt=0,
        lt=180,
        description="degrees across the wider side of the view (CesiumJS' fov)",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.position is None) == (self.look_at is None):
            raise ValueError(
                "give either position (+ heading, pitch) or look_at (+ distance, heading, pitch)"
            )
        if self.look_at is not None and self.distance is None:
            raise ValueError("look_at needs distance: how far (m) the camera is from the target")
        if self.position is not None and self.distance is not None:
            raise ValueError("distance belongs to look_at cameras: drop it or use look_at")
        return self


class Stop(SceneModel):
    """One stop of the tour."""

    id: Identifier
    title: Texts
    narration: Texts = Field(description="2–4 sentences read at this stop")
    dwell: float = Field(gt=0, le=600, description="seconds before the tour moves on")
    epoch: Identifier | None = Field(
        default=None, description="the epoch this stop shows; omitted: the default epoch"
    )
    highlight: list[Identifier] = Field(default=[], description="overlay feature ids")
    camera: Camera
    sources: list[Text] = Field(default=[], description="where the narration's facts come from")


class Tour(SceneModel):
    """The guided tour: ordered stops, numbered from 1."""

    title: Texts
    stops: list[Stop] = Field(min_length=1)


class Scene(SceneModel):
    """A scene file (docs/scenes.md, "Scene definitions")."""

    id: Identifier
    title: Texts
    description: Texts
    attribution: list[Text] = Field(min_length=1)
    area: Area
    layers: dict[Identifier, Layer] = Field(min_length=1)
    epochs: dict[Identifier, Epoch] = Field(min_length=1)
    overlays: OverlaySelection | None = None
    tour: Tour

    _path: Path | None = PrivateAttr(default=None)
    _overlay_features: tuple[OverlayFeature, ...] = PrivateAttr(default=())

    @property
    def source(self) -> Path:
        """The file the scene was loaded from."""
        if self._path is None:
            raise ValueError("scene not loaded from a file: use load_scene()")
        return self._path

    @property
    def file(self) -> str:
        """The scene file as messages name it."""
        return display_path(self.source)

    @property
    def area_polygon(self) -> Polygon:
        """The area of interest as a shapely polygon (EPSG:25833)."""
        return self.area.shape

    def title_dict(self) -> dict[str, str]:
        """The scene's title as published."""
        return self.title.to_dict()

    def description_dict(self) -> dict[str, str]:
        """The scene's description as published."""
        return self.description.to_dict()

    @property
    def default_epoch(self) -> str:
        """``heute`` when defined, else the first epoch."""
        return DEFAULT_EPOCH if DEFAULT_EPOCH in self.epochs else next(iter(self.epochs))

    @property
    def overlay_path(self) -> Path | None:
        """The overlay file (relative to the scene file's folder), or None."""
        if self.overlays is None:
            return None
        return self.source.parent / self.overlays.source

    @property
    def overlay_features(self) -> tuple[OverlayFeature, ...]:
        """The scene's overlay features (listed ids, or all in the area), sorted by id."""
        return self._overlay_features

    def layer_epochs(self, layer_id: str) -> list[str]:
        """The epochs that show a layer, in the scene's epoch order."""
        listed = self.layers[layer_id].epochs
        return [e for e in self.epochs if listed is None or e in listed]

    def epoch_layers(self, epoch_id: str) -> list[str]:
        """The layers an epoch shows, in the scene's layer order."""
        return [layer for layer in self.layers if epoch_id in self.layer_epochs(layer)]

    def stop_epoch(self, index: int) -> str:
        """The epoch stop ``index`` (0-based) shows."""
        return self.tour.stops[index].epoch or self.default_epoch


def load_scene(path: Path | str) -> Scene:
    """Read, validate and cross-check a scene file (and its overlay file); SceneError if bad."""
    path = Path(path)
    file = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SceneError(
            file, "", "scene file not found: check the name (scenes are scenes/<id>.toml)"
        ) from None
    except UnicodeDecodeError as exc:
        raise SceneError(file, f"byte {exc.start}", "not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise SceneError(file, "", f"cannot read the file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, file) from None
    try:
        scene = Scene.model_validate(data)
    except PydanticValidationError as exc:
        raise scene_error_from_pydantic(exc, file, Scene) from None
    scene._path = path
    _check_scene(scene, file)
    return scene


def resolve_sources(scene: Scene, data_dir: Path | str) -> dict[str, list[Path]]:
    """Each layer's source files in ``data_dir`` (sorted, no duplicates); SceneError if none.

    Files named like LAiV M-V tiles (``LoD2_33_312_5996_2_MV.gml``, ``3dm_33_311_5997_1.laz``:
    the south-west corner in km and the tile size) that do not touch the scene's area are left
    out, so a folder holding a whole county's tiles builds only what the scene needs.
    """
    data_dir = Path(data_dir)
    shown = display_path(data_dir)
    if not data_dir.is_dir():
        raise SceneError(
            scene.file,
            "",
            f"data folder {shown} does not exist: run `twin sample-data --out "
            f"{shown}`, or pass --data with the folder of the real files",
        )
    area = scene.area.shape
    resolved: dict[str, list[Path]] = {}
    for layer_id, layer in scene.layers.items():
        files: set[Path] = set()
        for index, pattern in enumerate(layer.sources):
            matches = [p for p in data_dir.glob(pattern) if p.is_file()]
            where = f"layers.{layer_id}.sources[{index}]"
            if not matches:
                raise SceneError(
                    scene.file,
                    where,
                    f"no file matches {pattern!r} in {shown}: run `twin "
                    "sample-data`, or put the LAiV M-V tiles there (©GeoBasis-DE/MV)",
                )
            covering = [p for p in matches if _tile_touches(p.name, area)]
            if not covering:
                names = ", ".join(sorted(p.name for p in matches)[:3])
                raise SceneError(
                    scene.file,
                    where,
                    f"{len(matches)} file(s) match {pattern!r} in {shown} "
                    f"({names}…) but none covers the scene area ({scene.area.describe()}): put "
                    "the tiles covering it there",
                )
            files.update(covering)
        resolved[layer_id] = sorted(files, key=lambda p: p.relative_to(data_dir).as_posix())
    return resolved


# LAiV M-V tile names: LoD2_33_<E km>_<N km>_<size km>_MV.gml, 3dm_33_<E>_<N>_<size>.laz,
# dgm1_33_<E>_<N>_<size>_gtiff.tif: zone 33, the south-west corner and the tile size in km.
_MV_TILE = re.compile(r"^(?:lod[12]|3dm|dgm1|dom1)_33_(\d{3})_(\d{4})_(\d)(?:_|\.)", re.IGNORECASE)


def _tile_touches(name: str, area: Polygon) -> bool:
    match = _MV_TILE.match(name)
    if match is None:
        return True
    east, north, size = (int(v) * 1000 for v in match.groups())
    tile = shapely.box(east, north, east + size, north + size)
    return bool(tile.intersects(area))


# --- cross-checks ---------------------------------------------------------------------------


def _toml_error(exc: tomllib.TOMLDecodeError, file: str) -> SceneError:
    message = str(exc)
    match = re.search(r"\(at line (\d+), column (\d+)\)", message)
    reason = message[: match.start()].strip() if match else message
    place = f"line {match[1]}, column {match[2]}" if match else ""
    if match is None and "end of document" in message:
        place = "end of file"
    return SceneError(file, place, f"not valid TOML ({reason}): fix the syntax there")


def _check_scene(scene: Scene, file: str) -> None:
    _check_id(scene, file)
    area = _check_area(scene, file)
    _check_layers(scene, file)
    features = _check_overlays(scene, area, file)
    scene._overlay_features = features
    _check_tour(scene, area, {f.id for f in features}, file)


def _check_id(scene: Scene, file: str) -> None:
    stem = scene.source.name.removesuffix(".toml")
    if scene.id != stem:
        raise SceneError(
            file,
            "id",
            f"{scene.id!r} differs from the file name {scene.source.name}: "
            f'rename the file to {scene.id}.toml or set id = "{stem}"',
        )


def _check_area(scene: Scene, file: str) -> Polygon:
    points = scene.area.polygon
    for index, (east, north) in enumerate(points):
        if not (
            UTM33_EASTING_RANGE[0] < east < UTM33_EASTING_RANGE[1]
            and UTM33_NORTHING_RANGE[0] < north < UTM33_NORTHING_RANGE[1]
        ):
            swapped = UTM33_EASTING_RANGE[0] < north < UTM33_EASTING_RANGE[1]
            hint = (
                "it looks like (N, E): write the easting first"
                if swapped and UTM33_NORTHING_RANGE[0] < east < UTM33_NORTHING_RANGE[1]
                else "area.polygon takes EPSG:25833 metres [E, N] (Rostock: E ≈ 312000, "
                "N ≈ 5998000)"
            )
            raise SceneError(
                file,
                f"area.polygon[{index}]",
                f"{format_point((east, north))} is not an EPSG:25833 position: {hint}",
            )
    polygon = scene.area.shape
    if not polygon.is_valid:
        raise SceneError(
            file,
            "area.polygon",
            f"invalid polygon ({shapely.is_valid_reason(polygon)}): list "
            "the corners in order around the area, without crossings",
        )
    if polygon.area <= 0.0:
        raise SceneError(
            file, "area.polygon", "the polygon has no area: give three or more corners"
        )
    return polygon


def _check_layers(scene: Scene, file: str) -> None:
    defined = ", ".join(scene.epochs)
    for layer_id, layer in scene.layers.items():
        for index, epoch in enumerate(layer.epochs or []):
            if epoch not in scene.epochs:
                raise SceneError(
                    file,
                    f"layers.{layer_id}.epochs[{index}]",
                    f"{epoch!r} is not an epoch of "
                    f"this scene (defined: {defined}): add [epochs.{epoch}] or fix the name",
                )
    for epoch in scene.epochs:
        if not scene.epoch_layers(epoch):
            raise SceneError(
                file,
                f"epochs.{epoch}",
                "no layer belongs to this epoch: list it in a layer's epochs or remove it",
            )


def _check_overlays(scene: Scene, area: Polygon, file: str) -> tuple[OverlayFeature, ...]:
    if scene.overlays is None:
        return ()
    overlay_path = scene.overlay_path
    assert overlay_path is not None
    if not overlay_path.is_file():
        raise SceneError(
            file,
            "overlays.source",
            f"{scene.overlays.source!r} not found (looked for "
            f"{display_path(overlay_path)}): overlay paths are relative to the scene file's folder",
        )
    collection = load_overlays(overlay_path)
    if scene.overlays.features is None:
        chosen = [f for f in collection.features if f.geometry.intersects(area)]
    else:
        chosen = _listed_features(scene, collection, area, file)
    return tuple(sorted(chosen, key=lambda f: f.id))


def _listed_features(
    scene: Scene, collection: OverlayCollection, area: Polygon, file: str
) -> list[OverlayFeature]:
    assert scene.overlays is not None and scene.overlays.features is not None
    chosen: list[OverlayFeature] = []
    for index, feature_id in enumerate(scene.overlays.features):
        where = f"overlays.features[{index}]"
        feature = collection.get(feature_id)
        if feature is None:
            raise SceneError(
                file,
                where,
                f"{feature_id!r} is not a feature of {display_path(collection.path)}"
                f" (ids: {', '.join(collection.ids) or 'none'}): fix the id or add the feature",
            )
        if feature in chosen:
            raise SceneError(file, where, f"{feature_id!r} is listed twice: keep one")
        if not feature.geometry.intersects(area):
            raise SceneError(
                file,
                where,
                f"{feature_id!r} lies outside the scene area "
                f"({scene.area.describe()}): drop it from the list or widen area.polygon",
            )
        chosen.append(feature)
    return chosen


def _check_tour(scene: Scene, area: Polygon, overlay_ids: set[str], file: str) -> None:
    seen: dict[str, int] = {}
    for index, stop in enumerate(scene.tour.stops):
        where = f"tour.stops[{index}]"
        if stop.id in seen:
            raise SceneError(
                file,
                f"{where}.id",
                f"{stop.id!r} is also the id of tour.stops[{seen[stop.id]}]:"
                " stop ids must be unique",
            )
        seen[stop.id] = index
        if stop.epoch is not None and stop.epoch not in scene.epochs:
            raise SceneError(
                file,
                f"{where}.epoch",
                f"{stop.epoch!r} is not an epoch of this scene "
                f"(defined: {', '.join(scene.epochs)}): fix the name or add [epochs.{stop.epoch}]",
            )
        _check_camera(scene, stop.camera, area, f"{where}.camera", file)
        for number, feature_id in enumerate(stop.highlight):
            if feature_id not in overlay_ids:
                known = ", ".join(sorted(overlay_ids)) or "none: the scene has no [overlays]"
                raise SceneError(
                    file,
                    f"{where}.highlight[{number}]",
                    f"{feature_id!r} is not an overlay "
                    f"feature of this scene (features: {known}): fix the id, or add the feature "
                    "to overlays.features",
                )


def _check_camera(scene: Scene, camera: Camera, area: Polygon, where: str, file: str) -> None:
    name, point = (
        ("look_at", camera.look_at) if camera.look_at is not None else ("position", camera.position)
    )
    assert point is not None
    east, north, height = point
    if not area.covers(shapely.Point(east, north)):
        raise SceneError(
            file,
            f"{where}.{name}",
            f"{format_point((east, north))} is outside the scene area "
            f"({scene.area.describe()}): move it inside or widen area.polygon",
        )
    if not HEIGHT_RANGE[0] <= height <= HEIGHT_RANGE[1]:
        raise SceneError(
            file,
            f"{where}.{name}",
            f"height {format_number(height)} m is implausible: heights "
            f"are DHHN2016 metres ({format_number(HEIGHT_RANGE[0])} to "
            f"{format_number(HEIGHT_RANGE[1])}; the Warnow is at about 0 m)",
        )
