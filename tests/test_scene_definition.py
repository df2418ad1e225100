"""Scene definitions: the three real scene files, bad files, sources, cameras and tour.json."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pyproj
import pytest

from twin.crs import ecef_to_geodetic, enu_to_ecef_matrix, geodetic_to_ecef
from twin.errors import InputError, SceneError
from twin.scene import (
    document_bytes,
    load_scene,
    resolve_camera,
    resolve_sources,
    scene_transformer,
    tour_document,
)
from twin.scene.camera import view_direction
from twin.scene.definition import Camera
from twin.scene.messages import display_path
from twin.scene.schema import schema_text

ROOT = Path(__file__).resolve().parent.parent
SCENES = ROOT / "scenes"
SCENE_IDS = ("rostocker-oval", "warnowbruecke", "gehlsdorf")
# docs/scenes.md, "Places and areas": E min, E max, N min, N max.
AREAS = {
    "rostocker-oval": (311300, 313900, 5997050, 5998750),
    "warnowbruecke": (312250, 313050, 5997350, 5998450),
    "gehlsdorf": (311300, 314000, 5997600, 5999200),
}
KROEPELINER_TOR = (312244.0, 5997168.0)
STOP_KEYS = {
    "number",
    "id",
    "title",
    "narration",
    "dwell",
    "epoch",
    "highlight",
    "camera",
    "sources",
}
CAMERA_KEYS = {
    "position",
    "longitude",
    "latitude",
    "height",
    "heading",
    "pitch",
    "roll",
    "fov",
    "look_at",
}


@pytest.fixture(scope="module")
def vertical():
    """EPSG:25833 + DHHN2016 with EGM96: the default vertical model of scenes."""
    return scene_transformer()


@pytest.fixture
def scene_copy(tmp_path: Path):
    """Copy a real scene file (and the overlays) to tmp; returns (path, text) to edit."""

    def copy(scene_id: str) -> tuple[Path, str]:
        folder = tmp_path / "scenes"
        shutil.copytree(SCENES / "overlays", folder / "overlays")
        path = folder / f"{scene_id}.toml"
        text = (SCENES / f"{scene_id}.toml").read_text(encoding="utf-8")
        path.write_text(text, encoding="utf-8")
        return path, text

    return copy


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?…](?:\s|$)", text))


# --- the real scene files -------------------------------------------------------------------


@pytest.mark.parametrize("scene_id", SCENE_IDS)
def test_real_scene_loads_with_the_documented_area_and_layers(scene_id: str) -> None:
    scene = load_scene(SCENES / f"{scene_id}.toml")
    assert scene.id == scene_id
    assert scene.area_polygon.bounds == (
        AREAS[scene_id][0],
        AREAS[scene_id][2],
        AREAS[scene_id][1],
        AREAS[scene_id][3],
    )
    assert list(scene.epochs) == ["heute", "geplant"]
    assert scene.default_epoch == "heute"
    kinds = {layer_id: layer.kind for layer_id, layer in scene.layers.items()}
    assert kinds["terrain"] == "terrain" and kinds["buildings"] == "citygml"
    assert kinds["points"] == "points" and scene.layers["points"].visible is False
    assert scene.layers["terrain"].sources == ["3dm_33_*_1.laz"]
    # a 2 m terrain: a quarter of the bytes of 1 m, fine for tours
    assert scene.layers["terrain"].grid_cell == 2.0
    assert scene.layers["buildings"].sources == ["LoD2_33_*_2_MV.gml"]
    assert scene.layers["warnowbruecke"].sources == ["geplant/Warnowbruecke_LoD2.gml"]
    # Planned structures appear only in `geplant`.
    assert scene.layer_epochs("warnowbruecke") == ["geplant"]
    assert "warnowbruecke" not in scene.epoch_layers("heute")
    assert "warnowbruecke" in scene.epoch_layers("geplant")
    assert scene.epoch_layers("heute")[:2] == ["terrain", "buildings"]
    assert any("GeoBasis-DE/MV" in line for line in scene.attribution)
    assert any("synthetisch" in line and "synthetic" in line for line in scene.attribution)


def test_real_scenes_have_the_planned_quarter_where_it_belongs() -> None:
    quarter = {
        scene_id: "warnowquartier" in load_scene(SCENES / f"{scene_id}.toml").layers
        for scene_id in SCENE_IDS
    }
    assert quarter == {"rostocker-oval": True, "warnowbruecke": False, "gehlsdorf": True}


@pytest.mark.parametrize("scene_id", SCENE_IDS)
def test_real_tour_tells_a_story_in_both_languages(scene_id: str) -> None:
    scene = load_scene(SCENES / f"{scene_id}.toml")
    stops = scene.tour.stops
    assert 5 <= len(stops) <= 10
    for stop in stops:
        for text in (stop.narration.de, stop.narration.en):
            assert 2 <= sentences(text) <= 4, (stop.id, text)
        assert stop.sources, stop.id
        assert stop.epoch in ("heute", "geplant")
    # History, today and plans: both epochs are visited, and planned stops show plans.
    assert {stop.epoch for stop in stops} == {"heute", "geplant"}
    features = {f.id: f for f in scene.overlay_features}
    for stop in stops:
        for feature_id in stop.highlight:
            assert feature_id in features
        if stop.epoch == "geplant":
            assert stop.highlight, stop.id


def test_real_scenes_select_their_overlay_features() -> None:
    selected = {
        scene_id: [f.id for f in load_scene(SCENES / f"{scene_id}.toml").overlay_features]
        for scene_id in SCENE_IDS
    }
    assert selected == {
        "rostocker-oval": [
            "primelberg-infotafel",
            "stadthafen-kaimauer",
            "warnow-rundweg",
            "warnowbruecke",
            "warnowquartier",
        ],
        "warnowbruecke": ["stadthafen-kaimauer", "warnow-rundweg", "warnowbruecke"],
        "gehlsdorf": ["primelberg-infotafel", "warnow-rundweg", "warnowbruecke", "warnowquartier"],
    }


def test_schema_file_is_up_to_date() -> None:
    """scenes/scene.schema.json is generated: `python -m twin.scene.schema` after model edits."""
    assert (SCENES / "scene.schema.json").read_text(encoding="utf-8") == schema_text()
    schema = json.loads(schema_text())
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {
        "id",
        "title",
        "description",
        "attribution",
        "area",
        "layers",
        "epochs",
        "tour",
    }
    assert schema["$defs"]["Layer"]["properties"]["kind"]["enum"] == [
        "terrain",
        "points",
        "citygml",
    ]


@pytest.mark.parametrize("scene_id", SCENE_IDS)
def test_scene_files_point_editors_at_the_schema(scene_id: str) -> None:
    first = (SCENES / f"{scene_id}.toml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "#:schema ./scene.schema.json"


# --- bad scene files: one line naming the file, the field, what is wrong ---------------------

BAD_SCENES = [
    # (scene, old text, new text, field, part of the message)
    (
        "warnowbruecke",
        'kind = "terrain"',
        'kind = "terain"',
        "layers.terrain.kind",
        "'terain' is not allowed: use 'terrain', 'points' or 'citygml'",
    ),
    (
        "warnowbruecke",
        "visible = false",
        "visibel = false",
        "layers.points.visibel",
        "unknown field visibel: remove it or fix its spelling (allowed here: kind, sources",
    ),
    (
        "warnowbruecke",
        'epochs = ["geplant"]',
        'epochs = ["gepant"]',
        "layers.warnowbruecke.epochs[0]",
        "'gepant' is not an epoch of this scene (defined: heute, geplant)",
    ),
    (
        "warnowbruecke",
        'dwell = 18\nepoch = "geplant"',
        'dwell = 18\nepoch = "zukunft"',
        "tour.stops[0].epoch",
        "'zukunft' is not an epoch of this scene",
    ),
    (
        "warnowbruecke",
        "look_at = [312597, 5997778, 9.0]",
        "look_at = [313900, 5998000, 9.0]",
        "tour.stops[3].camera.look_at",
        "(313900, 5998000) is outside the scene area (E 312250–313050, N 5997350–5998450)",
    ),
    (
        "rostocker-oval",
        "position = [312650, 5997690, 1480.0]",
        "position = [312650, 5996690, 1480.0]",
        "tour.stops[6].camera.position",
        "(312650, 5996690) is outside the scene area",
    ),
    (
        "warnowbruecke",
        "look_at = [312597, 5997778, 9.0]",
        "look_at = [312690, 5997930, 9000.0]",
        "tour.stops[3].camera.look_at",
        "height 9000 m is implausible",
    ),
    (
        "warnowbruecke",
        'highlight = ["warnowbruecke"]\n# Along',
        'highlight = ["warnowquartier"]\n# Along',
        "tour.stops[0].highlight[0]",
        "'warnowquartier' is not an overlay feature of this scene",
    ),
    (
        "warnowbruecke",
        'features = ["warnowbruecke", "stadthafen-kaimauer", "warnow-rundweg"]',
        'features = ["warnowbruecke", "stadthafen-kaimauer", "warnow-rundweg", "bruecke-alt"]',
        "overlays.features[3]",
        "'bruecke-alt' is not a feature of",
    ),
    (
        "warnowbruecke",
        'features = ["warnowbruecke", "stadthafen-kaimauer", "warnow-rundweg"]',
        'features = ["warnowbruecke", "primelberg-infotafel"]',
        "overlays.features[1]",
        "'primelberg-infotafel' lies outside the scene area",
    ),
    (
        "warnowbruecke",
        'source = "overlays/projekte.geojson"',
        'source = "overlays/fehlt.geojson"',
        "overlays.source",
        "'overlays/fehlt.geojson' not found",
    ),
    (
        "warnowbruecke",
        ', en = "Today there is no bridge',
        ', eng = "Today there is no bridge',
        "tour.stops[0].narration.en",
        "the English text is missing: add en = ",
    ),
    (
        "warnowbruecke",
        'title = { de = "Heute", en = "Today" }',
        'title = { en = "Today" }',
        "epochs.heute.title.de",
        "the German text is missing",
    ),
    (
        "warnowbruecke",
        'narration = { de = "Zwischen',
        'narration = { de = "  ", x = "Zwischen',
        "tour.stops[0].narration.de",
        "must not be empty",
    ),
    (
        "warnowbruecke",
        "dwell = 18\nepoch",
        "dwell = 0\nepoch",
        "tour.stops[0].dwell",
        "0 is out of range: it must be greater than 0",
    ),
    (
        "warnowbruecke",
        "dwell = 18\nepoch",
        "dwell = -5\nepoch",
        "tour.stops[0].dwell",
        "-5 is out of range: it must be greater than 0",
    ),
    (
        "warnowbruecke",
        "polygon = [[312250, 5997350], [313050, 5997350], [313050, 5998450], [312250, 5998450]]",
        "polygon = [[312250, 5997350], [313050, 5998450], [313050, 5997350], [312250, 5998450]]",
        "area.polygon",
        "invalid polygon (Self-intersection[312650 5997900])",
    ),
    (
        "warnowbruecke",
        "polygon = [[312250, 5997350], [313050, 5997350], [313050, 5998450], [312250, 5998450]]",
        "polygon = [[12.13, 54.09], [12.14, 54.09], [12.14, 54.1]]",
        "area.polygon[0]",
        "(12.13, 54.09) is not an EPSG:25833 position",
    ),
    (
        "warnowbruecke",
        "polygon = [[312250, 5997350], [313050, 5997350], [313050, 5998450], [312250, 5998450]]",
        "polygon = [[5997350, 312250], [5997350, 313050], [5998450, 313050]]",
        "area.polygon[0]",
        "it looks like (N, E): write the easting first",
    ),
    (
        "warnowbruecke",
        "polygon = [[312250, 5997350], [313050",
        "polygon = [[312250, 5997350, 4], [313050",
        "area.polygon[0]",
        "[312250, 5997350, 4] is not [E, N]: give 2 numbers in metres (EPSG:25833 easting, "
        "northing)",
    ),
    (
        "warnowbruecke",
        'id = "warnowbruecke"',
        'id = "warnowbrucke"',
        "id",
        "'warnowbrucke' differs from the file name warnowbruecke.toml: rename the file to "
        'warnowbrucke.toml or set id = "warnowbruecke"',
    ),
    (
        "warnowbruecke",
        'id = "warnowbruecke"',
        'id = "Warnow Brücke"',
        "id",
        "'Warnow Brücke' is not a valid id",
    ),
    (
        "warnowbruecke",
        'id = "schnickmannstrasse"',
        'id = "querung"',
        "tour.stops[1].id",
        "'querung' is also the id of tour.stops[0]",
    ),
    (
        "warnowbruecke",
        "distance = 300, heading = 20",
        "heading = 20",
        "tour.stops[1].camera",
        "look_at needs distance",
    ),
    (
        "warnowbruecke",
        "{ look_at = [312552, 5997660, 7.0], distance = 300,",
        "{ position = [312543, 5997613, 80.0], look_at = [312552, 5997660, 7.0], distance = 300,",
        "tour.stops[1].camera",
        "give either position (+ heading, pitch) or look_at",
    ),
    (
        "warnowbruecke",
        "heading = 20, pitch = -30 }",
        "heading = 20, pitch = -130 }",
        "tour.stops[1].camera.pitch",
        "-130 is out of range: it must be at least -90",
    ),
    (
        "warnowbruecke",
        'sources = ["3dm_33_*_1.laz"]\ncell',
        'sources = ["../3dm_33_*_1.laz"]\ncell',
        "layers.terrain.sources[0]",
        "must be a glob relative to the data folder",
    ),
    (
        "warnowbruecke",
        'sources = ["LoD2_33_*_2_MV.gml"]',
        'sources = ["LoD2_33_*_2_MV.gml"]\ncell = 2.0',
        "layers.buildings.cell",
        "cell applies to terrain layers only",
    ),
    (
        "warnowbruecke",
        "dwell = 18\nepoch",
        'dwell = "lang"\nepoch',
        "tour.stops[0].dwell",
        "'lang' is not a (finite) number",
    ),
]


@pytest.mark.parametrize(
    ("scene_id", "old", "new", "field", "message"),
    BAD_SCENES,
    ids=[f"{case[3]}-{i}" for i, case in enumerate(BAD_SCENES)],
)
def test_bad_scene_file_gives_one_line_with_file_and_field(
    scene_copy, scene_id: str, old: str, new: str, field: str, message: str
) -> None:
    path, text = scene_copy(scene_id)
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(SceneError) as caught:
        load_scene(path)
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(f"{path}: {field}: "), line
    assert message in line, line
    assert isinstance(caught.value, InputError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'id = "x"\n[area]\npolygon = [[1, 2], [3, 4]\n[layers.a]\n',
            "line 4, column 1: not valid TOML (Unclosed array): fix the syntax there",
        ),
        (
            'id = "x"\n\ntitle = { de = "a" en = "b" }\n',
            "line 3, column 20: not valid TOML (Unclosed inline table): fix the syntax there",
        ),
        (
            '[layers.points]\nkind = "points"\n[layers.points]\n',
            "line 3, column 15: not valid TOML (Cannot declare ('layers', 'points') twice): fix "
            "the syntax there",
        ),
        ('id = "x\n', "line 1, column 8: not valid TOML (Illegal character '\\n'): fix"),
    ],
)
def test_toml_syntax_error_names_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SceneError) as caught:
        load_scene(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_scene_error_names_the_relative_path_inside_the_working_directory(
    scene_copy, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, text = scene_copy("warnowbruecke")
    path.write_text(text.replace("dwell = 18\nepoch", "dwell = 0\nepoch", 1), encoding="utf-8")
    monkeypatch.chdir(path.parent.parent)
    with pytest.raises(
        SceneError,
        match=r"^scenes/warnowbruecke\.toml: tour\.stops\[0\]\.dwell: 0 is out of range: it must "
        r"be greater than 0$",
    ):
        load_scene(path)


def test_missing_scene_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(SceneError, match="nirgends.toml: scene file not found"):
        load_scene(tmp_path / "nirgends.toml")


def test_several_errors_are_counted_on_the_one_line(scene_copy) -> None:
    path, text = scene_copy("warnowbruecke")
    text = text.replace("dwell = 18\nepoch", "dwell = 0\nepoch").replace(
        'kind = "points"', 'kind = "punkte"'
    )
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SceneError, match=r"\(and 3 more errors in this file\)$"):
        load_scene(path)


def test_scene_error_survives_pickling() -> None:
    import pickle

    error = SceneError("scenes/x.toml", "tour.stops[0].dwell", "0 is out of range")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.field == "tour.stops[0].dwell"


# --- source files ---------------------------------------------------------------------------


def make_data(folder: Path, names: list[str]) -> Path:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    return folder


def test_resolve_sources_lists_the_tiles_that_touch_the_area(tmp_path: Path) -> None:
    data = make_data(
        tmp_path / "data",
        [
            "LoD2_33_310_5996_2_MV.gml",
            "LoD2_33_310_5998_2_MV.gml",
            "LoD2_33_312_5996_2_MV.gml",
            "LoD2_33_312_5998_2_MV.gml",
            "LoD2_33_314_5998_2_MV.gml",
            "3dm_33_311_5997_1.laz",
            "3dm_33_312_5997_1.laz",
            "3dm_33_313_5997_1.laz",
            "3dm_33_312_5998_1.laz",
            "3dm_33_313_5999_1.laz",
            "3dm_33_312_5999_1.laz",
            "geplant/Warnowbruecke_LoD2.gml",
            "geplant/WarnowQuartier_LoD2.gml",
            "world.json",
        ],
    )
    scene = load_scene(SCENES / "warnowbruecke.toml")
    resolved = resolve_sources(scene, data)
    names = {
        layer: [p.relative_to(data).as_posix() for p in paths] for layer, paths in resolved.items()
    }
    # Area E 312250–313050 × N 5997350–5998450: 2 km tiles 312_5996 and 312_5998; 1 km tiles
    # E 312–313 × N 5997–5998 (the tile at E 313 km starts at the area's east edge + 0).
    assert names == {
        "terrain": ["3dm_33_312_5997_1.laz", "3dm_33_312_5998_1.laz", "3dm_33_313_5997_1.laz"],
        "buildings": ["LoD2_33_312_5996_2_MV.gml", "LoD2_33_312_5998_2_MV.gml"],
        "warnowbruecke": ["geplant/Warnowbruecke_LoD2.gml"],
        "points": ["3dm_33_312_5997_1.laz", "3dm_33_312_5998_1.laz", "3dm_33_313_5997_1.laz"],
    }
    assert resolve_sources(scene, data) == resolved


def test_resolve_sources_says_how_to_get_missing_files(tmp_path: Path) -> None:
    data = make_data(tmp_path / "sample", ["3dm_33_312_5997_1.laz"])
    scene = load_scene(SCENES / "warnowbruecke.toml")
    with pytest.raises(SceneError) as caught:
        resolve_sources(scene, data)
    assert str(caught.value) == (
        f"{display_path(SCENES / 'warnowbruecke.toml')}: layers.buildings.sources[0]: no file "
        "matches "
        f"'LoD2_33_*_2_MV.gml' in {data}: run `twin sample-data`, or put the LAiV M-V tiles "
        "there (©GeoBasis-DE/MV)"
    )


def test_resolve_sources_names_tiles_that_miss_the_area(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data", ["3dm_33_300_5990_1.laz"])
    scene = load_scene(SCENES / "warnowbruecke.toml")
    with pytest.raises(
        SceneError,
        match=r"layers\.terrain\.sources\[0\]: 1 file\(s\) match "
        r"'3dm_33_\*_1\.laz' .* but none covers the scene area",
    ):
        resolve_sources(scene, data)


def test_resolve_sources_needs_the_data_folder(tmp_path: Path) -> None:
    scene = load_scene(SCENES / "warnowbruecke.toml")
    with pytest.raises(
        SceneError, match="data folder .*nothing does not exist: run `twin sample-data --out"
    ):
        resolve_sources(scene, tmp_path / "nothing")


# --- cameras --------------------------------------------------------------------------------


def camera_ray_ecef(resolved) -> tuple[np.ndarray, np.ndarray]:
    """The camera's ECEF position and view direction from its published lon/lat/h and angles:
    what CesiumJS does with setView({destination, orientation: {heading, pitch, roll}})."""
    origin = geodetic_to_ecef(resolved.longitude, resolved.latitude, resolved.height)
    enu = enu_to_ecef_matrix(origin)[:3, :3]
    return origin, enu @ view_direction(resolved.heading, resolved.pitch)


def angle_to(origin: np.ndarray, direction: np.ndarray, point: np.ndarray) -> float:
    target = point - origin
    cosine = float(direction @ target / np.linalg.norm(target) / np.linalg.norm(direction))
    return math.acos(min(1.0, cosine))


def test_kroepeliner_tor_position_and_ellipsoidal_height(vertical) -> None:
    camera = Camera(position=(*KROEPELINER_TOR, 12.0), heading=0, pitch=-90)
    resolved = resolve_camera(camera, vertical)
    assert resolved.longitude == pytest.approx(12.1292, abs=1e-4)
    assert resolved.latitude == pytest.approx(54.0884, abs=1e-4)
    # EGM96's undulation at Rostock is about 38.3 m: 12 m DHHN2016 -> about 50.3 m.
    assert round(resolved.height, 1) == 50.3
    assert resolved.position == (312244.0, 5997168.0, 12.0)
    assert resolved.fov == 60.0 and resolved.roll == 0.0


def test_user_geoid_grid_gives_the_ellipsoidal_heights(tmp_path: Path) -> None:
    """A GCG2016 grid passed by the user replaces EGM96 (here a constant 39.5 m one)."""
    grid = tmp_path / "test_gcg2016.gtx"
    header = np.array([53.0, 11.0, 0.5, 0.5], ">f8").tobytes() + np.array([8, 8], ">i4").tobytes()
    grid.write_bytes(header + np.full((8, 8), 39.5, ">f4").tobytes())
    vertical = scene_transformer(grid)
    assert "GCG2016" in vertical.vertical_model.name
    camera = Camera(look_at=(*KROEPELINER_TOR, 12.0), distance=300.0, heading=90.0, pitch=-20.0)
    resolved = resolve_camera(camera, vertical)
    # 300 m at 20° below the horizontal: 102.6 m above the target, plus the curvature.
    assert resolved.height == pytest.approx(12.0 + 39.5 + 102.606 + 0.006, abs=0.01)
    assert resolved.position[2] == pytest.approx(12.0 + 102.606 + 0.006, abs=0.01)


def test_look_at_camera_uses_true_north_not_grid_north(vertical) -> None:
    """Heading 0 looks along the true meridian: the camera stands due true south of the
    target, which in EPSG:25833 is off grid south by the meridian convergence."""
    target = (*KROEPELINER_TOR, 12.0)
    camera = Camera(look_at=target, distance=1000.0, heading=0.0, pitch=-30.0)
    resolved = resolve_camera(camera, vertical)
    target_lon, target_lat = vertical.to_lonlat(np.array([target]))[0]
    assert resolved.longitude == pytest.approx(target_lon, abs=1e-9)
    factors = pyproj.Proj("EPSG:25833").get_factors(target_lon, target_lat)
    convergence = factors.meridian_convergence
    assert convergence == pytest.approx(-2.33, abs=0.01)
    # The view's grid bearing is heading - convergence; the camera is 1000 m back along it.
    horizontal = 1000.0 * math.cos(math.radians(30.0)) * factors.meridional_scale
    bearing = math.radians(0.0 - convergence)
    east, north, height = resolved.position
    # (Within 0.1 m: the grid measures on the ellipsoid below the slanted ray, 4e-5 shorter.)
    assert east - target[0] == pytest.approx(-horizontal * math.sin(bearing), abs=0.1)
    assert north - target[1] == pytest.approx(-horizontal * math.cos(bearing), abs=0.1)
    assert abs(east - target[0]) > 35.0  # a grid-north camera would sit at ΔE = 0
    # 500 m above the target, plus the Earth's curvature over 866 m (about 6 cm), less the
    # slope of the geoid between the two points (about 1.5 cm).
    assert height == pytest.approx(512.0 + 866.0**2 / (2 * 6.39e6), abs=0.03)
    # ...and the target is exactly in the centre of the view from there.
    origin, direction = camera_ray_ecef(resolved)
    assert angle_to(origin, direction, vertical.to_ecef(np.array([target]))[0]) < 1e-7
    # Angles are re-measured at the camera: the heading stays (same meridian), the pitch
    # steepens by the Earth's curvature between the two points (866 m / R ≈ 0.0078°).
    assert resolved.heading == pytest.approx(0.0, abs=1e-9)
    assert resolved.pitch == pytest.approx(-30.0 - math.degrees(866.0 / 6.39e6), abs=2e-4)


@pytest.mark.parametrize("heading", [0.0, 45.0, 137.5, 200.0, 290.0, -20.0])
def test_look_at_point_is_straight_ahead_for_any_heading(vertical, heading: float) -> None:
    target = (312670.0, 5997890.0, 8.0)
    camera = Camera(look_at=target, distance=700.0, heading=heading, pitch=-25.0)
    resolved = resolve_camera(camera, vertical)
    origin, direction = camera_ray_ecef(resolved)
    assert angle_to(origin, direction, vertical.to_ecef(np.array([target]))[0]) < 1e-7
    assert 0.0 <= resolved.heading < 360.0
    assert resolved.heading == pytest.approx(heading % 360.0, abs=0.02)
    assert math.dist(resolved.position, target) == pytest.approx(700.0, abs=0.5)


def test_position_camera_looks_at_the_water_level(vertical) -> None:
    camera = Camera(position=(311950.0, 5998230.0, 25.0), heading=175.0, pitch=-8.0, fov=45)
    resolved = resolve_camera(camera, vertical)
    assert (resolved.heading, resolved.pitch, resolved.fov) == (175.0, -8.0, 45.0)
    east, north, height = resolved.look_at
    assert height == pytest.approx(0.0, abs=1e-3)
    # 25 m / tan(8°) ≈ 178 m ahead, a little to the east (true 175° is grid ≈ 177.3°).
    assert math.hypot(east - 311950.0, north - 5998230.0) == pytest.approx(177.9, abs=0.5)
    assert east > 311950.0 + 0.5 * 178 * math.sin(math.radians(5.0))
    origin, direction = camera_ray_ecef(resolved)
    look_at = vertical.to_ecef(np.array([resolved.look_at]))[0]
    assert angle_to(origin, direction, look_at) < 1e-7


def test_position_camera_looking_up_ends_at_the_maximum_distance(vertical) -> None:
    camera = Camera(position=(312500.0, 5997800.0, 30.0), heading=90.0, pitch=5.0)
    resolved = resolve_camera(camera, vertical)
    assert math.dist(resolved.position, resolved.look_at) == pytest.approx(5000.0, abs=2.0)


# --- tour.json ------------------------------------------------------------------------------


@pytest.mark.parametrize("scene_id", SCENE_IDS)
def test_tour_document_of_a_real_scene(vertical, scene_id: str) -> None:
    scene = load_scene(SCENES / f"{scene_id}.toml")
    document = tour_document(scene, vertical)
    assert document["scene"] == scene_id
    assert set(document["title"]) == {"de", "en"}
    stops = document["stops"]
    assert [s["number"] for s in stops] == list(range(1, len(scene.tour.stops) + 1))
    assert [s["id"] for s in stops] == [s.id for s in scene.tour.stops]
    west, east, south, north = AREAS[scene_id]
    for stop in stops:
        assert set(stop) == STOP_KEYS
        assert set(stop["camera"]) == CAMERA_KEYS
        camera = stop["camera"]
        assert stop["epoch"] in ("heute", "geplant")
        assert 12.10 < camera["longitude"] < 12.16 and 54.07 < camera["latitude"] < 54.12
        east_target, north_target, _ = camera["look_at"]
        assert west <= east_target <= east and south <= north_target <= north
        # The published camera still looks at its target; rounding (about 1 cm, 1e-4°) moves
        # the aim by at most 1.5 cm at the target.
        origin = geodetic_to_ecef(camera["longitude"], camera["latitude"], camera["height"])
        direction = enu_to_ecef_matrix(origin)[:3, :3] @ view_direction(
            camera["heading"], camera["pitch"]
        )
        target = vertical.to_ecef(np.array([camera["look_at"]]))[0]
        distance = float(np.linalg.norm(target - origin))
        assert angle_to(origin, direction, target) * distance < 0.015, stop["id"]
        # Camera height: its DHHN2016 height plus EGM96's ~38.3 m at Rostock.
        _, _, h = ecef_to_geodetic(vertical.to_ecef(np.array([camera["position"]]))[0])
        assert camera["height"] == pytest.approx(float(h), abs=0.011)
        assert camera["height"] - camera["position"][2] == pytest.approx(38.3, abs=0.4)


def test_published_camera_numbers(vertical) -> None:
    """A camera over the Warnow seen from the south, as tour.json publishes it."""
    camera = Camera(look_at=(312670, 5997890, 5.0), distance=900, heading=25, pitch=-35)
    assert resolve_camera(camera, vertical).to_json() == {
        "fov": 60.0,
        "heading": 24.9961,
        "height": 559.52,
        "latitude": 54.0890321,
        "longitude": 12.1305005,
        "look_at": [312670.0, 5997890.0, 5.0],
        "pitch": -35.0066,
        "position": [312331.65, 5997235.04, 521.24],
        "roll": 0.0,
    }
    # Independent check of the geographic position: pyproj's own projection of the grid one.
    lon, lat = pyproj.Transformer.from_crs(25833, 4258, always_xy=True).transform(
        312331.65, 5997235.04
    )
    assert (lon, lat) == pytest.approx((12.1305005, 54.0890321), abs=1e-7)
    # 900 m back at 35° below the horizontal: 516.2 m up, plus the curvature over 737 m.
    assert 521.24 - 5.0 == pytest.approx(900 * math.sin(math.radians(35)) + 0.04, abs=0.05)


def test_tour_document_of_the_warnowbruecke(vertical) -> None:
    scene = load_scene(SCENES / "warnowbruecke.toml")
    document = tour_document(scene, vertical)
    first = document["stops"][0]
    assert first["id"] == "querung" and first["epoch"] == "geplant"
    assert first["highlight"] == ["warnowbruecke"] and first["dwell"] == 18.0
    assert first["camera"] == resolve_camera(scene.tour.stops[0].camera, vertical).to_json()
    assert first["title"] == {
        "de": "Eine Brücke für Fuß und Rad",
        "en": "A bridge for walking and cycling",
    }
    assert [s["epoch"] for s in document["stops"]][-1] == "heute"


def test_tour_document_is_deterministic(vertical) -> None:
    path = SCENES / "rostocker-oval.toml"
    first = document_bytes(tour_document(load_scene(path), vertical))
    second = document_bytes(tour_document(load_scene(path), scene_transformer()))
    assert first == second
    assert json.loads(first)["stops"][0]["camera"]["look_at"] == [312330.0, 5998011.0, 0.0]
    assert b"NaN" not in first and b"-0.0," not in first


def test_stop_without_epoch_shows_the_default_epoch(scene_copy, vertical) -> None:
    path, text = scene_copy("warnowbruecke")
    path.write_text(
        text.replace('dwell = 18\nepoch = "geplant"\n', "dwell = 18\n", 1), encoding="utf-8"
    )
    document = tour_document(load_scene(path), vertical)
    assert document["stops"][0]["epoch"] == "heute"
