"""Prometheus metrics of the service (prometheus_client), shared by every route.

With several worker processes (``twin serve --workers N``) each process writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` (set by ``twin serve`` before the workers start) and ``/metrics``
adds them up, so any worker answers for all. Routes are labelled with their template
(``/api/v1/scenes/{scene}/v/{version}/{path}``), never the raw path, so the number of series
stays bounded.

Counting is the hot path's largest cost after sending (prometheus_client takes a lock, and in
multiprocess mode writes a memory-mapped file, for every increment: several microseconds for
a request's count, latency and bytes). So requests are tallied in plain Python per process and
handed to prometheus_client in batches: at most every second, and before every scrape. Another
worker's last second may be missing from a scrape; nothing is lost.
"""

from __future__ import annotations

import bisect
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

__all__ = ["CONTENT_TYPE", "TALLY", "Tally", "exposition"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BOUNDS = (*LATENCY_BUCKETS, float("inf"))
FLUSH_SECONDS = 1.0

REQUESTS = Counter(
    "twin_http_requests", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "twin_http_request_duration_seconds", "Time from request to the last response byte.",
    ["route"], buckets=LATENCY_BUCKETS,
)
RESPONSE_BYTES = Counter(
    "twin_http_response_bytes", "Response body bytes sent, by route template.", ["route"]
)
CACHE_HITS = Counter("twin_file_cache_hits", "Published files answered from memory.")
CACHE_MISSES = Counter("twin_file_cache_misses", "Published files read from storage.")
CACHE_BYTES = Gauge(
    "twin_file_cache_bytes", "Bytes of published files held in memory.",
    multiprocess_mode="livesum",
)



class Tally:
    """Per-process request counts, latency buckets, bytes and cache hits, flushed in batches."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], list[float]] = {}
        self._latency: dict[str, list[float]] = {}
        self.cache_hits = 0
        self.cache_misses = 0
        self._flushed_at = time.monotonic()

    def record(self, route: str, method: str, status: int, seconds: float, sent: int) -> None:
        """Count one answered request."""
        key = (route, method, status)
        counts = self._requests.get(key)
        if counts is None:
            counts = self._requests[key] = [0, 0]
        counts[0] += 1
        counts[1] += sent
        buckets = self._latency.get(route)
        if buckets is None:
            buckets = self._latency[route] = [0.0] * (len(_BOUNDS) + 1)
        buckets[bisect.bisect_left(_BOUNDS, seconds)] += 1
        buckets[-1] += seconds
        now = time.monotonic()
        if now - self._flushed_at >= FLUSH_SECONDS:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Hand the tallies to prometheus_client."""
        self._flushed_at = time.monotonic() if now is None else now
        requests, self._requests = self._requests, {}
        latency, self._latency = self._latency, {}
        sent_by_route: dict[str, float] = {}
        for (route, method, status), (count, sent) in requests.items():
            REQUESTS.labels(route, method, str(status)).inc(count)
            sent_by_route[route] = sent_by_route.get(route, 0) + sent
        for route, sent in sent_by_route.items():
            RESPONSE_BYTES.labels(route).inc(sent)
        for route, buckets in latency.items():
            child = LATENCY.labels(route)
            # A batch goes into the child's bucket and sum values directly (the public API
            # takes one observation at a time); a prometheus_client with another layout fails
            # here, in the tests, not silently.
            if len(getattr(child, "_buckets", ())) != len(_BOUNDS) or not hasattr(child, "_sum"):
                raise RuntimeError("prometheus_client's Histogram layout changed")
            for index, count in enumerate(buckets[:-1]):
                if count:
                    child._buckets[index].inc(count)
            child._sum.inc(buckets[-1])
        hits, misses = self.cache_hits, self.cache_misses
        self.cache_hits = self.cache_misses = 0
        if hits:
            CACHE_HITS.inc(hits)
        if misses:
            CACHE_MISSES.inc(misses)


TALLY = Tally()
record = TALLY.record


def worker_stopped() -> None:
    """Drop this worker's live gauges from the shared metrics (multiprocess mode)."""
    TALLY.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _multiprocess.mark_process_dead(os.getpid())


def exposition() -> bytes:
    """The Prometheus text exposition of this process, or of all workers in multiprocess mode.

    Reads the workers' files in multiprocess mode: call it in a thread, after ``TALLY.flush()``
    on the event loop.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
