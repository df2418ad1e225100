"""Operations routes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.responses import Response

from server import metrics
from server.deps import CatalogDep, StoreDep

__all__ = ["router"]

log = logging.getLogger(__name__)
_NO_STORE = {"cache-control": "no-store"}


def router() -> APIRouter:
    """/healthz, /readyz, /metrics."""
    api = APIRouter(tags=["operations"])

    @api.get("/healthz")
    async def healthz() -> JSONResponse:
        """The process answers (liveness)."""
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)

    @api.get("/readyz", responses={503: {"description": "Not ready: see `checks`."}})
    async def readyz(catalog: CatalogDep, store: StoreDep) -> JSONResponse:
        """Ready to serve: every configured scene readable and the project store reachable."""
        await catalog.refresh()
        checks: dict[str, Any] = {}
        scenes = catalog.scene_ids()
        errors = catalog.errors
        checks["scenes"] = {
            "ok": bool(scenes) and not errors,
            "served": {scene_id: catalog.scene(scene_id).version for scene_id in scenes},
            "errors": errors,
        }
        if not scenes and not errors:
            checks["scenes"]["errors"] = {
                "": f"no scene in {catalog.scenes_dir} and no package configured"
            }
        if store is None:
            checks["store"] = {"ok": False, "error": "no project store configured"}
        else:
            try:
                await store.ping()
                checks["store"] = {"ok": True}
            except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
                log.warning("readyz: project store not reachable: %s", exc)
                checks["store"] = {"ok": False, "error": "not reachable"}
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
            headers=_NO_STORE,
        )

    @api.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition: requests by route and status, latency histogram,
        bytes sent, file cache hits and misses."""
        metrics.TALLY.flush()
        body = await anyio.to_thread.run_sync(metrics.exposition)
        return Response(body, media_type=metrics.CONTENT_TYPE, headers=_NO_STORE)

    return api
