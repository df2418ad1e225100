"""Labels, legend, scale bar, north arrow and attribution drawn onto rendered images (Pillow).

The font is DejaVu Sans as matplotlib ships it (matplotlib comes with pyvista), so images
look the same on every machine without system fonts, umlauts included (Pillow's own default
font has no "Ü"). Sizes scale with the image height.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from twin.render.style import LegendEntry, text

__all__ = ["Annotations", "annotate", "attribution", "nice_length"]

_BOX = (255, 255, 255, 205)
_INK = (20, 20, 20, 255)


@dataclass(slots=True)
class Annotations:
    """What to draw on one panel."""

    title: str | None = None
    """Big label at the top left (the epoch in comparisons)."""
    lines: list[str] = field(default_factory=list)
    """Smaller lines under the title (scene, stop, sun)."""
    legend_title: str | None = None
    legend: list[LegendEntry] = field(default_factory=list)
    metres_per_pixel: float | None = None
    """At the view centre, for the scale bar."""
    north: tuple[float, float] | None = None
    """Screen direction (x right, y down) of true north at the view centre."""
    language: str = "de"


@functools.cache
def _font_file(bold: bool) -> Path | None:
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / (
            "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
        if path.is_file():
            return path
    return None


@functools.cache
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = _font_file(bold)
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(path), size=size)


def _unit(height: int) -> int:
    """Base text size in pixels for an image of this height."""
    return max(10, round(height / 42))


def nice_length(max_metres: float) -> float:
    """The longest 1-2-5 × 10^k length not above ``max_metres``."""
    if max_metres <= 0:
        return 0.0
    exponent = math.floor(math.log10(max_metres))
    for step in (5.0, 2.0, 1.0):
        length = step * 10.0**exponent
        if length <= max_metres:
            return length
    return 10.0 ** (exponent - 1) * 5.0


def _box(draw: ImageDraw.ImageDraw, xy: tuple[float, float, float, float], pad: int) -> None:
    x0, y0, x1, y1 = xy
    draw.rounded_rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), radius=pad, fill=_BOX)


def annotate(image: np.ndarray, notes: Annotations) -> np.ndarray:
    """The image (H, W, 3 uint8) with the annotations drawn on it."""
    height, width = image.shape[:2]
    unit = _unit(height)
    pad = max(3, unit // 3)
    margin = max(4, unit // 2)
    base = Image.fromarray(image).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    small = _font(unit)

    # Title and lines, top left.
    y = margin + pad
    blocks: list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]] = []
    # Leave the top right corner to the north arrow; shrink the type until the lines fit.
    room = width - 2 * (margin + pad) - (unit * 4 if notes.north is not None else 0)
    size = unit
    while True:
        blocks = [(notes.title, _font(round(size * 1.4), bold=True))] if notes.title else []
        blocks += [(line, _font(size)) for line in notes.lines if line]
        sizes = [draw.textbbox((0, 0), t, font=f) for t, f in blocks]
        if not sizes or max(b[2] for b in sizes) <= room or size <= 6:
            break
        size -= 1
    if blocks:
        box_width = max(b[2] for b in sizes)
        box_height = sum(b[3] + pad // 2 for b in sizes)
        _box(draw, (margin + pad, y, margin + pad + box_width, y + box_height), pad)
        for (line, font), bbox in zip(blocks, sizes, strict=True):
            draw.text((margin + pad, y), line, font=font, fill=_INK)
            y += bbox[3] + pad // 2

    # North arrow, top right: an arrow along north's screen direction, "N" beyond its tip,
    # both inside one disc.
    if notes.north is not None:
        radius = unit * 1.7
        cx, cy = width - margin - radius, margin + radius
        dx, dy = notes.north
        norm = math.hypot(dx, dy) or 1.0
        dx, dy = dx / norm, dy / norm
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=_BOX)
        tip = (cx + dx * radius * 0.35, cy + dy * radius * 0.35)
        tail = (cx - dx * radius * 0.75, cy - dy * radius * 0.75)
        middle = (cx - dx * radius * 0.4, cy - dy * radius * 0.4)
        side = (-dy * radius * 0.3, dx * radius * 0.3)
        draw.polygon([tip, (tail[0] + side[0], tail[1] + side[1]), middle], fill=_INK)
        draw.polygon([tip, (tail[0] - side[0], tail[1] - side[1]), middle],
                     fill=(120, 120, 120, 255))
        label = _font(round(unit * 0.8), bold=True)
        x0, y0, x1, y1 = draw.textbbox((0, 0), "N", font=label)
        lx, ly = cx + dx * radius * 0.65, cy + dy * radius * 0.65
        draw.text((lx - (x0 + x1) / 2, ly - (y0 + y1) / 2), "N", font=label, fill=_INK)

    # Scale bar, bottom left.
    bottom = height - margin - pad
    if notes.metres_per_pixel and notes.metres_per_pixel > 0:
        metres = nice_length(width * 0.2 * notes.metres_per_pixel)
        if metres > 0:
            pixels = metres / notes.metres_per_pixel
            label = f"{metres:g} m ({text('view_centre', notes.language)})"
            bbox = draw.textbbox((0, 0), label, font=small)
            bar_height = max(3, unit // 3)
            top = bottom - bar_height - bbox[3] - pad // 2
            x0 = margin + pad
            _box(draw, (x0, top, x0 + max(pixels, bbox[2]), bottom), pad)
            draw.text((x0, top), label, font=small, fill=_INK)
            y0 = bottom - bar_height
            half = pixels / 2
            draw.rectangle((x0, y0, x0 + half, bottom), fill=_INK)
            draw.rectangle((x0 + half, y0, x0 + pixels, bottom), outline=_INK,
                           fill=(255, 255, 255, 255))
            bottom = top - 2 * pad - pad

    # Legend, above the scale bar; its type shrinks until it fits under the title block.
    if notes.legend:
        room = bottom - (y + 2 * pad)
        size = unit
        while True:
            font = _font(size)
            rows = [(e, draw.textbbox((0, 0), e.label, font=font)) for e in notes.legend]
            title_box = draw.textbbox((0, 0), notes.legend_title or "", font=font)
            row_height = max(b[3] for _, b in rows) + max(1, size // 6)
            box_height = len(rows) * row_height + (
                title_box[3] + pad if notes.legend_title else 0)
            if box_height <= room or size <= 6:
                break
            size -= 1
        swatch = row_height - max(1, size // 6)
        box_width = max([title_box[2]] + [swatch + pad + b[2] for _, b in rows])
        top = bottom - box_height
        x0 = margin + pad
        _box(draw, (x0, top, x0 + box_width, bottom), pad)
        y = top
        if notes.legend_title:
            draw.text((x0, y), notes.legend_title, font=font, fill=_INK)
            y += title_box[3] + pad
        for entry, _ in rows:
            draw.rectangle((x0, y, x0 + swatch, y + swatch), fill=entry.rgb + (255,),
                           outline=_INK)
            draw.text((x0 + swatch + pad, y), entry.label, font=font, fill=_INK)
            y += row_height
    return np.asarray(Image.alpha_composite(base, layer).convert("RGB"))


def attribution(image: np.ndarray, credits: list[str]) -> np.ndarray:
    """The scene's attributions in small type at the bottom right, one line per credit."""
    if not credits:
        return image
    height, width = image.shape[:2]
    unit = max(9, round(_unit(height) * 0.75))
    pad = max(2, unit // 3)
    base = Image.fromarray(image).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = _font(unit)
    boxes = [draw.textbbox((0, 0), c, font=font) for c in credits]
    line = max(b[3] for b in boxes) + pad // 2
    box_width = max(b[2] for b in boxes)
    x1 = width - pad * 2
    y = height - pad * 2 - line * len(credits)
    _box(draw, (x1 - box_width, y, x1, height - pad * 2), pad)
    for credit, bbox in zip(credits, boxes, strict=True):
        draw.text((x1 - bbox[2], y), credit, font=font, fill=_INK)
        y += line
    return np.asarray(Image.alpha_composite(base, layer).convert("RGB"))
