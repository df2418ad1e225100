"""Planner renders of published scenes (``twin render``): offscreen pyvista/VTK images of tour
stops or explicit cameras, today against planned, sun and shadow studies, attribute colours,
flythroughs. The only package that imports pyvista.

VTK must open its offscreen window through EGL (Mesa on these machines); forcing OSMesa
crashes. The choice is made here, before pyvista creates any window; a value already in the
environment wins.
"""

from __future__ import annotations

import os

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from twin.render.camera import CameraSpec, PlacedCamera, place_camera  # noqa: E402
from twin.render.scene import PublishedScene, TourStop, open_scene  # noqa: E402
from twin.render.views import (  # noqa: E402
    RenderOptions,
    View,
    flythrough,
    render_view,
    sun_series,
    view_for,
)

__all__ = [
    "CameraSpec",
    "PlacedCamera",
    "PublishedScene",
    "RenderOptions",
    "TourStop",
    "View",
    "flythrough",
    "open_scene",
    "place_camera",
    "render_view",
    "sun_series",
    "view_for",
]
