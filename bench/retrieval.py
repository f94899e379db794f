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

"Before" is this project at `BEFORE`, the last commit before sentence-level scoring, checked
out beside this one (`bench.baseline`) and run in the same session: its own ingest and its own
`scripts/eval.py` on its own index. The two ingests alternate, each into a new index, for the
time ratio and the index sizes.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.baseline import checkout, environment
from bench.baseline import ingest as ingest_with
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
BEFORE = "1e814da"  # whole-chunk vectors, BM25 k1 1.5, no sentence proximity
MODES = ("dense", "bm25", "hybrid")
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
        for mode in MODES
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


def before(
    dataset: Path, corpus: Path, folder: Path, n_articles: int | None, limit: int | None
) -> dict[str, Any]:
    """`BEFORE`'s rows (its eval on its index) and both ingests' times and index sizes."""
    rounds = 1 if limit else 2
    with checkout(BEFORE, folder) as code:
        if code is None:
            return {"error": f"git could not check out {BEFORE} here"}
        seconds: dict[str, list[float]] = {"before": [], "now": []}
        size_mb: dict[str, float] = {}
        for number in range(rounds):
            order = [("before", code), ("now", None)]
            for name, where in order if number % 2 == 0 else order[::-1]:
                index = folder / f"{name}-{number}"
                seconds[name].append(float(ingest_with(corpus, index, code=where)["seconds"]))  # type: ignore[arg-type]
                size_mb[name] = round(index_mb(index), 2)
        rows = {}
        for mode in MODES:  # the first builds the index of its own articles, the others reuse it
            rows[f"before ({BEFORE}), {mode}"] = their_eval(
                code, dataset, folder / "before-eval", mode, n_articles, limit
            )
    ingest = {name: round(statistics.median(values), 2) for name, values in seconds.items()}
    return {"rows": rows, "ingest_s": ingest, "ingest_rounds": rounds, "index_mb": size_mb}


def their_eval(
    code: Path, dataset: Path, index: Path, mode: str, n_articles: int | None, limit: int | None
) -> dict[str, Any]:
    """`BEFORE`'s own scripts/eval.py, on its own index: recall@1/5/10, MRR@10, latency."""
    command = [sys.executable, "scripts/eval.py", "--dataset", str(dataset), "--index", str(index)]
    command += ["--retrieval", mode, "--json"]
    command += ["--articles", f"1-{n_articles}"] if n_articles else []
    command += ["--limit", str(limit)] if limit else []
    done = subprocess.run(
        command, cwd=code, env=environment(code), check=True, capture_output=True, text=True
    )
    got = json.loads(done.stdout)
    return {
        "recall": got["recall"],
        "mrr_at_10": got["mrr_at_10"],
        "latency_ms": {k: round(v, 2) for k, v in got["latency_ms"].items()},
        "chunks": got["n_chunks"],
    }


def index_mb(index: Path) -> float:
    """The live version's files (vectors, chunks, BM25, sentences), in MB."""
    version = index / (index / "CURRENT").read_text().strip()
    return sum(p.stat().st_size for p in version.rglob("*") if p.is_file()) / 1e6


def run(dataset: Path, n_articles: int | None = None, limit: int | None = None) -> dict[str, Any]:
    articles = load_articles(dataset)[:n_articles]
    pairs = sample(articles, limit)
    rows: dict[str, Any] = {}
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "squad"
        write_articles(articles, corpus)
        searches, shape = ours(corpus, Path(tmp))
        for name, search in searches.items():
            rows[name] = {**score(search, pairs), **shape}
        then = before(dataset, corpus, Path(tmp), n_articles, limit)
        for name, row in then.pop("rows", {}).items():
            rows[name] = {**row, "mean_chars": shape["mean_chars"]}
        result["before"] = {"commit": BEFORE, **then}
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
    return {"questions": len(pairs), "articles": len(articles), "k": K, "rows": rows, **result}


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
    then = r.get("before", {})
    if "ingest_s" in then:
        s, mb = then["ingest_s"], then["index_mb"]
        lines += [
            "",
            f"Ingest of the same articles, `rag ingest` in its own process, median of "
            f"{then['ingest_rounds']} alternating rounds: before ({then['commit']}) "
            f"{s['before']:.1f} s, now {s['now']:.1f} s (x{s['now'] / s['before']:.2f}); "
            f"index {mb['before']:.1f} MB before, {mb['now']:.1f} MB now (sentence vectors).",
        ]
    elif "error" in then:
        lines += ["", f"Before ({then.get('commit', BEFORE)}): could not run here: {then['error']}"]
    return "\n".join(lines) + "\n"
