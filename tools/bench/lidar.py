"""Benchmark: LAS/LAZ → point-cloud 3D Tiles, against py3dtiles and a plain laspy decode.

Generates the inputs with ../shared/tools/gen-laz (deterministic: LAS 1.4, point format 7,
RGB, classified, EPSG:25833 + DHHN2016, 15 points/m²) as a LAZ and its uncompressed LAS twin,
then, in the same run on the same files, times each of these in its own process while polling
the resident memory of its whole process tree (every tool here uses worker processes):

* ``laspy``: a chunked decode of every point (``laspy.open(...).chunk_iterator``, the default
  LAZ backend, i.e. lazrs' parallel decoder): the speed limit of reading the file at all;
* ``twin``: ``twin build lidar --mode points`` (read, place, tile, write GLBs);
* ``py3dtiles``: ``py3dtiles convert`` (PyPI, in its own virtual environment under
  build/bench-venv-py3dtiles because it pins numpy < 2.4), with the same worker count,
  ``--force-srs-in --srs_in 25833`` (it cannot read the compound CRS) and ``--color_scale 1``
  (without it, it hangs on RGB LAZ when lazrs is installed);
* ``twin terrain``: ``twin build lidar --mode terrain`` on the LAZ (time only).

Prints points/s and peak memory of each, and the ratios twin/py3dtiles and twin/laspy.
The machine's load average is printed before and after: other work on a shared machine makes
the numbers noisy (run again when it is idle).

Usage: .venv/bin/python tools/bench/lidar.py [--points 20000000 60000000] [--workers 2]
       [--formats laz las] [--shared ../shared] [--skip-py3dtiles] [--skip-terrain] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "build" / "bench-venv-py3dtiles"
PY3DTILES_PACKAGES = ("py3dtiles", "laspy[lazrs]")

LASPY_DECODE = """
import sys, laspy
n = 0
with laspy.open(sys.argv[1]) as reader:
    for chunk in reader.chunk_iterator(1_000_000):
        n += len(chunk)
print(n)
"""


@dataclass
class Run:
    """One timed command."""

    name: str
    seconds: float
    peak_bytes: int
    returncode: int
    points: int

    @property
    def rate(self) -> float:
        """Points per second."""
        return self.points / self.seconds if self.seconds else 0.0


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    page = os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except OSError:
            pass
        stack.extend(children.get(pid, []))
    return total


def timed(name: str, command: list[str], points: int, log: Path) -> Run:
    """Run ``command``, polling the memory of its process tree every 50 ms."""
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        print(f"  {name} failed (exit {process.returncode}); see {log}", file=sys.stderr)
    return Run(name, seconds, peak, process.returncode, points)


def ensure_py3dtiles() -> Path:
    """The py3dtiles command of the benchmark's own virtual environment (created once)."""
    exe = VENV / "bin" / "py3dtiles"
    if not exe.exists():
        print(f"creating {VENV} for py3dtiles ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", *PY3DTILES_PACKAGES], check=True
        )
    return exe


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, nargs="+", default=[20_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--skip-py3dtiles", action="store_true")
    parser.add_argument("--formats", nargs="+", choices=("laz", "las"), default=["laz", "las"])
    parser.add_argument("--skip-terrain", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep inputs and outputs in this folder")
    args = parser.parse_args()
    gen = args.shared / "tools" / "gen-laz"
    twin = [sys.executable, "-m", "tools.cli"]
    py3dtiles = None if args.skip_py3dtiles else ensure_py3dtiles()
    print(f"{os.cpu_count()} CPUs, {args.workers} workers; load average {load()}")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-lidar-", dir=args.keep))
    results: list[dict[str, object]] = []
    try:
        for n in args.points:
            laz = work / f"tile-{n}.laz"
            inputs = [work / f"tile-{n}.{kind}" for kind in args.formats]
            for path in sorted({*inputs, laz}):
                if not path.exists():
                    subprocess.run(
                        [sys.executable, str(gen), "--points", str(n), "--seed", "1",
                         "--out", str(path)],
                        check=True,
                    )
            sizes = ", ".join(f"{p.suffix[1:].upper()} {p.stat().st_size / 1e6:.0f} MB"
                              for p in inputs)
            print(f"\n{n:,} points: {sizes}; load {load()}")
            for path in inputs:
                kind = path.suffix[1:].upper()
                runs: dict[str, Run] = {}
                runs["laspy"] = timed(
                    "laspy", [sys.executable, "-c", LASPY_DECODE, str(path)], n,
                    work / f"laspy-{kind}.log",
                )
                out = work / f"twin-{kind}-{n}"
                runs["twin"] = timed(
                    "twin",
                    [*twin, "-q", "build", "lidar", str(path), "--out", str(out),
                     "--mode", "points", "--workers", str(args.workers)],
                    n, work / f"twin-{kind}.log",
                )
                report = json.loads((out / "build-report.json").read_text()) if (
                    out / "build-report.json").exists() else {}
                if py3dtiles is not None:
                    runs["py3dtiles"] = timed(
                        "py3dtiles",
                        [str(py3dtiles), "convert", str(path), "--out",
                         str(work / f"py3dtiles-{kind}-{n}"), "--overwrite", "--jobs",
                         str(args.workers), "--srs_in", "25833", "--force-srs-in",
                         "--srs_out", "4978", "--color_scale", "1"],
                        n, work / f"py3dtiles-{kind}.log",
                    )
                print(f"  {kind}:")
                for run in runs.values():
                    print(f"    {run.name:10s} {run.seconds:7.1f} s  {run.rate / 1e6:6.2f} M pts/s"
                          f"  peak {run.peak_bytes / 2**20:6.0f} MiB"
                          + ("" if run.returncode == 0 else "  FAILED"))
                twin_run = runs["twin"]
                ratios = {"twin/laspy speed": twin_run.rate / runs["laspy"].rate}
                if "py3dtiles" in runs and runs["py3dtiles"].returncode == 0:
                    p3 = runs["py3dtiles"]
                    ratios["twin/py3dtiles speed"] = twin_run.rate / p3.rate
                    ratios["twin/py3dtiles memory"] = twin_run.peak_bytes / p3.peak_bytes
                print("    " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
                if report:
                    megabytes = report.get("tile_bytes", 0) / 1e6
                    print(f"    twin stages {report.get('seconds_by_stage')}, "
                          f"{report.get('tiles')} tiles, {megabytes:.0f} MB;"
                          f" heights: {report.get('vertical_model')}")
                results.append({"points": n, "format": kind, **{
                    k: {"seconds": r.seconds, "points_per_s": r.rate, "peak_mib":
                        r.peak_bytes / 2**20} for k, r in runs.items()}, "ratios": ratios})
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(work / f"py3dtiles-{kind}-{n}", ignore_errors=True)
            if args.skip_terrain:
                continue
            terrain = timed(
                "terrain",
                [*twin, "-q", "build", "lidar", str(laz), "--out", str(work / "terrain"),
                 "--mode", "terrain", "--workers", str(args.workers)],
                n, work / "terrain.log",
            )
            print(f"  terrain (LAZ, 1 m DTM): {terrain.seconds:.1f} s, peak "
                  f"{terrain.peak_bytes / 2**20:.0f} MiB"
                  + ("" if terrain.returncode == 0 else "  FAILED"))
            shutil.rmtree(work / "terrain", ignore_errors=True)
        print(f"\nload average at the end {load()}")
        (work / "results.json").write_text(json.dumps(results, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
