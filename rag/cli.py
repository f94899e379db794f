"""The command line: `python -m rag ingest|remove|search|ask|serve`. Maps domain errors to one
line and an exit status (0 ok, 1 some input skipped or the operation failed, 2 usage error);
never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, get_args

from rag.answer import Answerer
from rag.corpus import IngestReport
from rag.embeddings import make_embedder
from rag.errors import RagError, UsageError
from rag.ingestion import default_progress, ingest
from rag.llm import make_llm
from rag.retrieval import MODES, Retriever
from rag.settings import LOG_LEVELS, LLMName, Settings, StoreName
from rag.stores import make_store

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    enable_fault_reports()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env().replace(
            index_dir=args.index,
            embedding_model=args.model,
            **{
                k: getattr(args, k, None)
                for k in (
                    "chunk_size_tokens",
                    "chunk_overlap_tokens",
                    "index_type",
                    "llm",
                    "top_k",
                    "retrieval",
                    "store",
                )
            },
        )
        result: int = args.run(args, settings)
        return result
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RagError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(
            "interrupted (an ingest leaves the index on disk as it was; an answer stops)",
            file=sys.stderr,
        )
        return 130


def enable_fault_reports() -> None:
    """A native crash (a signal in llama.cpp, FAISS or torch) still prints what it was and
    where, instead of the process vanishing with status 132 or 139."""
    # stderr may not be a real file (a caller captured it): then there is nowhere to report
    with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
        faulthandler.enable()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag",
        description="Ingest documents into a local index, search it, ask it (streamed answers "
        "with sources) and serve it over HTTP.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--index",
        type=Path,
        default=None,
        metavar="DIR",
        help="index folder (default: $RAG_INDEX_DIR or ./index)",
    )
    common.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="embedding model: all-MiniLM-L6-v2 (default, $RAG_EMBEDDING_MODEL), a local "
        "sentence-transformers folder, or 'hashing' (no model; for tests)",
    )
    common.add_argument(
        "--store",
        choices=get_args(StoreName),
        default=None,
        help="faiss: files in --index (default, $RAG_STORE); pgvector: PostgreSQL at "
        "$RAG_DATABASE_URL, shared by several workers",
    )
    machine = argparse.ArgumentParser(add_help=False)
    machine.add_argument("--json", action="store_true", help="print a machine-readable result")

    ing = commands.add_parser(
        "ingest",
        parents=[common, machine],
        help="add files and folders to the index (incremental)",
        description="Read .txt, .md, .html and .pdf files (folders recursively), split them into "
        "chunks, embed them and write the index. Only new or changed files are embedded; files "
        "that vanished from a folder ingested before are dropped (unless --no-prune). Exit "
        "status: 0 all ingested, 1 some files skipped (each with its reason), 2 usage error.",
    )
    ing.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="file or folder")
    ing.add_argument(
        "--chunk-size",
        dest="chunk_size_tokens",
        type=int,
        default=None,
        metavar="TOKENS",
        help="chunk length in embedding-model tokens (default 200; $RAG_CHUNK_SIZE_TOKENS)",
    )
    ing.add_argument(
        "--chunk-overlap",
        dest="chunk_overlap_tokens",
        type=int,
        default=None,
        metavar="TOKENS",
        help="tokens shared by consecutive chunks (default 32; $RAG_CHUNK_OVERLAP_TOKENS)",
    )
    ing.add_argument(
        "--index-type",
        choices=["flat", "hnsw"],
        default=None,
        help="flat: exact search (default); hnsw: approximate, for millions of chunks",
    )
    ing.add_argument(
        "--no-prune",
        dest="prune",
        action="store_false",
        help="keep chunks of files that were removed from a re-ingested folder",
    )
    ing.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    ing.set_defaults(run=run_ingest)

    rm = commands.add_parser(
        "remove",
        parents=[common, machine],
        help="delete documents from the index",
        description="Delete documents by their name in the index (the `source` that search and "
        "answers show, e.g. docs/a.md) or by their file's path, whether the file still exists "
        "or not. The index keeps the settings it was built with. Exit status: 0 all removed, 1 "
        "some names not in the index, 2 usage error.",
    )
    rm.add_argument("sources", nargs="+", metavar="SOURCE", help="document name or file path")
    rm.set_defaults(run=run_remove)

    search = commands.add_parser(
        "search",
        parents=[common, machine],
        help="show the chunks that best match a question",
        description="Retrieval only: the top chunks for a question, with source and score.",
    )
    search.add_argument("question")
    search.add_argument("--k", type=int, default=5, help="number of chunks (default 5)")
    search.add_argument(
        "--retrieval",
        choices=MODES,
        default="hybrid",
        help="hybrid: BM25 and dense fused (default); dense: MiniLM + FAISS; bm25: lexical",
    )
    search.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="drop chunks scoring below this (cosine; BM25 score with --retrieval bm25)",
    )
    search.add_argument(
        "--mmr",
        type=float,
        default=None,
        metavar="LAMBDA",
        help="re-rank for diversity, 0..1 (1 = relevance only)",
    )
    search.set_defaults(run=run_search)

    ask = commands.add_parser(
        "ask",
        parents=[common, machine],
        help="answer a question from the index, streaming",
        description="Retrieve sources for the question and stream the LLM's answer to the "
        "terminal as it is generated, then list the sources and timings.",
    )
    ask.add_argument("question")
    ask.add_argument(
        "--llm",
        choices=get_args(LLMName),
        default=None,
        help="llamacpp (default, $RAG_LLM), mock, extractive (no model) or openai",
    )
    ask.add_argument("--k", dest="top_k", type=int, default=None, help="sources in the prompt")
    ask.add_argument("--retrieval", choices=MODES, default=None, help="default hybrid")
    ask.add_argument(
        "--url",
        default=None,
        help="ask a running `rag serve` (e.g. http://127.0.0.1:8000) instead of answering "
        "in this process; Ctrl-C stops the answer on the server too",
    )
    ask.add_argument("--api-key", default=None, help="Bearer key for --url (default: $RAG_API_KEY)")
    ask.set_defaults(run=run_ask)

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve the HTTP API (SSE, NDJSON, WebSocket, OpenAI-compatible)",
        description="Serve the index over HTTP with uvicorn: POST /v1/ask, "
        "/v1/chat/completions, /v1/documents, /v1/ws, /healthz, /readyz; docs at /docs. "
        "Every RAG_* setting applies (see README).",
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
    serve.set_defaults(run=run_serve)
    return parser


def run_serve(args: argparse.Namespace, settings: Settings) -> int:

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
    if args.workers == 1:
        uvicorn.run(create_app(settings), **options)
        return EXIT_OK
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
    uvicorn.run("rag.server.app:worker_app", factory=True, workers=args.workers, **options)
    return EXIT_OK


def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    embedder = make_embedder(settings)
    report = ingest(
        args.paths,
        settings,
        embedder,
        prune=args.prune,
        progress=not args.quiet and not args.json and default_progress(),
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        _print_report(report)
    return EXIT_FAILED if report.skipped else EXIT_OK


def run_remove(args: argparse.Namespace, settings: Settings) -> int:
    built = make_store(settings).open().manifest  # removing rebuilds nothing
    embedder = make_embedder(settings)
    if embedder.name != built.embedding_model:
        raise UsageError(
            f"the index was built with {built.embedding_model}, not {embedder.name}: removing "
            "with another model would re-embed every document; pass --model"
        )
    report = ingest([], settings, embedder, remove=args.sources)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        _print_report(report)
    return EXIT_FAILED if report.skipped else EXIT_OK


def _print_report(report: IngestReport) -> None:
    for note in [report.rebuild_reason, *report.notes]:
        if note:
            print(f"note: {note}", file=sys.stderr)
    for item in report.skipped:
        print(f"skipped {item.path}: {item.reason}", file=sys.stderr)
    for item in report.ignored:
        print(f"ignored {item.path}: {item.reason}", file=sys.stderr)
    where = report.index_dir  # a database URL
    if "://" not in where:
        where = f"{where.rstrip('/')}/"
    if not report.wrote:
        state = "up to date" if report.version else "nothing to index"
        print(
            f"{where}: {state}, {report.n_files} files, {report.n_chunks} chunks "
            f"({report.seconds:.1f} s)"
        )
        return
    print(
        f"{where}: {report.n_files} files, {report.n_chunks} chunks; "
        f"added {len(report.added)}, changed {len(report.changed)}, removed "
        f"{len(report.removed)}, unchanged {len(report.unchanged)}; embedded "
        f"{report.n_embedded} chunks in {report.seconds:.1f} s"
    )
    if report.skipped:
        print(f"{len(report.skipped)} file(s) skipped, listed above")


def run_search(args: argparse.Namespace, settings: Settings) -> int:
    retriever = Retriever(make_store(settings).open(), make_embedder(settings))
    hits = retriever.search(
        args.question,
        k=args.k,
        mode=args.retrieval,
        min_score=args.min_score,
        mmr_lambda=args.mmr,
    )
    if args.json:
        print(json.dumps([hit.to_json() for hit in hits], indent=1, ensure_ascii=False))
        return EXIT_OK
    for hit in hits:
        scores = "  ".join(
            f"{name} {value:.3f}"
            for name, value in (("cosine", hit.dense_score), ("bm25", hit.bm25_score))
            if value is not None
        )
        print(
            f"[{hit.rank}] {hit.chunk.source}  ({hit.chunk.title}, chars "
            f"{hit.chunk.start}-{hit.chunk.end})  score {hit.score:.4f}  {scores}"
        )
        print(f"    {_snippet(hit.chunk.text)}")
    if not hits:
        print("no chunk matches" if retriever.index.manifest.n_chunks else "the index is empty")
    return EXIT_OK


def run_ask(args: argparse.Namespace, settings: Settings) -> int:
    if args.url:
        from rag.client import ask_events

        local_only = [f"--{n}" for n in ("llm", "index", "model") if getattr(args, n, None)]
        if local_only:
            print(
                f"note: {', '.join(local_only)} only apply without --url; the server at "
                f"{args.url} answers with its own settings",
                file=sys.stderr,
            )

        events = ask_events(
            args.url,
            args.question,
            top_k=args.top_k,
            retrieval=args.retrieval,
            api_key=args.api_key or settings.api_key or None,
        )
    else:
        events = _local_events(args.question, settings)
    if args.json:
        result: dict[str, Any] = {"answer": "", "sources": []}
        text = []
        for name, payload in events:
            if name == "sources":
                result["sources"] = payload
            elif name == "token":
                text.append(payload["text"])
            else:
                result.update(payload)
        result["answer"] = "".join(text).strip()
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return EXIT_OK
    sources: list[dict[str, Any]] = []
    started = False
    try:
        for name, payload in events:
            if name == "sources":
                sources = payload
            elif name == "token":
                print(payload["text"], end="", flush=True)
                started = True
            else:
                print()
                _print_sources_and_timings(sources, payload)
    except (RagError, KeyboardInterrupt):
        if started:
            print()  # the error message goes on its own line, after the partial answer
        raise
    return EXIT_OK


def _local_events(question: str, settings: Settings) -> Iterator[tuple[str, Any]]:
    """The pipeline in this process, as the same (name, payload) events the server sends."""
    embedder = make_embedder(settings)
    retriever = Retriever(make_store(settings).open(), embedder)
    answerer = Answerer(retriever, make_llm(settings), settings)
    embedder.embed(["warm up"])  # load the model now, so the timings show the answer's own cost
    for event in answerer.stream(question):
        yield event.kind, event.to_json()


def _print_sources_and_timings(sources: list[dict[str, Any]], done: dict[str, Any]) -> None:
    for source in sources:
        print(
            f"[{source['number']}] {source['source']} ({source['title']}, chars "
            f"{source['start']}-{source['end']}, score {source['score']:.4f})"
        )
    timings = done["timings"]
    print(
        f"retrieval {timings['retrieval_ms']:.0f} ms, first token "
        f"{timings['ttft_ms'] or 0:.0f} ms, total {timings['total_ms']:.0f} ms, "
        f"{done['usage']['completion_tokens']} tokens",
        file=sys.stderr,
    )


def _snippet(text: str, width: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
