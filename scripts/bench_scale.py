"""Scale benchmark (a section of scripts/bench.py): FAISS flat vs HNSW on synthetic corpora.

Vectors are random unit vectors (384-d, like MiniLM); queries are real questions embedded with
MiniLM (so the query side costs what it costs in use) plus, for measuring the approximate index's
recall against exact search, stored vectors with noise added (random queries against random
data have no meaningful neighbours). Latency is one query at a time: query embedding + search.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.embeddings import make_embedder  # noqa: E402
from rag.index import FaissIndex  # noqa: E402
from rag.settings import IndexType, Settings  # noqa: E402

DIMENSION = 384
QUERIES = 200
RECALL_AT = 10


def _unit(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / norms, dtype=np.float32)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(sizes: list[int], questions: list[str]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    embedder = make_embedder(Settings())
    embedder.embed(["warm up"])
    results: list[dict[str, Any]] = []
    for size in sizes:
        data = _unit(rng.standard_normal((size, DIMENSION), dtype=np.float32))
        probes = _unit(
            data[rng.integers(0, size, QUERIES)]
            + 0.05 * rng.standard_normal((QUERIES, DIMENSION), dtype=np.float32)
        )
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
            for question in questions[:QUERIES]:
                started = time.perf_counter()
                index.search(embedder.embed([question]), 5)
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
                    "p95_ms": _quantile(latencies, 0.95),
                    "recall_at_10": recall,
                }
            )
            print(
                f"scale {size} {kind}: build {build_s:.1f} s, p50 "
                f"{results[-1]['p50_ms']:.1f} ms, recall {recall:.3f}",
                file=sys.stderr,
            )
            del index
    return {"rows": results, "queries": min(QUERIES, len(questions))}


def render(section: dict[str, Any]) -> str:
    lines = [
        "## Scale: FAISS flat vs HNSW",
        "",
        "Random unit vectors (384-d); latency = MiniLM embedding of a real question + search, one "
        f"query at a time, {section['queries']} questions; recall@10 of HNSW against flat on "
        "stored vectors with noise added. HNSW: M=32, efConstruction=80, efSearch=128.",
        "",
        "| chunks | index | build (s) | size (MB) | query p50 (ms) | query p95 (ms) | recall@10 |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in section["rows"]:
        lines.append(
            f"| {row['size']:,} | {row['kind']} | {row['build_s']:.1f} | {row['index_mb']:.0f} | "
            f"{row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['recall_at_10']:.3f} |"
        )
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    print(json.dumps(run([int(a) for a in sys.argv[1:]], ["what is a test?"] * 10)))
