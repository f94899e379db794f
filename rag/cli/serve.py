"""`rag serve`: the HTTP API under uvicorn, in one process or several workers."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

from rag.cli.status import EXIT_OK
from rag.embeddings import make_embedder
from rag.errors import UsageError
from rag.settings import LOG_LEVELS, LLMName, Settings


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    machine: argparse.ArgumentParser,
) -> None:
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve the HTTP API (SSE, NDJSON, WebSocket, OpenAI-compatible)",
        description="Serve the index over HTTP with uvicorn: POST /v1/ask, "
        "/v1/chat/completions, /v1/answers (resume, cancel), /v1/conversations, /v1/documents, "
        "/v1/ws, /healthz, /readyz, /metrics (Prometheus); docs at /docs. Every RAG_* setting "
        "applies (see README).",
    )
    serve.add_argument("--host", default=None, help="address (default 127.0.0.1; $RAG_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000; $RAG_PORT)")
    serve.add_argument(
        "--llm",
        choices=get_args(LLMName),
        default=None,
        help="llamacpp (default, $RAG_LLM), mock, extractive (no model) or openai",
    )
    serve.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=None,
        help="log level (default info; $RAG_LOG_LEVEL)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1); each has its own generation limit and queue, "
        "and with RAG_STORE=pgvector all share one index",
    )
    serve.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from rag.server.app import configure_logging, create_app

    settings = settings.replace(host=args.host, port=args.port, log_level=args.log_level)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    configure_logging(settings.log_level)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,  # rag.access logs each request once, with the answer's timings
        "ws": "websockets-sansio",
        "timeout_graceful_shutdown": 5,
    }
    with shared_metrics(settings.metrics, args.workers):
        if args.workers == 1:
            uvicorn.run(create_app(settings), **options)
        else:
            run_workers(args.workers, settings, options)
    return EXIT_OK


@contextlib.contextmanager
def shared_metrics(enabled: bool, workers: int) -> Iterator[None]:
    """The folder where several workers keep their metrics for one another's scrapes: the one
    named by PROMETHEUS_MULTIPROC_DIR (emptied first: counts of an earlier run would add up),
    else, with more than one worker, a temporary one (removed after)."""
    from rag.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    given = os.environ.get(MULTIPROC_ENV)
    if not enabled or (not given and workers == 1):
        yield
        return
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="rag-metrics-"))
    prepare_multiprocess_dir(folder)
    os.environ[MULTIPROC_ENV] = str(folder)  # read by each worker's prometheus_client
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)


def run_workers(workers: int, settings: Settings, options: dict[str, Any]) -> None:
    import uvicorn

    if settings.store == "faiss":
        print(
            "note: with the faiss store each worker keeps its own copy of the index and two "
            "uploads at once wait on each other; RAG_STORE=pgvector shares one store",
            file=sys.stderr,
        )
    if settings.embedding_runtime == "onnx":  # export the model once here, not in every worker
        make_embedder(settings).embed(["warm up"])
    # each worker process builds the app from the environment: hand it the flags there
    os.environ.update(settings.to_env())
    uvicorn.run("rag.server.app:worker_app", factory=True, workers=workers, **options)
