"""Benchmark: M-V-style CityGML 1.0 LoD2 buildings → 3D Tiles, against a bare iterparse loop.

Generates the inputs with ../shared/tools/gen-mv-lod2 (deterministic, so figures are
comparable across runs and machines), then runs, each in its own process so that peak memory
is its own:

* baseline: lxml iterparse over the same file, clearing every element (raw parse speed);
* ``twin build citygml`` end to end (parse, triangulate, place, tile, write GLBs).

Prints buildings/s, MB/s and peak RSS side by side, and the ratio to the baseline. With
``--repeat N`` the two alternate N times and the medians are printed: on a shared virtual
machine single runs of either vary by a third.
Usage: .venv/bin/python tools/bench/citygml.py [--buildings 20000 80000] [--repeat 3]
       [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BASELINE = """
import sys, time
from lxml import etree
t = time.perf_counter()
n = 0
for _, el in etree.iterparse(sys.argv[1], events=("end",), resolve_entities=False, no_network=True):
    if el.tag.endswith("}Building"):
        n += 1
    el.clear()
import resource
peak = max(resource.getrusage(who).ru_maxrss
           for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(n, time.perf_counter() - t, peak)
"""

BUILD = """
import sys, time
from pathlib import Path
from twin.pipeline import build_citygml
t = time.perf_counter()
report = build_citygml([Path(sys.argv[1])], Path(sys.argv[2]))
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(
    resource.RUSAGE_CHILDREN).ru_maxrss  # worker processes, if any, count too
print(report.features, time.perf_counter() - t, peak)
"""


def run_measured(code: str, *args: str) -> tuple[int, float, float]:
    """Run python code in a child; return (count, seconds, its peak RSS in MiB)."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=ROOT
    )
    count, seconds, peak_kib = proc.stdout.split()
    return int(count), float(seconds), int(peak_kib) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--buildings", type=int, nargs="+", default=[20000, 80000])
    ap.add_argument("--repeat", type=int, default=1, help="alternate runs; medians printed")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = ap.parse_args()
    gen = args.shared / "tools" / "gen-mv-lod2"
    rows = []
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        for n in sorted(args.buildings):
            gml = Path(tmp) / f"mv_{n}.gml"
            subprocess.run(
                [sys.executable, str(gen), "--buildings", str(n), "--seed", "1", "--out", str(gml)],
                check=True,
            )
            mb = gml.stat().st_size / 1e6
            runs = []
            for _ in range(max(1, args.repeat)):
                count, base_s, base_rss = run_measured(BASELINE, str(gml))
                feats, build_s, build_rss = run_measured(
                    BUILD, str(gml), str(Path(tmp) / f"out_{n}")
                )
                assert count == n and feats == n, (count, feats, n)
                runs.append((base_s, build_s, base_rss, build_rss))
            base_s, build_s, base_rss, build_rss = (
                statistics.median(v) for v in zip(*runs, strict=True)
            )
            rows.append(
                {
                    "buildings": n,
                    "MB": round(mb, 1),
                    "iterparse_buildings_per_s": round(n / base_s),
                    "iterparse_MB_per_s": round(mb / base_s, 1),
                    "twin_buildings_per_s": round(n / build_s),
                    "twin_MB_per_s": round(mb / build_s, 1),
                    "ratio_twin_to_iterparse": round(base_s / build_s, 3),
                    "iterparse_peak_rss_MiB": round(base_rss),
                    "twin_peak_rss_MiB": round(build_rss),
                }
            )
            print(
                f"{n:>7} buildings {mb:7.1f} MB | iterparse+clear {n / base_s:8.0f} bldg/s "
                f"{mb / base_s:6.1f} MB/s | twin build {n / build_s:8.0f} bldg/s "
                f"{mb / build_s:6.1f} MB/s | ratio {base_s / build_s:.2f} | "
                f"peak RSS iterparse {base_rss:.0f} MiB, twin {build_rss:.0f} MiB",
                flush=True,
            )
            gml.unlink()
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.0f} s", file=sys.stderr)
