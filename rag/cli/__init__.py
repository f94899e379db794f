"""The command line: `python -m rag ingest|remove|search|ask|chat|serve`, one module per command
(`add_parser` and `run`). Maps domain errors to one line and an exit status (`status`): never a
traceback."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from rag.cli import ask, chat, ingest, remove, search, serve
from rag.cli.status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from rag.errors import RagError, UsageError
from rag.settings import Settings, StoreName

COMMANDS = (ingest, remove, search, ask, chat, serve)


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
        return EXIT_INTERRUPTED


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
    for command in COMMANDS:
        command.add_parser(commands, common, machine)
    return parser
