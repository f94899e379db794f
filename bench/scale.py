"""Scale benchmark (a section of `python -m bench`): FAISS flat vs HNSW on synthetic corpora.

Vectors are synthetic 384-d unit vectors (MiniLM's size) with structure like real embeddings:
a random rank-32 projection of Gaussian points plus isotropic noise. (Uniformly random vectors
have no neighbourhoods to find: on them HNSW reached recall 0.40 at 100k and was slower than
flat, a property of the data, not of the index.) Queries are stored vectors with a little noise
added; search latency is one query at a time. The query embedding, which every search also pays,
is measured once on real questions with MiniLM and reported beside it.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.report import percentile, table
from rag.embeddings import make_embedder
from rag.index import FaissIndex
from rag.settings import IndexType, Settings

DIMENSION = 384
RANK = 32
QUERIES = 200
RECALL_AT = 10


def _unit(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / norms, dtype=np.float32)


def synthetic(size: int, rng: np.random.Generator) -> NDArray[np.float32]:
    projection = rng.standard_normal((RANK, DIMENSION), dtype=np.float32)
    points = rng.standard_normal((size, RANK), dtype=np.float32) @ projection
    noise = rng.standard_normal((size, DIMENSION), dtype=np.float32)
    return _unit(points + 0.3 * noise)


def run(sizes: list[int], questions: list[str]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    embedder = make_embedder(Settings())
    embedder.embed(["warm up"])
    embed_ms = []
    for question in questions[:QUERIES]:
        started = time.perf_counter()
        embedder.embed([question])
        embed_ms.append(1000 * (time.perf_counter() - started))
    results: list[dict[str, Any]] = []
    for size in sizes:
        data = synthetic(size, rng)
        noise = rng.standard_normal((QUERIES, DIMENSION), dtype=np.float32)
        probes = _unit(data[rng.integers(0, size, QUERIES)] + 0.02 * noise)
        exact_rows: NDArray[np.int64] | None = None
        kinds: tuple[IndexType, ...] = ("flat", "hnsw")
        for kind in kinds:
            started = time.perf_counter()
            index = FaissIndex.build(data, DIMENSION, kind)
            build_s = time.perf_counter() - started
            path = Path(f"/tmp/rag-bench-scale-{kind}.faiss")
            index.save(path)
            size_mb = path.stat().st_size / 2**20
            path.unlink()
            latencies = []
            for probe in probes:
                started = time.perf_counter()
                index.search(probe[None, :], RECALL_AT)
                latencies.append(1000 * (time.perf_counter() - started))
            _, rows = index.search(probes, RECALL_AT)
            if kind == "flat":
                exact_rows = rows
                recall = 1.0
            else:
                assert exact_rows is not None
                recall = float(
                    np.mean(
                        [
                            len(set(a) & set(b)) / RECALL_AT
                            for a, b in zip(rows, exact_rows, strict=True)
                        ]
                    )
                )
            results.append(
                {
                    "size": size,
                    "kind": kind,
                    "build_s": build_s,
                    "index_mb": size_mb,
                    "p50_ms": statistics.median(latencies),
                    "p95_ms": percentile(latencies, 0.95),
                    "recall_at_10": recall,
                }
            )
            print(
                f"scale {size} {kind}: build {build_s:.1f} s, p50 "
                f"{results[-1]['p50_ms']:.1f} ms, recall {recall:.3f}",
                file=sys.stderr,
            )
            del index
    return {
        "rows": results,
        "queries": QUERIES,
        "embed_p50_ms": statistics.median(embed_ms),
        "embed_p95_ms": percentile(embed_ms, 0.95),
    }


def render(section: dict[str, Any]) -> str:
    embed = section["embed_p50_ms"]
    lines = [
        "## Scale: FAISS flat vs HNSW",
        "",
        "Synthetic structured 384-d unit vectors (rank-32 projection + noise; see "
        f"`bench/scale.py`), {section['queries']} queries one at a time, top 10; recall@10 "
        "of HNSW against flat (exact). HNSW: M=32, efConstruction=80, efSearch=128. Embedding "
        f"the question with MiniLM adds p50 {embed:.1f} ms / p95 {section['embed_p95_ms']:.1f} ms "
        "to every search: the last column is that plus the search.",
        "",
    ]
    rows = [
        [
            f"{row['size']:,}",
            row["kind"],
            f"{row['build_s']:.1f}",
            f"{row['index_mb']:.0f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p95_ms']:.2f}",
            f"{row['recall_at_10']:.3f}",
            f"{embed + row['p50_ms']:.1f}",
        ]
        for row in section["rows"]
    ]
    header = ["chunks", "index", "build (s)", "size (MB)", "search p50 (ms)", "search p95 (ms)"]
    lines += table([*header, "recall@10", "retrieval p50 (ms)"], "rlrrrrrr", rows)
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    print(json.dumps(run([int(a) for a in sys.argv[1:]], ["what is a test?"] * 10)))
