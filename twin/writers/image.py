"""Image and video files of renders: PNG, animated GIF (Pillow) and MP4 (H.264 through the
ffmpeg binary that the imageio-ffmpeg wheel carries, so no system ffmpeg and no download).

Every writer is atomic: it writes ``.<name>.<random>.tmp`` beside the target and renames it
into place, so an interrupted or failed run leaves no half-written file. PNG and GIF output
is byte-identical for identical pixels (no timestamps in the files).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["write_gif", "write_mp4", "write_png"]


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed to it when the block succeeds."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_png(path: Path, image: np.ndarray) -> None:
    """An (H, W, 3) uint8 image as PNG."""
    with _atomic(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB").save(
            tmp, format="PNG", optimize=False, compress_level=6
        )


def write_gif(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """An animated GIF (looping); returns the number of frames. Each frame is reduced to its
    own 256-colour palette as it arrives, so memory holds one byte per pixel and frame."""
    images = [
        Image.fromarray(np.ascontiguousarray(f, dtype=np.uint8), "RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        for f in frames
    ]
    if not images:
        raise ValueError("no frames to write")
    with _atomic(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=round(1000.0 / fps), loop=0, optimize=False, disposal=1)
    return len(images)


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int]) -> int:
    """An H.264 MP4 (yuv420p, plays everywhere); frames stream to ffmpeg one at a time.
    Returns the number of frames. Odd sizes are padded by a black row/column (yuv420p needs
    even sizes)."""
    import imageio_ffmpeg

    width, height = size
    even = (width + width % 2, height + height % 2)
    count = 0
    with _atomic(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), even, fps=fps, codec="libx264", quality=8, macro_block_size=1,
            ffmpeg_log_level="error", output_params=["-f", "mp4"],
        )
        writer.send(None)
        try:
            for frame in frames:
                if frame.shape[1] != even[0] or frame.shape[0] != even[1]:
                    padded = np.zeros((even[1], even[0], 3), dtype=np.uint8)
                    padded[: frame.shape[0], : frame.shape[1]] = frame
                    frame = padded
                writer.send(np.ascontiguousarray(frame, dtype=np.uint8))
                count += 1
        finally:
            writer.close()
    return count
