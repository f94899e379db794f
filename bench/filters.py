"""What a filter costs (a section of `python -m bench`): vector search over synthetic corpora
(bench/scale.py's vectors) with no filter, a selective one (1% of the rows admitted) and a broad
one (50%), one query at a time, flat and HNSW; each filtered search's recall@10 against the
exact answer over the admitted rows. The filter is applied inside the search (an ID selector;
exactly over the admitted rows for a selective HNSW filter), never by dropping hits afterwards,
so every filtered search must return 10 hits.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.report import percentile, table
from bench.scale import DIMENSION, QUERIES, RECALL_AT, _unit, synthetic
from rag.index import FaissIndex
from rag.settings import IndexType

SHARES = {"none": None, "1%": 0.01, "50%": 0.5}


def _timed(
    index: FaissIndex, probes: NDArray[np.float32], allowed: NDArray[np.bool_] | None
) -> tuple[list[float], NDArray[np.int64]]:
    index.search(probes[:1], RECALL_AT, allowed)  # warm
    times, found = [], []
    for probe in probes:
        started = time.perf_counter()
        _, rows = index.search(probe[None, :], RECALL_AT, allowed)
        times.append(1000 * (time.perf_counter() - started))
        found.append(rows[0])
    return times, np.array(found)


def _exact(
    data: NDArray[np.float32], probes: NDArray[np.float32], allowed: NDArray[np.bool_] | None
) -> NDArray[np.int64]:
    """The true 10 nearest admitted rows of each probe (20 probes at a time: bounded memory)."""
    admitted = np.arange(len(data)) if allowed is None else np.flatnonzero(allowed)
    vectors, best = data[admitted], []
    for start in range(0, len(probes), 20):
        scores = probes[start : start + 20] @ vectors.T
        top = np.argpartition(-scores, RECALL_AT, axis=1)[:, :RECALL_AT]
        best.append(admitted[top])
    return np.concatenate(best)


def run(sizes: list[tuple[int, IndexType]]) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    rows_out: list[dict[str, Any]] = []
    for size, kind in sizes:
        data = synthetic(size, rng)
        noise = rng.standard_normal((QUERIES, DIMENSION), dtype=np.float32)
        probes = _unit(data[rng.integers(0, size, QUERIES)] + 0.02 * noise)
        started = time.perf_counter()
        index = FaissIndex.build(data, DIMENSION, kind)
        build_s = time.perf_counter() - started
        for label, share in SHARES.items():
            allowed = None if share is None else rng.random(size) < share
            times, found = _timed(index, probes, allowed)
            exact = _exact(data, probes, allowed)
            pairs = zip(found, exact, strict=True)
            recall = np.mean([len(set(a) & set(b)) / RECALL_AT for a, b in pairs])
            full = bool(np.all(found >= 0)) and found.shape[1] == RECALL_AT
            rows_out.append(
                {
                    "store": "faiss",
                    "size": size,
                    "kind": kind,
                    "filter": label,
                    "p50_ms": round(percentile(times, 0.5), 3),
                    "p95_ms": round(percentile(times, 0.95), 3),
                    "recall_at_10": round(float(recall), 4),
                    "always_10": full,
                    "build_s": round(build_s, 1),
                }
            )
        del index, data
    return {"queries": QUERIES, "rows": rows_out}


def render(r: dict[str, Any]) -> str:
    rows = [
        [
            row.get("store", "faiss"),
            f"{row['size']:,}",
            row["kind"],
            row["filter"],
            f"{row['p50_ms']:.2f}",
            f"{row['p95_ms']:.2f}",
            f"{row['recall_at_10']:.3f}",
            "yes" if row["always_10"] else "**no**",
        ]
        for row in r["rows"]
    ]
    header = [
        "store",
        "chunks",
        "index",
        "filter admits",
        "p50 ms",
        "p95 ms",
        "recall@10",
        "10 hits",
    ]
    return "\n".join(
        [
            "## Filters: what a filter costs",
            "",
            f"Vector search only (BM25 and the sentence side use the same mask), {r['queries']} "
            "queries one at a time on synthetic 384-d vectors (bench/scale.py's); recall@10 "
            "against the exact nearest among the admitted rows. A selective HNSW filter (under "
            "5% admitted) is searched exactly over the admitted rows. pgvector "
            f"{r.get('pgvector', '')}: the store's own query (bench/filters_pgvector.py) over "
            "chunks in 100 documents, a collection filter. The store searches a selective filter "
            "(under a fifth admitted) exactly on any pgvector; a broad one walks the graph, from "
            "pgvector 0.8 on until enough rows are admitted (iterative scan), for an older "
            "pgvector (rows *as before 0.8*, planned so on the same server) with ef_search "
            "raised (up to 1,000) (rag/stores/pgvector_plan.py); *exact*: every admitted row "
            "compared.",
            "",
            *table(header, "lllrrrrl", rows),
            "",
        ]
    )
