"""3D Tiles 1.1 spec objects (tileset, tile, bounding volume) as typed dicts, and the
metadata schema of city objects. Pure data: writers serialise these."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt

from twin import GENERATOR

_MIN_HALF_EXTENT = 0.01
"""Half-axes are at least this (m): a flat tile's box would otherwise be degenerate."""

INT32_NO_DATA = -(2**31)
FLOAT64_NO_DATA = -1.0e308


class BoundingVolume(TypedDict, total=False):
    box: list[float]
    region: list[float]
    sphere: list[float]


class Content(TypedDict):
    uri: str


class Tile(TypedDict):
    boundingVolume: BoundingVolume
    geometricError: float
    refine: NotRequired[str]
    transform: NotRequired[list[float]]
    content: NotRequired[Content]
    children: NotRequired[list[Tile]]


class Asset(TypedDict):
    version: str
    generator: str


class Tileset(TypedDict):
    asset: Asset
    geometricError: float
    root: Tile
    schema: NotRequired[dict[str, Any]]
    metadata: NotRequired[dict[str, Any]]
    extensionsUsed: NotRequired[list[str]]


def box_from_bounds(lo: npt.ArrayLike, hi: npt.ArrayLike) -> BoundingVolume:
    """An axis-aligned ``box`` bounding volume (centre + three half-axes) from min/max corners."""
    lo_a = np.asarray(lo, dtype=np.float64)
    hi_a = np.asarray(hi, dtype=np.float64)
    centre = (lo_a + hi_a) / 2.0
    half = np.maximum((hi_a - lo_a) / 2.0, _MIN_HALF_EXTENT)
    # Round outward to the millimetre so the JSON stays short and still contains everything.
    half = np.ceil(half * 1000.0 + 1.0) / 1000.0
    centre = np.round(centre, 3)
    return {
        "box": [
            float(centre[0]), float(centre[1]), float(centre[2]),
            float(half[0]), 0.0, 0.0,
            0.0, float(half[1]), 0.0,
            0.0, 0.0, float(half[2]),
        ]
    }


def column_major(matrix: npt.NDArray[np.float64]) -> list[float]:
    """A 4x4 numpy matrix as the column-major list 3D Tiles expects."""
    return [float(v) for v in np.asarray(matrix, dtype=np.float64).T.reshape(-1)]


def property_id(name: str, taken: set[str]) -> str:
    """A metadata property id (``^[a-zA-Z_][a-zA-Z0-9_]*$``) for an attribute name, unique."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"
    if base[0].isdigit():
        base = "_" + base
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


class AttributeCatalogue:
    """Collects the attribute names and value types seen, to type the metadata schema."""

    def __init__(self) -> None:
        self._types: dict[str, set[type]] = {}

    def add(self, attributes: dict[str, Any]) -> None:
        """Record the attributes of one feature."""
        for name, value in attributes.items():
            kind = type(value)
            if kind is int and not INT32_NO_DATA < value < 2**31:
                kind = float  # beyond INT32: keep the value exactly enough as FLOAT64
            self._types.setdefault(name, set()).add(kind)

    @property
    def types(self) -> dict[str, set[type]]:
        """Attribute name -> value types seen (to merge catalogues of several workers)."""
        return self._types

    def merge(self, types: dict[str, set[type]]) -> None:
        """Add the types another catalogue saw."""
        for name, kinds in types.items():
            self._types.setdefault(name, set()).update(kinds)

    def properties(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Attribute name -> (property id, 3D Metadata class property), in name order."""
        taken = {"gml_id", "citygml_class"}
        result: dict[str, tuple[str, dict[str, Any]]] = {}
        for name in sorted(self._types):
            types = self._types[name]
            pid = property_id(name, taken)
            prop: dict[str, Any]
            if types <= {int}:
                prop = {"type": "SCALAR", "componentType": "INT32", "noData": INT32_NO_DATA}
            elif types <= {int, float}:
                prop = {"type": "SCALAR", "componentType": "FLOAT64", "noData": FLOAT64_NO_DATA}
            else:
                prop = {"type": "STRING", "noData": ""}
            if pid != name:
                prop["name"] = name
            result[name] = (pid, prop)
        return result


FEATURE_CLASS = "city_object"
TILESET_CLASS = "tileset"


def metadata_schema(properties: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The 3D Metadata schema shared by tileset.json and every tile's property table."""
    feature_props: dict[str, Any] = {
        "gml_id": {"type": "STRING", "description": "gml:id of the city object"},
        "citygml_class": {"type": "STRING", "description": "CityGML class (Building, Bridge, ...)"},
    }
    for pid, prop in properties.values():
        feature_props[pid] = prop
    return {
        "id": "rostock_virtuell",
        "classes": {
            FEATURE_CLASS: {"name": "City object", "properties": feature_props},
            TILESET_CLASS: {
                "name": "Tileset provenance",
                "properties": {
                    "generator": {"type": "STRING"},
                    "source_crs": {"type": "STRING"},
                    "vertical_model": {"type": "STRING"},
                    "vertical_error_m": {
                        "type": "SCALAR",
                        "componentType": "FLOAT64",
                        "description": "expected error of heights from the vertical model (m)",
                    },
                    "sources": {"type": "STRING", "array": True},
                    "attribution": {"type": "STRING"},
                },
            },
        },
    }


def tileset_document(
    root: Tile,
    geometric_error: float,
    schema: dict[str, Any],
    provenance: dict[str, Any],
) -> Tileset:
    """The tileset.json document."""
    return {
        "asset": {"version": "1.1", "generator": GENERATOR},
        "schema": schema,
        "metadata": {"class": TILESET_CLASS, "properties": provenance},
        "geometricError": geometric_error,
        "root": root,
    }


def extend_bounds(
    bounds: Iterable[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Union of (min, max) corner pairs."""
    pairs = list(bounds)
    lo = np.min([p[0] for p in pairs], axis=0)
    hi = np.max([p[1] for p in pairs], axis=0)
    return lo, hi
