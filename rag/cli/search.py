"""`rag search QUESTION`: retrieval only, the best chunks with their scores."""

from __future__ import annotations

import argparse
import json

from rag.cli.filters import add_filter_options, filter_of
from rag.cli.status import EXIT_OK
from rag.embeddings import make_embedder
from rag.filters import describe
from rag.retrieval import MODES, Retriever
from rag.settings import Settings
from rag.stores import make_store


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    machine: argparse.ArgumentParser,
) -> None:
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
    add_filter_options(search)
    search.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    where = filter_of(args)
    retriever = Retriever(make_store(settings).open(), make_embedder(settings))
    hits = retriever.search(
        args.question,
        k=args.k,
        mode=args.retrieval,
        min_score=args.min_score,
        mmr_lambda=args.mmr,
        where=where,
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
    if not hits and where is not None:
        print(f"no chunk matches among the documents where {describe(where)}")
    elif not hits:
        print("no chunk matches" if retriever.index.manifest.n_chunks else "the index is empty")
    return EXIT_OK


def _snippet(text: str, width: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
