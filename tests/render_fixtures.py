"""A small published scene for renderer tests, laid out exactly as docs/scenes.md describes.

Built with the real pipelines: the 120 synthetic LoD2 buildings of
``scenes/data/LoD2_33_312_5998_2_MV.gml`` plus one 40 m tower (CityGML 2.0) as the
``buildings`` layer; a terrain from a LAS file written here (ground class 2 on a plane fitted
to the buildings' ground heights, a river channel of water class 9 at 0 m north of them); and
a planned bridge over the river (CityGML 2.0 ``brid:Bridge``) as the ``bridge`` layer, only in
the ``geplant`` epoch. Around them: manifest.json, tour.json (three stops), overlays.geojson
and the terrain's heights.npz, in ``<scenes>/testhafen/versions/<version>`` with ``current``
pointing at it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import laspy
import numpy as np

from tests.citygml_samples import box_polygons, building_xml, pos_list, write_citygml
from twin.crs import (
    ecef_to_enu_matrix,
    ecef_to_geodetic,
    ecef_transformer,
    parse_crs_option,
)
from twin.pipeline import CityGMLOptions, LidarOptions, build_citygml, build_lidar

ROOT = Path(__file__).resolve().parents[1]
BUILDINGS_GML = ROOT / "scenes" / "data" / "LoD2_33_312_5998_2_MV.gml"
SCENE_ID = "testhafen"
CRS = "EPSG:25833+7837"

TERRAIN_BOX = (311750.0, 5997600.0, 312250.0, 5998400.0)
"""E min, N min, E max, N max of the LiDAR ground (EPSG:25833)."""
RIVER = (5998240.0, 5998330.0)
"""N range of the water channel (water at 0.0 m DHHN2016)."""
BANK = 15.0
"""Width (m) of the slopes from the river up to the land."""
PLANE = (10.93, 0.0017, -0.0021)
"""Land height = a + b·(E − 312000) + c·(N − 5998000): about the buildings' ground heights."""

TOWER = (311900.0, 5997650.0, 12.0, 12.0, 40.0)
"""South-west corner E, N, width, depth, height of the isolated tower (for shadow tests)."""
BRIDGE_E = (312097.0, 312103.0)
"""E range of the bridge deck (6 m wide) ..."""
BRIDGE_N = (5998215.0, 5998355.0)
"""... its N range (over the river and both banks) ..."""
BRIDGE_DECK = (7.0, 8.2)
"""... and the DHHN2016 heights of its underside and its top."""
PIERS_N = (5998268.0, 5998302.0)


def land_height(e: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The ground height (DHHN2016) of the fixture's terrain, river included."""
    a, b, c = PLANE
    land = a + b * (e - 312000.0) + c * (n - 5998000.0)
    outside = np.maximum(RIVER[0] - n, n - RIVER[1])  # > 0 outside the channel
    slope = np.clip(outside / BANK, 0.0, 1.0)
    return np.where(outside <= 0.0, 0.0, land * slope)


def write_terrain_las(path: Path, seed: int = 7) -> Path:
    """LAS 1.4 ground (class 2) and water (class 9) points: one at a random place in every
    square metre (stratified, so no 1 m terrain cell is empty)."""
    rng = np.random.default_rng(seed)
    e0, n0, e1, n1 = TERRAIN_BOX
    cells_e, cells_n = np.meshgrid(np.arange(e0, e1), np.arange(n0, n1))
    count = cells_e.size
    e = cells_e.ravel() + rng.uniform(0.0, 1.0, count)
    n = cells_n.ravel() + rng.uniform(0.0, 1.0, count)
    z = land_height(e, n) + rng.normal(0.0, 0.03, count)
    water = (n > RIVER[0]) & (n < RIVER[1])
    z[water] = 0.0
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = [0.01, 0.01, 0.01]
    header.offsets = [312000.0, 5998000.0, 0.0]
    header.add_crs(parse_crs_option(CRS).horizontal)
    las = laspy.LasData(header)
    las.x, las.y, las.z = e, n, z
    las.classification = np.where(water, 9, 2).astype(np.uint8)
    las.write(path)
    return path


def write_tower_gml(path: Path) -> Path:
    """The tower as a CityGML 2.0 building with function, height and year of construction."""
    e, n, w, d, h = TOWER
    ground = float(land_height(np.array([e + w / 2]), np.array([n + d / 2]))[0])
    attrs = (
        "    <bldg:function>31001_3000</bldg:function>\n"
        "    <bldg:yearOfConstruction>1975</bldg:yearOfConstruction>\n"
        f'    <bldg:measuredHeight uom="urn:adv:uom:m">{h}</bldg:measuredHeight>\n'
    )
    return write_citygml(path, [building_xml("turm", box_polygons(e, n, ground - 0.5, w, d,
                                                                   h + 0.5), attrs)])


def _bridge_member(gml_id: str, boxes: list[dict[str, list]]) -> str:
    parts = [f'  <core:cityObjectMember>\n   <brid:Bridge gml:id="{gml_id}">\n'
             "    <brid:function>1000</brid:function>\n"]
    n = 0
    for surfaces in boxes:
        for kind, polys in surfaces.items():
            for ring in polys:
                n += 1
                parts.append(
                    f"    <brid:boundedBy><brid:{kind}><brid:lod2MultiSurface><gml:MultiSurface>"
                    f'<gml:surfaceMember><gml:Polygon gml:id="{gml_id}_p{n}"><gml:exterior>'
                    f"<gml:LinearRing><gml:posList>{pos_list(ring)}</gml:posList>"
                    "</gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>"
                    f"</gml:MultiSurface></brid:lod2MultiSurface></brid:{kind}></brid:boundedBy>\n"
                )
    parts.append("   </brid:Bridge>\n  </core:cityObjectMember>\n")
    return "".join(parts)


def write_bridge_gml(path: Path) -> Path:
    """The planned bridge: a deck on two piers, as a CityGML 2.0 brid:Bridge."""
    (e0, e1), (n0, n1), (low, top) = BRIDGE_E, BRIDGE_N, BRIDGE_DECK
    boxes = [box_polygons(e0, n0, low, e1 - e0, n1 - n0, top - low)]
    for pier in PIERS_N:
        boxes.append(box_polygons(e0 + 1.5, pier - 1.5, -1.0, 3.0, 3.0, low + 1.0))
    for n_end in (n0, n1 - 4.0):  # abutments down to the banks
        ground = float(land_height(np.array([e0]), np.array([n_end + 2.0]))[0])
        boxes.append(box_polygons(e0, n_end, ground - 1.0, e1 - e0, 4.0, low - ground + 1.0))
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" '
        'xmlns:brid="http://www.opengis.net/citygml/bridge/2.0" '
        'xmlns:gml="http://www.opengis.net/gml" xmlns:xlink="http://www.w3.org/1999/xlink">\n'
        '  <gml:boundedBy><gml:Envelope srsName="urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH" '
        'srsDimension="3"><gml:lowerCorner>0 0 0</gml:lowerCorner>'
        "<gml:upperCorner>1 1 1</gml:upperCorner></gml:Envelope></gml:boundedBy>\n"
        + _bridge_member("bruecke", boxes)
        + "</core:CityModel>\n"
    )
    path.write_text(text, encoding="utf-8")
    return path


# --- the published folder ----------------------------------------------------------------


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _root_region(tileset_path: Path) -> list[float]:
    """[west, south, east, north] (degrees), [low, high] (ellipsoidal m) of a tileset's root."""
    document = json.loads(tileset_path.read_text(encoding="utf-8"))
    root = document["root"]
    if "region" in root["boundingVolume"]:
        w, s, e, n, low, high = root["boundingVolume"]["region"]
        return [math.degrees(w), math.degrees(s), math.degrees(e), math.degrees(n), low, high]
    box = np.asarray(root["boundingVolume"]["box"], dtype=np.float64)
    centre, axes = box[:3], box[3:].reshape(3, 3)
    signs = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], float)
    corners = centre + signs @ axes
    matrix = np.asarray(root.get("transform", np.eye(4).ravel()), float).reshape(4, 4).T
    ecef = corners @ matrix[:3, :3].T + matrix[:3, 3]
    lon, lat, h = ecef_to_geodetic(ecef)
    return [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()),
            float(h.min()), float(h.max())]


def _external_child(tileset_path: Path, uri: str) -> dict[str, Any]:
    west, south, east, north, low, high = _root_region(tileset_path)
    document = json.loads(tileset_path.read_text(encoding="utf-8"))
    return {
        "boundingVolume": {"region": [math.radians(west), math.radians(south),
                                      math.radians(east), math.radians(north), low, high]},
        "geometricError": float(document["geometricError"]),
        "content": {"uri": uri},
    }


def _root_tileset(folder: Path, children: list[dict[str, Any]], what: str) -> None:
    regions = np.array([c["boundingVolume"]["region"] for c in children])
    region = [float(regions[:, 0].min()), float(regions[:, 1].min()),
              float(regions[:, 2].max()), float(regions[:, 3].max()),
              float(regions[:, 4].min()), float(regions[:, 5].max())]
    error = max(c["geometricError"] for c in children)
    _write_json(folder / "tileset.json", {
        "asset": {"version": "1.1", "generator": "tests/render_fixtures.py"},
        "geometricError": error,
        "root": {"boundingVolume": {"region": region}, "geometricError": error,
                 "refine": "ADD", "children": children},
        "extras": {"scene": SCENE_ID, "part": what},
    })


def camera_entry(position: tuple[float, float, float], look_at: tuple[float, float, float],
                 fov: float = 60.0) -> dict[str, Any]:
    """A tour.json camera: EPSG:25833 + DHHN2016 position and look-at, heading/pitch from
    true north at the position, and the ellipsoidal lon/lat/height for CesiumJS."""
    transformer = ecef_transformer(parse_crs_option(CRS))
    ecef = transformer.to_ecef(np.array([position, look_at], dtype=np.float64))
    to_enu = ecef_to_enu_matrix(ecef[0])
    east, north, up = to_enu[:3, :3] @ (ecef[1] - ecef[0])
    heading = math.degrees(math.atan2(east, north)) % 360.0
    pitch = math.degrees(math.atan2(up, math.hypot(east, north)))
    lon, lat, height = ecef_to_geodetic(ecef[0])
    return {
        "position": [float(v) for v in position],
        "longitude": round(float(lon), 9), "latitude": round(float(lat), 9),
        "height": round(float(height), 3),
        "heading": round(heading, 4), "pitch": round(pitch, 4), "roll": 0.0, "fov": fov,
        "look_at": [float(v) for v in look_at],
    }


STOPS = [
    ("uebersicht", "Übersicht", "Overview", None, [],
     (311640.0, 5997480.0, 420.0), (312000.0, 5997990.0, 10.0)),
    ("bruecke", "Die neue Brücke", "The new bridge", "geplant", ["bruecke"],
     (312260.0, 5998150.0, 48.0), (312100.0, 5998285.0, 4.0)),
    ("turm", "Der Turm", "The tower", None, [],
     (311906.0, 5997520.0, 90.0), (311906.0, 5997656.0, 12.0)),
]


def _lonlat_h(points: list[tuple[float, float, float]]) -> list[list[float]]:
    transformer = ecef_transformer(parse_crs_option(CRS))
    lon, lat, h = ecef_to_geodetic(transformer.to_ecef(np.asarray(points, dtype=np.float64)))
    return [[round(float(a), 9), round(float(b), 9), round(float(c), 3)]
            for a, b, c in zip(lon, lat, h, strict=True)]


def _overlay(fid: str, name: str, kind: str, geometry: dict[str, Any],
             height_mode: str) -> dict[str, Any]:
    return {
        "type": "Feature", "id": fid,
        "properties": {
            "id": fid, "name": name, "name_en": name, "kind": kind, "status": "planned",
            "start": "2027", "end": None, "cost_eur": None, "description_de": name,
            "description_en": name, "source": "https://example.org/testhafen",
            "height_mode": height_mode,
        },
        "geometry": geometry,
    }


def overlay_document() -> dict[str, Any]:
    """overlays.geojson: lon/lat with ellipsoidal heights (clamped: the terrain's)."""
    deck = [(312100.0, BRIDGE_N[0], BRIDGE_DECK[1]), (312100.0, BRIDGE_N[1], BRIDGE_DECK[1])]
    ring = [(312050.0, 5997850.0), (312200.0, 5997850.0), (312200.0, 5998000.0),
            (312050.0, 5998000.0), (312050.0, 5997850.0)]

    def clamped(points: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
        e = np.array([p[0] for p in points])
        n = np.array([p[1] for p in points])
        return [(a, b, float(h)) for a, b, h in zip(e, n, land_height(e, n), strict=True)]

    return {"type": "FeatureCollection", "features": [
        _overlay("bruecke", "Testbrücke", "bridge",
                 {"type": "LineString", "coordinates": _lonlat_h(deck)}, "absolute"),
        _overlay("quartier", "Testquartier", "district",
                 {"type": "Polygon", "coordinates": [_lonlat_h(clamped(ring))]}, "clamp"),
        _overlay("infopunkt", "Infopunkt", "info-point",
                 {"type": "Point", "coordinates": _lonlat_h(clamped([(312150.0, 5998370.0)]))[0]},
                 "clamp"),
    ]}


def build_render_scene(scenes_dir: Path, work: Path) -> Path:
    """Build and publish the fixture scene under ``scenes_dir``; returns its version folder."""
    work.mkdir(parents=True, exist_ok=True)
    staging = work / "version"
    layers = staging / "layers"
    las = write_terrain_las(work / "3dm_33_311_5997_1.las")
    build_lidar([las], layers / "terrain",
                LidarOptions(mode="terrain", crs=CRS, workers=1, write_heights=True))
    tower = write_tower_gml(work / "Turm_LoD2.gml")
    building_children = []
    for source, max_features in ((BUILDINGS_GML, 12), (tower, 12)):
        out = layers / "buildings" / source.stem
        build_citygml([source], out, CityGMLOptions(max_features_per_tile=max_features,
                                                    workers=1))
        building_children.append(_external_child(out / "tileset.json",
                                                 f"{source.stem}/tileset.json"))
    _root_tileset(layers / "buildings", building_children, "buildings")
    bridge = write_bridge_gml(work / "Testbruecke_LoD2.gml")
    out = layers / "bridge" / bridge.stem
    build_citygml([bridge], out, CityGMLOptions(workers=1))
    _root_tileset(layers / "bridge", [_external_child(out / "tileset.json",
                                                      f"{bridge.stem}/tileset.json")], "bridge")
    for report in staging.rglob("build-report.json"):
        report.unlink()

    titles = {"terrain": ("Gelände", "Terrain"), "buildings": ("Gebäude", "Buildings"),
              "bridge": ("Brücke (geplant)", "Bridge (planned)")}
    layer_epochs = {"terrain": ["heute", "geplant"], "buildings": ["heute", "geplant"],
                    "bridge": ["geplant"]}
    layer_entries = []
    for layer_id, (de, en) in titles.items():
        folder = layers / layer_id
        glbs = sorted(folder.rglob("*.glb"))
        layer_entries.append({
            "id": layer_id, "kind": "terrain" if layer_id == "terrain" else "citygml",
            "title": {"de": de, "en": en}, "tileset": f"layers/{layer_id}/tileset.json",
            "epochs": layer_epochs[layer_id], "visible": True,
            "region": _root_region(folder / "tileset.json"),
            "tiles": len(glbs), "bytes": sum(p.stat().st_size for p in glbs),
        })
    epochs = []
    for epoch_id, (de, en) in (("heute", ("Heute", "Today")),
                               ("geplant", ("Geplant", "Planned"))):
        members = [e for e in layer_entries if epoch_id in e["epochs"]]
        children = [_external_child(staging / e["tileset"], f"../../{e['tileset']}")
                    for e in members]
        _root_tileset(staging / "epochs" / epoch_id, children, f"epoch {epoch_id}")
        epochs.append({"id": epoch_id, "title": {"de": de, "en": en},
                       "tileset": f"epochs/{epoch_id}/tileset.json",
                       "layers": [e["id"] for e in members]})
    stops = []
    for number, (sid, de, en, epoch, highlight, position, look_at) in enumerate(STOPS, 1):
        stop: dict[str, Any] = {
            "number": number, "id": sid, "title": {"de": de, "en": en},
            "narration": {"de": de, "en": en}, "dwell": 8,
        }
        if epoch:
            stop["epoch"] = epoch
        stop["highlight"] = highlight
        stop["camera"] = camera_entry(position, look_at)
        stops.append(stop)
    _write_json(staging / "tour.json", {"scene": SCENE_ID,
                                        "title": {"de": "Testhafen", "en": "Test harbour"},
                                        "stops": stops})
    _write_json(staging / "overlays.geojson", overlay_document())

    files = {p.relative_to(staging).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(staging.rglob("*")) if p.is_file()}
    version = hashlib.sha256(
        json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:16]
    regions = np.array([e["region"] for e in layer_entries])
    e0, n0, e1, n1 = TERRAIN_BOX
    area = _lonlat_h([(e0, n0, 0.0), (e1, n0, 0.0), (e1, n1, 0.0), (e0, n1, 0.0), (e0, n0, 0.0)])
    manifest = {
        "format": "rostock-virtuell-scene/1",
        "id": SCENE_ID,
        "version": version,
        "title": {"de": "Testhafen", "en": "Test harbour"},
        "description": {"de": "Synthetische Testszene", "en": "Synthetic test scene"},
        "generator": "tests/render_fixtures.py",
        "crs": "EPSG:25833",
        "vertical_model": {"name": "EGM96", "expected_error_m": 1.0, "geoid": "egm96_15.gtx"},
        "area": {"type": "Polygon", "coordinates": [[[a, b] for a, b, _ in area]]},
        "region": [float(regions[:, 0].min()), float(regions[:, 1].min()),
                   float(regions[:, 2].max()), float(regions[:, 3].max()),
                   float(regions[:, 4].min()), float(regions[:, 5].max())],
        "attributions": ["Synthetische Testdaten", "Rostock virtuell"],
        "layers": layer_entries,
        "epochs": epochs,
        "default_epoch": "heute",
        "tour": "tour.json",
        "overlays": "overlays.geojson",
        "files": files,
    }
    _write_json(staging / "manifest.json", manifest)
    scene_dir = scenes_dir / SCENE_ID
    (scene_dir / "versions").mkdir(parents=True, exist_ok=True)
    final = scene_dir / "versions" / version
    os.rename(staging, final)
    os.symlink(f"versions/{version}", scene_dir / "current")
    return final
