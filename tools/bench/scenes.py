"""Benchmark of `twin build scene all`: full build, no-op rebuild, one changed file.

Runs on the sample data (generated at the default options when missing) in a scratch
folder, with the ``twin`` command in subprocesses, as a user runs it; prints wall times and
the ratios of the incremental runs to the full build (the issue asks < 5 % for a no-op).

    .venv/bin/python tools/bench/scenes.py [--data data/sample] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def twin(*args: str) -> tuple[float, list[dict]]:
    """Run ``twin ... --json``; wall seconds and the JSON reports."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "tools.cli", *args, "--json"], cwd=ROOT, capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"twin {' '.join(args)} failed:\n{result.stderr}")
    return seconds, json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "sample")
    parser.add_argument("--scratch", type=Path, default=ROOT / "build" / "bench-scenes")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "tools.cli", "-q", "sample-data", "--out",
                    str(args.data)], cwd=ROOT, check=True)
    shutil.rmtree(args.scratch, ignore_errors=True)
    data = args.scratch / "data"
    shutil.copytree(args.data, data, copy_function=os.link)
    out = args.scratch / "scenes"
    build = ("build", "scene", "all", "--data", str(data), "--out", str(out),
             "--workers", str(args.workers))

    full, reports = twin(*build)
    noop, noop_reports = twin(*build)
    assert not any(r["published"] for r in noop_reports)
    # One LoD2 tile changes (every building a metre taller in its attributes).
    path = sorted(data.glob("LoD2_33_*_2_MV.gml"))[-1]
    text, count = re.subn(
        r'(<bldg:measuredHeight uom="[^"]*">)([0-9.]+)<',
        lambda m: f"{m.group(1)}{float(m.group(2)) + 1:.3f}<", path.read_text(encoding="utf-8"))
    path.unlink()
    path.write_text(text, encoding="utf-8")
    one, one_reports = twin(*build)
    rebuilt = sum(1 for r in one_reports for p in r["parts"] if not p["cached"])
    parts = sum(len(r["parts"]) for r in one_reports)
    written = sum(r["files_written"] for r in one_reports)
    files = sum(r["files"] for r in one_reports)

    print(f"scenes: {', '.join(r['scene'] for r in reports)}; "
          f"{sum(r['bytes'] for r in reports) / 1e6:.0f} MB published; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'run':<28}{'wall s':>9}{'in-process s':>14}{'ratio':>9}")
    rows = [
        ("full build", full, sum(r["seconds"] for r in reports)),
        ("no-op rebuild", noop, sum(r["seconds"] for r in noop_reports)),
        (f"one file changed ({path.name[:16]}…)", one, sum(r["seconds"] for r in one_reports)),
    ]
    for name, wall, inside in rows:
        print(f"{name:<28}{wall:>9.2f}{inside:>14.2f}{wall / full:>9.3f}")
    print(f"one file changed: {rebuilt} of {parts} parts rebuilt, {written} of {files} "
          f"files new ({count} buildings changed)")


if __name__ == "__main__":
    main()
