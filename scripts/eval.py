"""Evaluate retrieval (and answers) on a SQuAD-format file with the project's own ingestion.

    python scripts/eval.py --dataset FILE.json [--k 5] [--retrieval hybrid] [--limit N] [--json]
                           [--store faiss|pgvector] [--no-history]

Builds an index from the file (one .md document per article; `--index DIR` keeps it for the next
run, which then re-embeds nothing), asks every question, and reports recall@1/5/10/k and MRR@10.
A hit is a retrieved chunk of the right article whose character range covers a gold answer span.
A question with a `history` (squad-dev-a-followups.json) is searched with its conversation
(`--no-history`: by its last message alone), and the figures are also given per `kind`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from rag.answer import Answerer
from rag.chunks import Chunk
from rag.cli.filters import add_filter_options, filter_json
from rag.conversation import search_context
from rag.embeddings import make_embedder
from rag.errors import RagError
from rag.evaluation import (
    RECALL_KS,
    evaluate_retrieval,
    exact_match,
    sample,
    token_f1,
)
from rag.filters import Filter
from rag.ingestion import ingest
from rag.llm import make_llm
from rag.retrieval import MODES, Hit, Retriever
from rag.settings import Settings
from rag.squad import Article, Question, load_articles, write_articles
from rag.stores import make_store

CORPUS = "squad"  # the folder the articles are written to: sources are squad/<article>.md

CITATION = re.compile(r"\s*\[\d+\]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="SQuAD v1.1-format JSON")
    parser.add_argument("--k", type=int, default=5, help="recall@k to report (default 5)")
    parser.add_argument("--retrieval", choices=MODES, default="hybrid")
    parser.add_argument("--limit", type=int, default=None, help="ask only the first N questions")
    parser.add_argument("--index", type=Path, default=None, help="keep the index in DIR")
    parser.add_argument(
        "--store",
        choices=["faiss", "pgvector"],
        default=None,
        help="where the index lives (default $RAG_STORE or faiss); pgvector uses "
        "$RAG_DATABASE_URL, in a schema of its own that is dropped afterwards",
    )
    parser.add_argument("--model", default=None, help="embedding model (default: MiniLM)")
    parser.add_argument(
        "--llm",
        choices=["none", "mock", "extractive", "llamacpp", "openai"],
        default="none",
        help="also answer the questions and score exact match and token F1",
    )
    parser.add_argument(
        "--context",
        choices=["retrieved", "gold"],
        default="retrieved",
        help="what the LLM reads: retrieved sources (default) or the gold paragraph alone, "
        "the reference that shows what retrieval costs the answers",
    )
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="search a conversational question (one with a `history`, as in "
        "squad-dev-a-followups.json) by its last message alone: the baseline",
    )
    parser.add_argument(
        "--original-question",
        action="store_true",
        help="ask a conversational question as its `original_question` (the follow-up spelled "
        "out), alone: the upper bound of reading the history",
    )
    parser.add_argument(
        "--articles",
        default=None,
        metavar="FIRST-LAST",
        help="only these articles of the file, counted from 1 (e.g. 1-12 to choose a setting, "
        "13-24 to confirm it)",
    )
    parser.add_argument(
        "--kind",
        choices=["followup", "switch"],
        default=None,
        help="only the conversational questions of this kind",
    )
    parser.add_argument(
        "--own-article",
        action="store_true",
        help="search each question only within its own article (a filter on its source)",
    )
    add_filter_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.articles is not None and not re.fullmatch(r"\d+-\d+", args.articles):
        parser.error(f"--articles wants FIRST-LAST, e.g. 1-12; got {args.articles!r}")
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
        for kind, part in result.get("by_kind", {}).items():
            print(
                f"  {kind}: {part['n_questions']} questions, "
                + ", ".join(f"recall@{k} {v:.3f}" for k, v in part["recall"].items())
                + f", MRR@10 {part['mrr_at_10']:.3f}"
            )
        if "f1" in result:
            print(
                f"answers ({result['llm']}, {result['context']} context, "
                f"{result['n_answered']} questions): exact match "
                f"{result['exact_match']:.3f}, F1 {result['f1']:.3f}; first token p50 "
                f"{result['ttft_ms_p50']:.0f} ms; {result['tokens_per_s']:.1f} tokens/s"
            )
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    articles = load_articles(args.dataset)
    if args.articles is not None:
        first, last = (int(n) for n in args.articles.split("-"))
        articles = articles[first - 1 : last]
    if args.kind is not None:
        articles = [
            dataclasses.replace(a, questions=tuple(q for q in a.questions if q.kind == args.kind))
            for a in articles
        ]
    if args.original_question:
        articles = [
            dataclasses.replace(
                a,
                questions=tuple(
                    dataclasses.replace(q, text=q.original or q.text, history=())
                    for q in a.questions
                ),
            )
            for a in articles
        ]
    settings = Settings.from_env().replace(embedding_model=args.model, store=args.store)
    if settings.store == "pgvector":  # a schema of its own, dropped afterwards
        settings = settings.replace(database_schema=f"rag_eval_{os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / CORPUS
        write_articles(articles, corpus)
        settings = settings.replace(index_dir=args.index or Path(tmp) / "index")
        embedder = make_embedder(settings)
        store = make_store(settings)
        try:
            ingest(
                [corpus],
                settings,
                embedder,
                store=store,
                progress=sys.stderr.isatty() and not args.json,
            )
            index = store.open()
            return evaluate(args, settings, Retriever(index, embedder), articles)
        finally:
            drop = getattr(store, "drop_schema", None)
            if drop is not None:
                drop()


def evaluate(
    args: argparse.Namespace, settings: Settings, retriever: Retriever, articles: list[Article]
) -> dict[str, Any]:
    index = retriever.index
    settings = settings.replace(retrieval=args.retrieval)
    retriever.search("warm up", 1, mode=args.retrieval)

    given = filter_json(args)
    own = {q.id: f"{CORPUS}/{a.file_name}" for a in articles for q in a.questions}

    def search(question: Question, k: int) -> list[Hit]:
        context = None if args.no_history else search_context(question.text, question.history)
        raw = {**given, "source": own[question.id]} if args.own_article else given
        where = Filter.from_json(raw)
        return retriever.search(question.text, k, mode=args.retrieval, context=context, where=where)

    def asked_before(question: Question) -> None:  # as the conversation's earlier turns did
        if not args.no_history:
            retriever.remember([m.content for m in question.history if m.role == "user"])

    scores = evaluate_retrieval(articles, search, k=args.k, limit=args.limit, before=asked_before)
    by_kind = {
        kind: {
            "n_questions": part.n_questions,
            "recall": {str(k): part.recall(k) for k in sorted({*RECALL_KS, args.k})},
            "mrr_at_10": part.mrr_at_10,
            "latency_ms": {"p50": part.latency_ms(0.5), "p95": part.latency_ms(0.95)},
        }
        for kind, part in sorted(scores.by_kind.items())
    }
    answers = {} if args.llm == "none" else evaluate_answers(articles, retriever, settings, args)
    return {
        **answers,
        "dataset": str(args.dataset),
        "retrieval": args.retrieval,
        "n_questions": scores.n_questions,
        "n_chunks": index.manifest.n_chunks,
        "recall_at_k": scores.recall(args.k),
        "k": args.k,
        "recall": {str(k): scores.recall(k) for k in sorted({*RECALL_KS, args.k})},
        "mrr_at_10": scores.mrr_at_10,
        "latency_ms": {"p50": scores.latency_ms(0.5), "p95": scores.latency_ms(0.95)},
        **(
            {"filter": {**given, **({"source": "own article"} if args.own_article else {})}}
            if given or args.own_article
            else {}
        ),
        **({"by_kind": by_kind, "history": not args.no_history} if by_kind else {}),
    }


class GoldParagraph(Retriever):
    """Stands in for retrieval: the one source is the question's gold paragraph."""

    def __init__(self, retriever: Retriever, pairs: list[tuple[Article, Question]]) -> None:
        self.index = retriever.index
        self._gold: dict[str, Hit] = {}
        for article, question in pairs:
            start, end = question.paragraph
            chunk = Chunk(
                f"{article.file_name}#gold",
                article.file_name,
                article.title,
                0,
                start,
                end,
                article.text[start:end],
                "",
            )
            self._gold[question.text] = Hit(1, 1.0, chunk, 1.0, None)

    def search(self, query: str, k: int = 5, **_: Any) -> list[Hit]:
        return [self._gold[query]]


def evaluate_answers(
    articles: list[Any], retriever: Retriever, settings: Settings, args: argparse.Namespace
) -> dict[str, Any]:
    settings = settings.replace(llm=args.llm, retrieval=args.retrieval)
    pairs = sample(articles, args.limit)
    if args.context == "gold":
        retriever = GoldParagraph(retriever, pairs)
    answerer = Answerer(retriever, make_llm(settings), settings)
    questions = [question for _, question in pairs]
    em, f1, ttft, rates = [], [], [], []
    for question in questions:
        history = () if args.no_history else question.history
        text, _, done = answerer.answer(question.text, history=history)
        answer = CITATION.sub("", text).strip()
        em.append(exact_match(answer, question.answers))
        f1.append(token_f1(answer, question.answers))
        if done.ttft_ms is not None:
            ttft.append(done.ttft_ms)
            decode_s = (done.total_ms - done.ttft_ms) / 1000
            if done.completion_tokens > 1 and decode_s > 0:
                rates.append((done.completion_tokens - 1) / decode_s)
    return {
        "llm": args.llm,
        "context": args.context,
        "n_answered": len(questions),
        "exact_match": statistics.mean(em) if em else 0.0,
        "f1": statistics.mean(f1) if f1 else 0.0,
        "ttft_ms_p50": statistics.median(ttft) if ttft else 0.0,
        "tokens_per_s": statistics.median(rates) if rates else 0.0,
    }


if __name__ == "__main__":
    raise SystemExit(main())
