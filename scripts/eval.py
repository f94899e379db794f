"""Evaluate retrieval (and answers) on a SQuAD-format file with the project's own ingestion.

    python scripts/eval.py --dataset FILE.json [--k 5] [--retrieval hybrid] [--limit N] [--json]

Builds an index from the file (one .md document per article; `--index DIR` keeps it for the next
run, which then re-embeds nothing), asks every question, and reports recall@1/5/10/k and MRR@10.
A hit is a retrieved chunk of the right article whose character range covers a gold answer span.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag import store  # noqa: E402
from rag.embeddings import make_embedder  # noqa: E402
from rag.errors import RagError  # noqa: E402
from rag.evaluation import RECALL_KS, evaluate_retrieval  # noqa: E402
from rag.ingestion import ingest  # noqa: E402
from rag.retrieval import MODES, Retriever  # noqa: E402
from rag.settings import Settings  # noqa: E402
from rag.squad import load_articles, write_articles  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="SQuAD v1.1-format JSON")
    parser.add_argument("--k", type=int, default=5, help="recall@k to report (default 5)")
    parser.add_argument("--retrieval", choices=MODES, default="hybrid")
    parser.add_argument("--limit", type=int, default=None, help="ask only the first N questions")
    parser.add_argument("--index", type=Path, default=None, help="keep the index in DIR")
    parser.add_argument("--model", default=None, help="embedding model (default: MiniLM)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not args.dataset.is_file():
        parser.error(f"no such dataset file: {args.dataset}")
    try:
        result = run(args)
    except RagError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(
            f"{result['n_questions']} questions, {result['retrieval']} retrieval, "
            f"{result['n_chunks']} chunks: "
            + ", ".join(f"recall@{k} {v:.3f}" for k, v in result["recall"].items())
            + f", MRR@10 {result['mrr_at_10']:.3f}; latency p50 {result['latency_ms']['p50']:.1f}"
            f" ms, p95 {result['latency_ms']['p95']:.1f} ms"
        )
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    articles = load_articles(args.dataset)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "squad"
        write_articles(articles, corpus)
        settings = Settings.from_env().replace(
            index_dir=args.index or Path(tmp) / "index", embedding_model=args.model
        )
        embedder = make_embedder(settings)
        ingest([corpus], settings, embedder, progress=sys.stderr.isatty() and not args.json)
        index = store.load(settings.index_dir)
    retriever = Retriever(index, embedder)
    retriever.search("warm up", 1, mode=args.retrieval)

    def search(question: str, k: int) -> list[Any]:
        return retriever.search(question, k, mode=args.retrieval)

    scores = evaluate_retrieval(articles, search, k=args.k, limit=args.limit)
    return {
        "dataset": str(args.dataset),
        "retrieval": args.retrieval,
        "n_questions": scores.n_questions,
        "n_chunks": index.manifest.n_chunks,
        "recall_at_k": scores.recall(args.k),
        "k": args.k,
        "recall": {str(k): scores.recall(k) for k in sorted({*RECALL_KS, args.k})},
        "mrr_at_10": scores.mrr_at_10,
        "latency_ms": {"p50": scores.latency_ms(0.5), "p95": scores.latency_ms(0.95)},
    }


if __name__ == "__main__":
    raise SystemExit(main())
