"""`rag remove SOURCE...`: documents out of the index, by name or path."""

from __future__ import annotations

import argparse
import json

from rag.cli.ingest import print_report
from rag.cli.status import EXIT_FAILED, EXIT_OK
from rag.documents import Skipped
from rag.embeddings import make_embedder
from rag.errors import UsageError
from rag.ingestion import ingest
from rag.settings import Settings
from rag.stores import make_store


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    machine: argparse.ArgumentParser,
) -> None:
    rm = commands.add_parser(
        "remove",
        parents=[common, machine],
        help="delete documents from the index",
        description="Delete documents by their name in the index (the `source` that search and "
        "answers show, e.g. docs/a.md) or by their file's path, whether the file still exists "
        "or not, or every document of a collection. The index keeps the settings it was built "
        "with. Exit status: 0 all removed, 1 some names (or a collection) not in the index, 2 "
        "usage error.",
    )
    rm.add_argument("sources", nargs="*", metavar="SOURCE", help="document name or file path")
    rm.add_argument(
        "--collection",
        action="append",
        default=[],
        metavar="NAME",
        help="also every document of this collection (repeat for several)",
    )
    rm.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    built = make_store(settings).open().manifest  # removing rebuilds nothing
    embedder = make_embedder(settings)
    if embedder.name != built.embedding_model:
        raise UsageError(
            f"the index was built with {built.embedding_model}, not {embedder.name}: removing "
            "with another model would re-embed every document; pass --model"
        )
    if not args.sources and not args.collection:
        raise UsageError("name the documents to remove, or a --collection")
    members = [s for s, e in built.files.items() if e.collection in args.collection]
    report = ingest([], settings, embedder, remove=[*args.sources, *members])
    for name in args.collection:
        if not any(built.files[s].collection == name for s in members):
            report.skipped.append(Skipped(name, "no collection of that name in the index"))
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print_report(report)
    return EXIT_FAILED if report.skipped else EXIT_OK
