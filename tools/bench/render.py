"""Benchmark: ``twin render`` at 1920×1080 for the first tour stop of each published scene.

Each measurement runs in its own process, so peak memory is its own:

* baseline: pyvista opens the same offscreen EGL window and renders one plane (the fixed cost
  of VTK, the window and one frame at this size);
* render: open the scene, select and decode the stop's tiles, render, annotate, write PNG;
* render with ``--sun`` (shadows: a sunlit render, the sun's depth map, a sunless render).

Prints tiles, triangles, seconds and peak RSS, and each time as a ratio to the baseline.
Scenes come from ``--scenes`` (default build/scenes, as ``twin build scene all`` writes
them); without any there, the small test scene of tests/render_fixtures.py is built into a
temporary folder so the benchmark always has something to measure.

Usage: .venv/bin/python tools/bench/render.py [--scenes build/scenes] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BASELINE = """
import json, resource, sys, time
import twin.render  # the EGL window choice
import pyvista as pv
width, height = map(int, sys.argv[1].split("x"))
t = time.perf_counter()
plotter = pv.Plotter(off_screen=True, window_size=(width, height))
plotter.add_mesh(pv.Plane(i_size=100, j_size=100))
image = plotter.screenshot(return_img=True)
plotter.close()
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

RENDER = """
import json, resource, sys, time
from pathlib import Path
t = time.perf_counter()
from twin.render import RenderOptions, open_scene, view_for
from twin.render.sun import parse_time
from twin.render.views import Session, sun_at
from twin.writers.image import write_png
scenes, scene_id, size, sun, out = sys.argv[1:6]
width, height = map(int, size.split("x"))
scene = open_scene(Path(scenes), scene_id)
view = view_for(scene, str(scene.stops[0].number), None)
position = sun_at(scene, parse_time(sun)) if sun != "-" else None
with Session(scene, RenderOptions(size=(width, height))) as session:
    image = session.image(view, position)
    frame = session.last_frames[0]
    triangles = sum(int(g.surfaces.n_cells) for g in session.renderer._geometry.values()
                    if g.surfaces is not None)
write_png(Path(out), image)
print(json.dumps({
    "seconds": time.perf_counter() - t,
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "tiles": len(frame.selection.tiles), "casters": frame.shadow_casters,
    "triangles": triangles,
}))
"""


def measure(code: str, *args: str) -> dict[str, float]:
    """Run python code in a child process; its JSON report."""
    proc = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                          text=True, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=Path, default=ROOT / "build" / "scenes")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--sun", default="2026-06-21T15:00+02:00")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from twin.render.scene import published_scene_ids

    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        scenes_dir = args.scenes
        ids = published_scene_ids(scenes_dir)
        if not ids:
            from tests.render_fixtures import build_render_scene

            print(f"no published scenes in {scenes_dir}: using the test scene "
                  "(tests/render_fixtures.py)")
            scenes_dir = Path(tmp) / "scenes"
            build_render_scene(scenes_dir, Path(tmp) / "work")
            ids = published_scene_ids(scenes_dir)
        base = measure(BASELINE, args.size)
        print(f"size {args.size}; baseline (VTK window + one plane): {base['seconds']:.2f} s, "
              f"peak {base['peak_mib']:.0f} MiB")
        header = (f"{'scene':<16} {'mode':<6} {'tiles':>5} {'casters':>7} {'triangles':>10} "
                  f"{'seconds':>8} {'x base':>7} {'peak MiB':>9}")
        print(header)
        print("-" * len(header))
        for scene_id in ids:
            for mode, sun in (("plain", "-"), ("sun", args.sun)):
                out = str(Path(tmp) / f"{scene_id}-{mode}.png")
                result = measure(RENDER, str(scenes_dir), scene_id, args.size, sun, out)
                print(f"{scene_id:<16} {mode:<6} {result['tiles']:>5} {result['casters']:>7} "
                      f"{result['triangles']:>10} {result['seconds']:>8.2f} "
                      f"{result['seconds'] / base['seconds']:>7.1f} {result['peak_mib']:>9.0f}")


if __name__ == "__main__":
    main()
