"""The built sample city loads and renders in a real client: CesiumJS in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.pipeline import CityGMLOptions, build_citygml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.browser
def test_sample_city_renders_in_cesium(tmp_path, render_tileset):
    out = tmp_path / "sample"
    build_citygml(
        [ROOT / "scenes/data/LoD2_33_312_5998_2_MV.gml"], out,
        CityGMLOptions(max_features_per_tile=40),
    )
    result = render_tileset(out, heading=20, pitch=-40)
    assert result.ok, result.summary()
    assert result.tiles_loaded and not result.harness_errors
    assert result.external_requests == []
    assert all(u.startswith("http://127.0.0.1") for u in result.requests)
    # Buildings fill a good part of the middle of the view, in roof red and wall white.
    h, w, _ = result.image.shape
    centre = result.image[h // 4: 3 * h // 4, w // 4: 3 * w // 4].astype(int)
    mask = result.content_mask()[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    assert mask.mean() > 0.10, result.summary()  # ~17 % here: buildings on a 40 m grid
    reddish = (centre[..., 0] > centre[..., 2] + 40) & mask
    light = (centre.min(axis=2) > 150) & mask
    assert reddish.mean() > 0.01 and light.mean() > 0.01
    # The GLBs came over the wire (leaves were refined to at this distance).
    glbs = [u for u in result.requests if u.endswith(".glb")]
    assert len(glbs) >= 2
    assert np.isfinite(result.image).all()
