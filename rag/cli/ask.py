"""`rag ask QUESTION [--url URL]`: the answer streamed to the terminal, from this process or
from a running server, then its sources and timings."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import get_args

from rag.answer import Answerer, Done, Error, Event, Sources, Token, collect
from rag.cli.status import EXIT_OK
from rag.embeddings import make_embedder
from rag.errors import RagError
from rag.llm import make_llm
from rag.retrieval import MODES, Retriever
from rag.settings import LLMName, Settings
from rag.stores import make_store


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    machine: argparse.ArgumentParser,
) -> None:
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
    ask.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    events = remote_events(args, settings) if args.url else local_events(args.question, settings)
    if args.json:
        print(json.dumps(collect(events), indent=1, ensure_ascii=False))
        return EXIT_OK
    sources = Sources(())
    started = False
    try:
        for event in events:
            match event:
                case Sources():
                    sources = event
                case Token():
                    print(event.text, end="", flush=True)
                    started = True
                case Done():
                    print()
                    print_sources_and_timings(sources, event)
                case Error():  # only a local answer: the client raises the server's
                    raise RagError(event.message)
    except (RagError, KeyboardInterrupt):
        if started:
            print()  # the error message goes on its own line, after the partial answer
        raise
    return EXIT_OK


def remote_events(args: argparse.Namespace, settings: Settings) -> Iterator[Event]:
    from rag.client import ask_events

    local_only = [f"--{n}" for n in ("llm", "index", "model") if getattr(args, n, None)]
    if local_only:
        print(
            f"note: {', '.join(local_only)} only apply without --url; the server at "
            f"{args.url} answers with its own settings",
            file=sys.stderr,
        )
    return ask_events(
        args.url,
        args.question,
        top_k=args.top_k,
        retrieval=args.retrieval,
        api_key=args.api_key or settings.api_key or None,
    )


def local_events(question: str, settings: Settings) -> Iterator[Event]:
    """The pipeline in this process: the same events the server sends."""
    embedder = make_embedder(settings)
    retriever = Retriever(make_store(settings).open(), embedder)
    answerer = Answerer(retriever, make_llm(settings), settings)
    embedder.embed(["warm up"])  # load the model now, so the timings show the answer's own cost
    yield from answerer.stream(question)


def print_sources_and_timings(sources: Sources, done: Done) -> None:
    for number, hit in enumerate(sources.hits, start=1):
        print(
            f"[{number}] {hit.chunk.source} ({hit.chunk.title}, chars "
            f"{hit.chunk.start}-{hit.chunk.end}, score {hit.score:.4f})"
        )
    print(
        f"retrieval {done.retrieval_ms:.0f} ms, first token {done.ttft_ms or 0:.0f} ms, total "
        f"{done.total_ms:.0f} ms, {done.completion_tokens} tokens",
        file=sys.stderr,
    )
