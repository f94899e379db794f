"""What a filter costs on the pgvector store (part of the `filters` section): synthetic chunks
(bench/scale.py's vectors) written into the store's own tables in 100 documents, in three
collections holding 1%, 49% and 50% of the chunks; then the store's own candidates query
(`PostgresCorpus.candidates`, the dense side; the sentence side is the same query over its own
table and is left empty here), one question at a time, with no filter and with a collection
filter admitting 1% and 50% of the chunks, as the store plans it for this server's pgvector
(the selective one exactly; the broad one by the iterative scan from 0.8 on). On a pgvector of
0.8 or later, the filters again as the store plans them for an older one (the graph walked
further for the broad one), and the broad one searched exactly. Recall@10 of the 10 nearest it
returns against the exact nearest among the admitted rows.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from pgvector.psycopg import register_vector

from bench.filters import _exact
from bench.report import percentile
from bench.scale import DIMENSION, QUERIES, RECALL_AT, _unit, synthetic
from rag.corpus import CandidateQuery, IndexInfo
from rag.filters import Filter
from rag.settings import Settings
from rag.stores.pgvector import PostgresCorpus, PostgresStore
from rag.stores.pgvector_plan import EXACT, Planner, iterative_scan, plan
from rag.stores.pgvector_sql import hnsw_index, reset

DOCUMENTS = 100
# (label, collections admitted, how: the store's plan, the plan before pgvector 0.8, exact)
FILTERS = (
    ("none", None, "store"),
    ("1%", ["one"], "store"),
    ("50%", ["half"], "store"),
    ("1%, as before 0.8", ["one"], "before 0.8"),
    ("50%, as before 0.8", ["half"], "before 0.8"),
    ("50%, exact", ["half"], "exact"),
)


def planner(how: str) -> Planner:
    if how == "exact":
        return lambda *_: EXACT
    if how == "before 0.8":
        return lambda admitted, total, pool, _iterative: plan(admitted, total, pool, False)
    return plan


POOL = 50  # retrieval's pool for k <= 12


def collection(document: int) -> str:
    """Document 0 is 1% of the chunks, 50 documents 50%, the other 49 the rest."""
    return "one" if document == 0 else "half" if document <= 50 else "rest"


def load(store: PostgresStore, data: NDArray[np.float32]) -> float:
    """The chunks into the store's tables; seconds to build the HNSW index over them."""
    per = len(data) // DOCUMENTS
    with store.connect() as conn:
        register_vector(conn)
        info = IndexInfo("synthetic", DIMENSION, 0, 0, "hnsw", {}, 0, sentence_vectors=True)
        with conn.transaction():
            reset(conn, info)
        conn.execute(f"DROP INDEX rag_chunks_hnsw_{DIMENSION}")  # built once, after the rows
        with conn.transaction():
            for document in range(DOCUMENTS):
                conn.execute(
                    "INSERT INTO rag_files (source, path, root, from_folder, sha256, size, "
                    "title, n_chunks, collection) VALUES (%s, '', '', true, '', 0, '', %s, %s)",
                    [f"doc{document}", per, collection(document)],
                )
            with conn.cursor() as cursor:
                copy_sql = (
                    "COPY rag_chunks (source, chunk_no, title, start_char, end_char, text, "
                    "sha256, embedding) FROM STDIN WITH (FORMAT BINARY)"
                )
                with cursor.copy(copy_sql) as copy:
                    copy.set_types(
                        ["text", "int4", "text", "int4", "int4", "text", "text", "vector"]
                    )
                    for row, vector in enumerate(data[: per * DOCUMENTS]):
                        copy.write_row((f"doc{row // per}", row % per, "", 0, 0, "", "", vector))
            conn.execute("UPDATE rag_totals SET n_chunks = %s", [per * DOCUMENTS])
        conn.execute("SET maintenance_work_mem = '4GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")  # 2 cores: leader + 1
        started = time.perf_counter()
        conn.execute(hnsw_index("rag_chunks", DIMENSION))
        build_s = time.perf_counter() - started
        conn.execute("ANALYZE")
    return build_s


def measure(url: str, sizes: list[int]) -> tuple[str, list[dict[str, Any]]]:
    """(pgvector's version, a row per size and filter)."""
    rng = np.random.default_rng(2)
    out: list[dict[str, Any]] = []
    settings = Settings(store="pgvector", database_url=url, database_schema="bench_filters")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    version = str(row[0]) if row else "?"
    for size in sizes:
        data = synthetic(size, rng)
        per = size // DOCUMENTS
        noise = rng.standard_normal((QUERIES, DIMENSION), dtype=np.float32)
        probes = _unit(data[rng.integers(0, size, QUERIES)] + 0.02 * noise)
        store = PostgresStore(settings)
        try:
            build_s = load(store, data)
            corpus = store.open()
            assert isinstance(corpus, PostgresCorpus)
            documents = np.arange(per * DOCUMENTS) // per
            for label, names, how in FILTERS:
                if how == "before 0.8" and not iterative_scan(version):
                    continue  # the store's own plan is that one
                corpus.plan = planner(how)
                where = None if names is None else Filter.from_json({"collection": names})
                allowed = (
                    None
                    if names is None
                    else np.isin([collection(d) for d in range(DOCUMENTS)], names)[documents]
                )
                times, found = [], []
                for probe in probes:
                    query = CandidateQuery("", probe, POOL, lexical=False, filter=where)
                    started = time.perf_counter()
                    candidates = corpus.candidates(query)
                    times.append(1000 * (time.perf_counter() - started))
                    best = sorted(candidates.dense, key=candidates.dense.__getitem__)[::-1]
                    chunks = [candidates.chunks[key] for key in best[:RECALL_AT]]
                    found.append([int(c.source[3:]) * per + c.chunk_no for c in chunks])
                exact = _exact(data[: per * DOCUMENTS], probes, allowed)
                pairs = zip(found, exact, strict=True)
                hits = [len(set(a) & set(b.tolist())) / RECALL_AT for a, b in pairs]
                out.append(
                    {
                        "store": "pgvector",
                        "size": per * DOCUMENTS,
                        "kind": "hnsw",
                        "filter": label,
                        "p50_ms": round(percentile(times, 0.5), 3),
                        "p95_ms": round(percentile(times, 0.95), 3),
                        "recall_at_10": round(float(np.mean(hits)), 4),
                        "always_10": all(len(f) == RECALL_AT for f in found),
                        "build_s": round(build_s, 1),
                    }
                )
        finally:
            store.drop_schema()
    return version, out
