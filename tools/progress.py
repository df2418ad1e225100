"""Progress display: a bar on a terminal, silence when piped or in CI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from twin.pipeline.common import Progress


@contextmanager
def progress_bar(description: str, unit: str, enabled: bool = True) -> Iterator[Progress]:
    """A callback that advances a bar on stderr when it is a terminal."""
    bar = tqdm(
        desc=description,
        unit=unit,
        disable=not (enabled and sys.stderr.isatty()),
        leave=False,
        dynamic_ncols=True,
    )
    try:
        yield bar.update
    finally:
        bar.close()
