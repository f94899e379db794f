"""Retrieval quality and latency (a section of `python -m bench`): our dense, BM25 and hybrid
modes vs the default retrievers of a plain LangChain pipeline (RecursiveCharacterTextSplitter +
HuggingFaceEmbeddings + FAISS, `as_retriever()`) and of LlamaIndex (`VectorStoreIndex` with its
default SentenceSplitter, `as_retriever()`), all on the same MiniLM, over the articles of a
SQuAD file. Each retriever is asked for 10 results.

A hit is a retrieved chunk whose character range in its article covers a gold answer span of the
question (`rag.evaluation.is_hit`); the peers' chunks carry their offsets (LangChain's
`add_start_index`, LlamaIndex's `start_char_idx`), so every retriever is judged the same way.
Chunk sizes differ (each side's defaults): the table shows them, since bigger chunks make
recall easier and answers longer to read.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.ingestion import configure_llamaindex, langchain_parts
from bench.report import percentile, table
from rag.chunks import Chunk
from rag.embeddings import make_embedder
from rag.evaluation import is_hit, sample
from rag.ingestion import ingest
from rag.retrieval import Hit, Retriever
from rag.settings import Settings
from rag.squad import Article, Question, load_articles, write_articles
from rag.stores import folder as store

K = 10
Search = Callable[[str], list[Hit]]


def score(search: Search, pairs: list[tuple[Article, Question]]) -> dict[str, Any]:
    """Recall@k for k = 1..10, MRR@10 and per-query latency of one retriever."""
    search(pairs[0][1].text)  # warm up
    ranks: list[int | None] = []
    latencies: list[float] = []
    for article, question in pairs:
        started = time.perf_counter()
        hits = search(question.text)
        latencies.append(1000 * (time.perf_counter() - started))
        ranks.append(next((h.rank for h in hits if is_hit(h, article, question)), None))
    n = len(pairs)
    return {
        "recall": {
            str(k): sum(1 for r in ranks if r is not None and r <= k) / n for k in range(1, K + 1)
        },
        "mrr_at_10": sum(1 / r for r in ranks if r is not None and r <= 10) / n,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 2),
            "p95": round(percentile(latencies, 0.95), 2),
        },
    }


def as_hits(found: list[tuple[str, int, str]]) -> list[Hit]:
    """(file name, start offset, text) of a peer's results -> Hits that `is_hit` can judge."""
    return [
        Hit(rank, 0.0, Chunk(f"{name}#{start}", name, "", 0, start, start + len(text), text, ""))
        for rank, (name, start, text) in enumerate(found, start=1)
    ]


def ours(corpus: Path, folder: Path) -> tuple[dict[str, Search], dict[str, Any]]:
    settings = Settings(index_dir=folder / "index")
    embedder = make_embedder(settings)
    ingest([corpus], settings, embedder)
    index = store.load(settings.index_dir)
    retriever = Retriever(index, embedder)
    searches: dict[str, Search] = {
        f"ours, {mode}": (lambda q, m=mode: retriever.search(q, K, mode=m))  # type: ignore[misc]
        for mode in ("dense", "bm25", "hybrid")
    }
    lengths = [len(c.text) for c in index.chunks]
    return searches, {"chunks": len(lengths), "mean_chars": round(statistics.mean(lengths))}


def langchain(articles: list[Article]) -> tuple[Search, dict[str, Any]]:
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document

    embeddings, splitter = langchain_parts(add_start_index=True)
    docs = [Document(page_content=a.text, metadata={"source": a.file_name}) for a in articles]
    chunks = splitter.split_documents(docs)
    retriever = FAISS.from_documents(chunks, embeddings).as_retriever(search_kwargs={"k": K})

    def search(question: str) -> list[Hit]:
        found = retriever.invoke(question)
        return as_hits(
            [(d.metadata["source"], d.metadata["start_index"], d.page_content) for d in found]
        )

    lengths = [len(c.page_content) for c in chunks]
    return search, {"chunks": len(lengths), "mean_chars": round(statistics.mean(lengths))}


def llamaindex(articles: list[Article]) -> tuple[Search, dict[str, Any]]:
    from llama_index.core import Document, VectorStoreIndex

    configure_llamaindex()
    docs = [
        Document(text=a.text, id_=a.file_name, metadata={"file_name": a.file_name})
        for a in articles
    ]
    index = VectorStoreIndex.from_documents(docs)
    retriever = index.as_retriever(similarity_top_k=K)

    def search(question: str) -> list[Hit]:
        found = retriever.retrieve(question)
        return as_hits(
            [
                (
                    n.node.metadata["file_name"],
                    int(getattr(n.node, "start_char_idx", 0) or 0),  # TextNode's offset
                    n.node.get_content(),
                )
                for n in found
            ]
        )

    nodes = list(index.docstore.docs.values())
    lengths = [len(n.get_content()) for n in nodes]
    return search, {"chunks": len(lengths), "mean_chars": round(statistics.mean(lengths))}


def run(dataset: Path, n_articles: int | None = None, limit: int | None = None) -> dict[str, Any]:
    articles = load_articles(dataset)[:n_articles]
    pairs = sample(articles, limit)
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "squad"
        write_articles(articles, corpus)
        searches, shape = ours(corpus, Path(tmp))
        for name, search in searches.items():
            rows[name] = {**score(search, pairs), **shape}
    peers: list[tuple[str, Callable[[list[Article]], tuple[Search, dict[str, Any]]]]] = [
        ("LangChain, FAISS as_retriever()", langchain),
        ("LlamaIndex, VectorStoreIndex as_retriever()", llamaindex),
    ]
    for name, build in peers:
        try:
            search, shape = build(articles)
        except Exception as err:  # a peer that cannot run here is reported, not dropped
            rows[name] = {"error": f"{type(err).__name__}: {err}"[:300]}
            continue
        rows[name] = {**score(search, pairs), **shape}
    return {"questions": len(pairs), "articles": len(articles), "k": K, "rows": rows}


def render(r: dict[str, Any]) -> str:
    lines = [
        "## Retrieval quality and latency",
        "",
        f"{r['questions']:,} questions over {r['articles']} articles of squad-dev-a, k = 1 to "
        f"{r['k']}; a hit is a "
        "retrieved chunk covering a gold answer span. Each side with its default chunking "
        "(sizes shown: larger chunks make recall easier and sources longer to read). Latency "
        "per query includes embedding the question. See `recall_at_k.png`.",
        "",
    ]
    rows: list[list[object]] = []
    for name, row in r["rows"].items():
        if "error" in row:
            rows.append([name, f"could not run here: {row['error']}", *[""] * 7])
            continue
        recall = row["recall"]
        rows.append(
            [
                name,
                f"{row['chunks']:,}",
                f"{row['mean_chars']:,}",
                *(f"{recall[k]:.3f}" for k in ("1", "5", "10")),
                f"{row['mrr_at_10']:.3f}",
                row["latency_ms"]["p50"],
                row["latency_ms"]["p95"],
            ]
        )
    header = ["retriever", "chunks", "mean chars", "recall@1", "recall@5", "recall@10"]
    lines += table([*header, "MRR@10", "p50 ms", "p95 ms"], "lrrrrrrrr", rows)
    return "\n".join(lines) + "\n"
