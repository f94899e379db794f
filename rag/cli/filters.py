"""The flags that limit a question to some documents (`rag search`, `rag ask`, `rag chat`):
`--collection NAME` and `--where key=value` (see `rag.filters` for the forms)."""

from __future__ import annotations

import argparse
from typing import Any

from rag.filters import Filter, json_of_args


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--collection",
        action="append",
        default=[],
        metavar="NAME",
        help="only documents of this collection (repeat: any of them)",
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COND",
        help="only documents where COND holds: key=value (a,b: any of), source^=PREFIX, "
        "modified>=TIME, modified<TIME, tag.KEY=value; keys: collection, source, file_type, "
        "title (repeat: all of them)",
    )


def filter_json(args: argparse.Namespace) -> dict[str, Any]:
    """The flags in the API's JSON form ({} when none)."""
    return json_of_args(args.collection, args.where)


def filter_of(args: argparse.Namespace) -> Filter | None:
    return Filter.from_json(filter_json(args))
