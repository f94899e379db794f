"""`rag ask QUESTION [--url URL]`: the answer streamed to the terminal, from this process or
from a running server, then its sources and timings."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

from rag.answer import Done, Error, Event, Sources, Token, collect
from rag.cli.asking import NEW, Asker, add_answer_options
from rag.cli.status import EXIT_OK
from rag.errors import RagError
from rag.settings import Settings


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
    add_answer_options(ask)
    ask.add_argument(
        "--url",
        default=None,
        help="ask a running `rag serve` (e.g. http://127.0.0.1:8000) instead of answering "
        "in this process; Ctrl-C stops the answer on the server too",
    )
    ask.add_argument(
        "--conversation",
        default=None,
        metavar="ID",
        help="continue this conversation (its earlier turns are the history), or 'new' to "
        "start one; the conversation's id is printed on stderr",
    )
    ask.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    asker = Asker(args, settings, args.conversation)
    events = asker.events(args.question)
    if args.json:
        result = collect(events)
        if asker.conversation_id not in (None, NEW):
            result.setdefault("conversation_id", asker.conversation_id)
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return EXIT_OK
    done = print_answer(events)
    if args.conversation is not None:
        named = done.conversation_id or asker.conversation_id
        print(f"conversation {named} (go on with --conversation {named})", file=sys.stderr)
    return EXIT_OK


def print_answer(events: Iterator[Event]) -> Done:
    """The answer's tokens as they come, then its sources and timings; its `Done`."""
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
                    return event
                case Error():  # only a local answer: the client raises the server's
                    raise RagError(event.message)
    except (RagError, KeyboardInterrupt):
        if started:
            print()  # the error message goes on its own line, after the partial answer
        raise
    raise RagError("the answer ended without its done event")


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
