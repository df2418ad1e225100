"""Scenes: definitions (scenes/<id>.toml), project overlays, tour cameras, published documents.

``load_scene`` reads and checks a scene file and its overlay file; ``resolve_sources`` finds a
scene's source files in a data folder; ``tour_document`` and ``overlay_document`` give the
tour.json and overlays.geojson of docs/scenes.md. The builder (twin/pipeline/scene.py) wires
them to the CityGML and LiDAR pipelines.
"""

from twin.scene.camera import ResolvedCamera, resolve_camera, scene_transformer
from twin.scene.definition import Scene, load_scene, resolve_sources
from twin.scene.overlays import OverlayCollection, OverlayFeature, load_overlays
from twin.scene.publish import document_bytes, overlay_document, tour_document

__all__ = [
    "OverlayCollection",
    "OverlayFeature",
    "ResolvedCamera",
    "Scene",
    "document_bytes",
    "load_overlays",
    "load_scene",
    "overlay_document",
    "resolve_camera",
    "resolve_sources",
    "scene_transformer",
    "tour_document",
]
