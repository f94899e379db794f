"""The FastAPI app: routes, the middlewares that guard them, and the one place where domain
errors become status codes. Every error body is `{"error": {"message": ..., "type": ...}}`
(OpenAI's shape, so OpenAI clients show the message); none carries a traceback.

    uvicorn --factory rag.server.app:create_app      # settings from RAG_* variables
    python -m rag serve                             # the same, with --host/--port flags
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from rag import __version__
from rag.embeddings import Embedder
from rag.errors import (
    AnswerNotFound,
    Busy,
    CollectionNotFound,
    ConversationNotFound,
    DocumentError,
    GenerationTimeout,
    IndexError_,
    NotReady,
    RagError,
    UploadConflict,
    UploadTooLarge,
    UsageError,
)
from rag.llm import LLM, LLMError
from rag.metrics import Metrics
from rag.server import answers, ask, chat, conversations, documents, health, page, websocket
from rag.server.access import Access
from rag.server.pool import GenerationPool
from rag.server.security import PUBLIC_PATHS, ApiKeyGuard, BodyLimit
from rag.server.service import Service
from rag.settings import Settings

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
log = logging.getLogger("rag.server")

# Libraries that log their internals at INFO (faiss: each optional CPU build it did not find, as
# a ModuleNotFoundError; bm25s: every index it builds): only their warnings reach the log.
CHATTY_LOGGERS = ("faiss", "faiss.loader", "bm25s")


def configure_logging(level: str, prefix: str = "") -> None:
    logging.basicConfig(level=level.upper(), format=f"{prefix}{LOG_FORMAT}")
    if level.upper() != "DEBUG":  # a filter on the handlers: bm25s sets its own logger's level
        for handler in logging.getLogger().handlers:
            handler.addFilter(quiet_libraries)


def quiet_libraries(record: logging.LogRecord) -> bool:
    """Drop the INFO and DEBUG records of CHATTY_LOGGERS."""
    chatty = record.name.split(".")[0] in {name.split(".")[0] for name in CHATTY_LOGGERS}
    return record.levelno >= logging.WARNING or not chatty


def worker_app() -> FastAPI:
    """The app of one `rag serve --workers N` process, from the `RAG_*` environment."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, f"[worker {os.getpid()}] ")
    return create_app(settings)


def create_app(
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    llm: LLM | None = None,
) -> FastAPI:
    """The app; the embedder, LLM and index load when it starts (tests may pass their own)."""
    settings = settings or Settings.from_env()
    metrics = Metrics.from_environ(settings.metrics, os.environ)
    service = Service(settings, embedder=embedder, llm=llm, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        reason = service.not_ready_reason
        if reason is not None:
            log.warning("starting, but not ready: %s", reason)
        sampling = asyncio.create_task(sample_memory(metrics))
        yield
        sampling.cancel()
        service.stop()
        metrics.close()

    app = FastAPI(
        title="rag",
        version=__version__,
        summary="Questions over your documents, answered token by token with sources",
        lifespan=lifespan,
    )
    app.state.service = service
    modules = (health, page, ask, answers, chat, conversations, documents, websocket)
    for module in modules:
        app.include_router(module.router)
    add_error_handlers(app)
    # outermost last: access (id, log, metrics) -> CORS -> API key -> body limit -> load
    # shedding -> routes
    app.add_middleware(LoadShedding, service.pool)
    app.add_middleware(BodyLimit, settings.max_body_bytes, settings.max_upload_bytes)
    if settings.api_key:
        public = PUBLIC_PATHS | ({"/metrics"} if settings.metrics_public else set())
        app.add_middleware(ApiKeyGuard, settings.api_key, frozenset(public))
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
        )
    # the templates requests are counted under: the docs' and each module's (the app's own list
    # holds the included routers as lazy wrappers, without a template)
    routes = [
        *(route for route in app.router.routes if hasattr(route, "path")),
        *(route for module in modules for route in module.router.routes),
    ]
    app.add_middleware(Access, routes, metrics)
    return app


MEMORY_SAMPLE_S = 10.0


async def sample_memory(metrics: Metrics) -> None:
    """Each worker writes its own resident memory now and then (a scrape reaches only one)."""
    while metrics.enabled:
        metrics.sample_memory()
        await asyncio.sleep(MEMORY_SAMPLE_S)


QUESTION_ROUTES = frozenset({"/v1/ask", "/v1/chat/completions"})  # JSON bodies, generations


class LoadShedding:
    """A question that arrives while every generation slot and queue place is taken gets its
    429 here, before its body is read, parsed and validated: under a burst, refusing stays
    cheap and leaves the CPU to the answers being generated. (The route admits for real; this
    only refuses early what it would refuse late.)"""

    def __init__(self, app: ASGIApp, pool: GenerationPool) -> None:
        self.app = app
        self.pool = pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in QUESTION_ROUTES and self.pool.full:
            await domain_response(self.pool.busy())(scope, receive, send)
            return
        await self.app(scope, receive, send)


def error_response(
    status: int,
    message: str,
    kind: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, **extra}}, status_code=status, headers=headers
    )


def status_of(err: RagError) -> int:
    match err:
        case Busy():
            return 429
        case ConversationNotFound() | AnswerNotFound() | CollectionNotFound():
            return 404
        case NotReady() | IndexError_():
            return 503
        case UploadTooLarge():
            return 413
        case UploadConflict():
            return 409
        case UsageError() | DocumentError():
            return 422
        case GenerationTimeout():
            return 504
        case LLMError():
            return 502
        case _:
            return 500


def domain_response(err: RagError) -> JSONResponse:
    """A domain error as its status, with Retry-After where waiting helps."""
    status = status_of(err)
    headers = None
    if isinstance(err, Busy):
        headers = {"Retry-After": str(err.retry_after_s)}
    elif status == 503:
        headers = {"Retry-After": "5"}
    if status >= 500:
        log.warning("%d: %s", status, err)
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return error_response(status, str(err), kind, headers)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        kind = request.headers.get("content-type", "")
        if request.url.path in QUESTION_ROUTES and "json" not in kind:  # e.g. curl -d without -H
            return error_response(
                415,
                f"send the body as JSON with Content-Type: application/json (got "
                f"{kind or 'no Content-Type'})",
                "invalid_request_error",
            )
        for e in err.errors():
            if e["type"] == "json_invalid":  # unparsable: 400, as OpenAI-style APIs answer
                return error_response(400, not_json(e), "invalid_request_error")
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in err.errors()
        ]
        return error_response(
            422, "; ".join(problems), "invalid_request_error", details=_plain(err.errors())
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        kind = "authentication_error" if err.status_code == 401 else "invalid_request_error"
        message = str(err.detail)
        if message == "There was an error parsing the body":  # FastAPI's words, for any body
            message = (
                "the multipart body could not be parsed"
                if "multipart" in request.headers.get("content-type", "")
                else "the body is not valid JSON (or not UTF-8, or nested too deep)"
            )
        return error_response(err.status_code, message, kind, err.headers)

    @app.exception_handler(RagError)
    async def domain_error(_: Request, err: RagError) -> JSONResponse:
        return domain_response(err)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error")
        message = "internal server error (the server log has details)"
        return error_response(500, message, "server_error")


def not_json(error: Any) -> str:
    """FastAPI's "JSON decode error" in words: what the parser expected and where.

    `{"question": ` -> the body is not valid JSON: expecting value (at character 14)
    """
    detail = str((error.get("ctx") or {}).get("error", "")).strip()
    position = error.get("loc", ())[-1] if len(error.get("loc", ())) > 1 else None
    where = f" (at character {position + 1})" if isinstance(position, int) else ""
    if detail:
        return f"the body is not valid JSON: {detail[0].lower()}{detail[1:]}{where}"
    return f"the body is not valid JSON{where}"


def _plain(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the echoed input (it may be a megabyte of question)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
