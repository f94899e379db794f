"""`/healthz` (the process answers) and `/readyz` (the index is loaded and the LLM is ready;
503 with the reason otherwise; with the generations running and waiting, and the process's
thread and asyncio task counts). Both are public, even with an API key, for load balancers.
`/metrics`: Prometheus' text format (see `rag.metrics`); behind the API key unless
`RAG_METRICS_PUBLIC=1`, a 404 with `RAG_METRICS=0`."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from rag.metrics import CONTENT_TYPE
from rag.server.service import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: index loaded and LLM ready (503 with the reason)")
async def readyz(service: ServiceDep) -> JSONResponse:
    await run_in_threadpool(service.refresh)
    reason = service.not_ready_reason
    body: dict[str, Any] = {
        "status": "ready" if reason is None else "not ready",
        "llm": service.llm.name if service.llm is not None else None,
        "running": service.pool.running,
        "waiting": service.pool.waiting,
        # for operators and the load tests: both return to their idle level after a burst
        "threads": threading.active_count(),
        "tasks": len(asyncio.all_tasks()),
    }
    if reason is not None:
        body["error"] = {"message": reason, "type": "not_ready"}
    return JSONResponse(body, status_code=200 if reason is None else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (every worker's)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}, 404: {"description": "RAG_METRICS=0"}},
)
async def metrics(service: ServiceDep) -> Response:
    if not service.metrics.enabled:
        return JSONResponse(
            {
                "error": {
                    "message": "metrics are off on this server (RAG_METRICS=0)",
                    "type": "invalid_request_error",
                }
            },
            status_code=404,
        )
    # reading every worker's files takes a few ms: off the event loop
    body = await run_in_threadpool(service.metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE)
