"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from server.catalog import SceneCatalog
from server.settings import Settings

__all__ = ["CatalogDep", "SettingsDep", "StoreDep"]


def get_catalog(request: Request) -> SceneCatalog:
    """The app's scene catalog."""
    catalog: SceneCatalog = request.app.state.catalog
    return catalog


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> Any:
    """The planners' project store (``server.db.ProjectStore``)."""
    return request.app.state.store


CatalogDep = Annotated[SceneCatalog, Depends(get_catalog)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Any, Depends(get_store)]
