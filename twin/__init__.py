"""Rostock virtuell: city data (CityGML, LiDAR) to OGC 3D Tiles 1.1, for Smile City Rostock."""

__version__ = "0.1.0"
GENERATOR = f"Rostock virtuell twin {__version__}"
