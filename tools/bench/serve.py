"""Benchmark: ``twin serve`` against nginx serving the same published scene folder.

Both serve the tiles of one built scene under the same URLs
(``/api/v1/scenes/<scene>/v/<version>/<path>``; nginx maps them onto
``<scene>/versions/<version>/<path>`` with a regex location), on 127.0.0.1 only, with the same
number of worker processes. wrk (Debian) requests random tile URLs of the scene over
keep-alive connections: a warm-up, then the measured run of ``--seconds`` at
``--connections``, first against nginx, then against ``twin serve``. Prints req/s, p50/p99
latency and errors for both, and the ratio (target: at least 25 % of nginx's req/s with 0
errors and p99 below 50 ms).

Usage: .venv/bin/python tools/bench/serve.py [--scenes build/scenes] [--scene ID]
           [--seconds 20] [--connections 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NGINX_CONF = """
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{
        model/gltf-binary glb;
        application/json json;
        application/geo+json geojson;
    }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location ~ "^/api/v1/scenes/([a-z0-9_-]+)/v/([0-9a-f]{{16}})/(.+)$" {{
            alias {scenes}/$1/versions/$2/$3;
            add_header Cache-Control "public, max-age=31536000, immutable";
        }}
        location = /healthz {{ return 200 "ok"; }}
    }}
}}
"""

WRK_SCRIPT = """
local paths = {{}}
for line in io.lines("{paths}") do paths[#paths + 1] = line end
local counter = 0
setup = function(thread)
    counter = counter + 1
    thread:set("seed", counter)
end
init = function(args)
    math.randomseed(seed * 7919)
end
request = function()
    return wrk.format("GET", paths[math.random(#paths)])
end
"""


@dataclass
class Result:
    """One wrk run."""

    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - 127.0.0.1
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {url} did not come up within {seconds:.0f} s")
        time.sleep(0.2)


def milliseconds(text: str) -> float:
    value = float(re.match(r"[\d.]+", text).group(0))  # type: ignore[union-attr]
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    if text.endswith("m"):
        return value * 60_000
    return value * 1000  # seconds


def run_wrk(
    name: str, base: str, script: Path, seconds: int, connections: int, threads: int
) -> Result:
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
        "--timeout", "5s", "-s", str(script), base,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    p50 = milliseconds(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = milliseconds(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors += sum(int(group) for group in socket_errors.groups())
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_ok:
        errors += int(non_ok.group(1))
    return Result(name, rate, p50, p99, errors, total)


def tile_urls(scenes: Path, scene: str) -> list[str]:
    folder = scenes / scene / "current"
    manifest = json.loads((folder / "manifest.json").read_text())
    version = manifest["version"]
    tiles = sorted(path for path in manifest["files"] if path.endswith(".glb"))
    if not tiles:
        raise SystemExit(f"bench: {folder}/manifest.json lists no .glb tiles")
    return [f"/api/v1/scenes/{scene}/v/{version}/{path}" for path in tiles]


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=Path, default=ROOT / "build" / "scenes")
    parser.add_argument("--scene", help="Scene id (default: the first published scene).")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    args = parser.parse_args()

    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"bench: {tool} is not installed; run tools/setup")
    scenes = args.scenes.resolve()
    if args.scene is None:
        published = sorted(p.parent.name for p in scenes.glob("*/current"))
        if not published:
            raise SystemExit(
                f"bench: no published scene in {scenes}; build one with "
                f"`twin build scene warnowbruecke --out {scenes}`"
            )
        args.scene = published[0]
    load_before = os.getloadavg()[0]
    urls = tile_urls(scenes, args.scene)
    random.Random(5).shuffle(urls)

    with tempfile.TemporaryDirectory(prefix="twin-bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "paths.txt").write_text("\n".join(urls) + "\n")
        script = tmp / "random.lua"
        script.write_text(WRK_SCRIPT.format(paths=tmp / "paths.txt"))
        results: list[Result] = []

        nginx_port = free_port()
        (tmp / "nginx.conf").write_text(
            NGINX_CONF.format(workers=args.workers, tmp=tmp, port=nginx_port, scenes=scenes)
        )
        nginx_binary = shutil.which("nginx") or "/usr/sbin/nginx"
        subprocess.run(
            [nginx_binary, "-t", "-q", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], check=True
        )
        nginx = subprocess.Popen(
            [nginx_binary, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{nginx_port}"
            wait_until_up(base + "/healthz")
            wait_until_up(base + urls[0])
            run_wrk("warm-up", base, script, args.warmup, args.connections, args.threads)
            results.append(
                run_wrk("nginx", base, script, args.seconds, args.connections, args.threads)
            )
        finally:
            stop(nginx)

        twin_port = free_port()
        env = dict(
            os.environ,
            TWIN_SCENES_DIR=str(scenes),
            TWIN_PACKAGES="[]",
            TWIN_DATABASE_URL=f"sqlite:///{tmp}/twin.sqlite3",
        )
        twin = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "twin"), "-q", "serve", "--port", str(twin_port),
             "--workers", str(args.workers)],
            env=env, cwd=ROOT,
        )
        try:
            base = f"http://127.0.0.1:{twin_port}"
            wait_until_up(base + "/healthz")
            wait_until_up(base + urls[0])
            run_wrk("warm-up", base, script, args.warmup, args.connections, args.threads)
            results.append(
                run_wrk("twin serve", base, script, args.seconds, args.connections, args.threads)
            )
        finally:
            stop(twin)

    nginx_result, twin_result = results
    print(
        f"scene {args.scene}: {len(urls)} tile URLs, {args.seconds} s at {args.connections} "
        f"connections, {args.workers} workers each, wrk -t{args.threads}, 127.0.0.1; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        f"(on {os.cpu_count()} CPUs: other work skews both servers)"
    )
    print(f"{'server':<12}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'requests':>10}")
    for result in results:
        print(
            f"{result.name:<12}{result.requests_per_s:>10.0f}{result.p50_ms:>9.2f}"
            f"{result.p99_ms:>9.2f}{result.errors:>8d}{result.requests:>10d}"
        )
    ratio = twin_result.requests_per_s / nginx_result.requests_per_s
    met = ratio >= 0.25 and twin_result.errors == 0 and twin_result.p99_ms < 50
    print(
        f"ratio twin/nginx: {ratio:.1%} of nginx's req/s "
        f"(target >= 25 %, 0 errors, p99 < 50 ms: {'met' if met else 'NOT met'})"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
