"""Colours, classes and words of the planner renders, in one place.

Attribute colours use discrete classes (a planner reads "15–20 m" off a legend, not a shade
of a gradient) with colour-blind-safe palettes: the sequential classes are samples of
viridis, the categories Okabe & Ito's palette.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "COLOR_BY",
    "LegendEntry",
    "classify",
    "text",
]

COLOR_BY = ("function", "height", "year")
BUILDING_CLASSES = frozenset({"Building", "BuildingPart"})
INT32_NO_DATA = -(2**31)
FLOAT64_NO_DATA = -1.0e300

UNKNOWN_RGB = (176, 176, 176)
SKY_TOP = (128, 170, 214)
SKY_BOTTOM = (226, 236, 245)
HIGHLIGHT_RGB = (204, 0, 153)
"""Overlay features a stop highlights (and changed pixels of --difference): magenta."""
OVERLAY_STATUS_RGB = {
    "planned": (230, 159, 0),
    "under construction": (240, 228, 66),
    "done": (0, 158, 115),
}

_VIRIDIS_7 = [(68, 1, 84), (68, 57, 131), (49, 104, 142), (33, 145, 140), (53, 183, 121),
              (143, 215, 68), (253, 231, 37)]
_OKABE_ITO = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
              (213, 94, 0), (204, 121, 167)]

HEIGHT_BREAKS = (5.0, 10.0, 15.0, 20.0, 30.0, 50.0)
YEAR_BREAKS = (1900, 1946, 1970, 1990, 2010)

_WORDS: dict[str, dict[str, str]] = {
    "de": {
        "unknown": "unbekannt", "changes": "Änderungen", "sun": "Sonne",
        "azimuth": "Azimut", "elevation": "Höhe", "view_centre": "in Bildmitte",
        "function": "Gebäudefunktion", "height": "Gebäudehöhe", "year": "Baujahr",
        "residential": "Wohnen", "business": "Gewerbe, Handel, Industrie",
        "public": "Öffentliche Zwecke", "other": "Sonstige",
        "planned": "geplant", "under construction": "im Bau", "done": "fertig",
        "highlight": "hervorgehoben", "overlays": "Vorhaben",
    },
    "en": {
        "unknown": "unknown", "changes": "Changes", "sun": "Sun",
        "azimuth": "azimuth", "elevation": "elevation", "view_centre": "at the view centre",
        "function": "Building function", "height": "Building height", "year": "Year built",
        "residential": "Residential", "business": "Business, trade, industry",
        "public": "Public use", "other": "Other",
        "planned": "planned", "under construction": "under construction", "done": "done",
        "highlight": "highlighted", "overlays": "Projects",
    },
}

# ALKIS building function (AdV, "31001_<code>"): the thousands digit groups the codes.
_FUNCTION_GROUPS = {"1": "residential", "2": "business", "3": "public"}


def text(word: str, language: str) -> str:
    """A label in the render's language (German or English)."""
    return _WORDS.get(language, _WORDS["de"]).get(word, word)


@dataclass(frozen=True, slots=True)
class LegendEntry:
    rgb: tuple[int, int, int]
    label: str


def _breaks_labels(breaks: Sequence[float], unit: str, first: str, last: str) -> list[str]:
    labels = [f"{first} {breaks[0]:g}{unit}"]
    labels += [f"{a:g}–{b:g}{unit}" for a, b in zip(breaks[:-1], breaks[1:], strict=True)]
    labels.append(f"{last} {breaks[-1]:g}{unit}")
    return labels


def _function_group(value: Any) -> str | None:
    """ALKIS 31001_1000 -> residential, ...; None for no value."""
    if value is None or value == "":
        return None
    code = str(value).split("_")[-1]
    if len(code) == 4 and code.isdigit() and code != "9998":
        return _FUNCTION_GROUPS.get(code[0], "other")
    return "other"


def classify(
    color_by: str, values: Sequence[Any], language: str
) -> tuple[np.ndarray, list[LegendEntry]]:
    """Per-feature RGB (n, 3) uint8 for the attribute values of a colour-by mode, and the
    full legend of that mode (every class, so legends agree between images)."""
    unknown = LegendEntry(UNKNOWN_RGB, text("unknown", language))
    if color_by == "function":
        groups = ["residential", "business", "public", "other"]
        palette = dict(zip(groups, [_OKABE_ITO[5], _OKABE_ITO[4], _OKABE_ITO[2],
                                    _OKABE_ITO[6]], strict=True))
        legend = [LegendEntry(palette[g], text(g, language)) for g in groups] + [unknown]
        rgb = [palette.get(_function_group(v) or "", UNKNOWN_RGB) for v in values]
    elif color_by in ("height", "year"):
        if color_by == "height":
            breaks: Sequence[float] = HEIGHT_BREAKS
            labels = _breaks_labels(breaks, " m", "<", "≥")
            missing = FLOAT64_NO_DATA
        else:
            breaks = YEAR_BREAKS
            labels = _breaks_labels(breaks, "", "<", "≥")
            missing = INT32_NO_DATA
        colours = _VIRIDIS_7[: len(breaks) + 1]
        legend = [LegendEntry(c, label) for c, label in zip(colours, labels, strict=True)]
        legend.append(unknown)
        rgb = []
        for value in values:
            if value is None or not np.isfinite(value) or value == missing or (
                color_by == "height" and value <= 0
            ):
                rgb.append(UNKNOWN_RGB)
            else:
                rgb.append(colours[int(np.searchsorted(breaks, value, side="right"))])
    else:
        raise ValueError(f"unknown colour mode {color_by!r}")
    return np.asarray(rgb, dtype=np.uint8).reshape(-1, 3), legend


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear 0..1 (glTF COLOR_0) -> sRGB bytes for display."""
    c = np.clip(linear, 0.0, 1.0)
    srgb = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1.0 / 2.4) - 0.055)
    return np.rint(srgb * 255.0).astype(np.uint8)
