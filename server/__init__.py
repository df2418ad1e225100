"""The streaming service: scenes, 3D Tiles, tours and project overlays over HTTP (FastAPI)."""
