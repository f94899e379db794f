"""The SQL of the pgvector store: the tables and their migrations, BM25 over PostgreSQL's
full-text parsing, one question's candidates in one statement, and the writes of one file
(its chunks and BM25's word counts in the caller's transaction)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from rag.catalog import FileEntry
from rag.chunks import Chunk
from rag.corpus import IndexInfo
from rag.errors import IndexLocked
from rag.lexical import K1, B
from rag.stores.pgvector_plan import EF_SEARCH

if TYPE_CHECKING:
    from rag.filters import Filter

# an advisory lock (database-wide, hence named by schema): one ingest at a time
INGEST_LOCK = "rag ingest"
LOCK_WAIT_S = 60.0
CONNECT_TIMEOUT_S = 3
POOL_TIMEOUT_S = 5.0
COPY_CHUNKS = (
    "COPY rag_chunks (source, chunk_no, title, start_char, end_char, text, sha256, embedding) "
    "FROM STDIN"
)
COPY_SENTENCES = "COPY rag_sentences (chunk_id, number, embedding) FROM STDIN"


# BM25 (Lucene's formula, k1 and b as rag/lexical.py's) over PostgreSQL's own parsing and
# stemming: the question's words with their IDF from rag_words, the chunks holding any of them
# (GIN), and each chunk's score from its term frequencies (its tsvector's positions) and length.
LEXICAL = sql.SQL(
    """words AS MATERIALIZED (
        SELECT w.word, ln(1 + (t.n_chunks - w.n_chunks + 0.5) / (w.n_chunks + 0.5)) AS idf
        FROM rag_words w, rag_totals t
        WHERE w.word = ANY (tsvector_to_array(to_tsvector('english', %(query)s)))
            AND w.n_chunks > 0
    ),
    matched AS (
        SELECT c.id, c.tsv, c.n_words FROM rag_chunks c
        WHERE c.tsv @@ (SELECT string_agg(quote_literal(word), ' | ')::tsquery FROM words)
            AND {only}
    ),
    lexical AS (
        SELECT m.id, sum(w.idf * f.tf / (f.tf + {k1} * (1 - {b} + {b} * m.n_words / t.average)))
            AS rank
        FROM matched m
        CROSS JOIN LATERAL (
            SELECT lexeme, coalesce(array_length(positions, 1), 1) AS tf FROM unnest(m.tsv)
        ) f
        JOIN words w ON w.word = f.lexeme
        CROSS JOIN (
            SELECT greatest(n_words::float8 / greatest(n_chunks, 1), 1) AS average
            FROM rag_totals
        ) t
        GROUP BY m.id ORDER BY rank DESC LIMIT %(pool)s
    )"""
)


FILE_FIELDS = tuple(f.name for f in dataclasses.fields(FileEntry))
FILE_COLUMNS = ", ".join(FILE_FIELDS)  # rag_files' columns after source, in FileEntry's order


def file_row(entry: FileEntry) -> list[Any]:
    """`entry`'s values for FILE_COLUMNS (tags as JSON)."""
    return [Jsonb(entry.tags) if name == "tags" else getattr(entry, name) for name in FILE_FIELDS]


def files_where(admitted: Filter, params: dict[str, Any]) -> sql.Composable:
    """`admitted` as a condition on rag_files `f` (adding its values to `params`): the same
    test as `Filter.admits` (a missing tag is NULL: no match)."""
    conditions: list[sql.Composable] = []

    def value(of: Any) -> sql.Placeholder:
        name = f"f{len(params)}"
        params[name] = of
        return sql.Placeholder(name)

    for name, allowed in admitted.equals:
        column = (
            sql.SQL("f.tags ->> {}").format(value(name[4:]))
            if name.startswith("tag.")
            else sql.SQL("f.{}").format(sql.Identifier(name))
        )
        conditions.append(sql.SQL("{} = ANY({})").format(column, value(sorted(allowed))))
    if admitted.prefix is not None:
        conditions.append(sql.SQL("starts_with(f.source, {})").format(value(admitted.prefix)))
    if admitted.modified_from is not None:
        conditions.append(sql.SQL("f.modified >= {}").format(value(admitted.modified_from)))
    if admitted.modified_to is not None:
        conditions.append(sql.SQL("f.modified < {}").format(value(admitted.modified_to)))
    return sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true")


def filter_sql(where: sql.Composable) -> sql.Composable:
    """A chunk's `source` among the files `where` (a `files_where` condition) admits."""
    return sql.SQL("source IN (SELECT f.source FROM rag_files f WHERE {})").format(where)


def admitted_chunks(
    conn: psycopg.Connection[Any], where: sql.Composable, params: dict[str, Any]
) -> tuple[int, int]:
    """(chunks of the files `where` admits, all chunks), from the files' counts."""
    row = conn.execute(
        sql.SQL(
            "SELECT coalesce(sum(f.n_chunks), 0), (SELECT n_chunks FROM rag_totals) "
            "FROM rag_files f WHERE {}"
        ).format(where),
        params,
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _dense_sql(distance: sql.Composable, admitted: sql.Composable | None) -> sql.Composed:
    """The dense side: the `pool` nearest chunks, and the chunks of the `2 x pool` nearest
    sentences, among the admitted ones."""
    only = sql.SQL("true") if admitted is None else admitted
    sentences = (
        sql.SQL("true")
        if admitted is None
        else sql.SQL("chunk_id IN (SELECT id FROM rag_chunks WHERE {})").format(admitted)
    )
    return sql.SQL(
        "dense AS (SELECT id, 1 - ({d}) AS cosine FROM rag_chunks WHERE {only} "
        "ORDER BY {d} LIMIT %(pool)s), "
        "near AS (SELECT DISTINCT chunk_id AS id FROM (SELECT chunk_id FROM rag_sentences "
        "WHERE {sentences} ORDER BY {d} LIMIT 2 * %(pool)s) n)"
    ).format(d=distance, only=only, sentences=sentences)


def candidates_sql(
    dimension: int,
    dense: bool,
    lexical: bool,
    cosine: bool,
    with_vectors: bool,
    admitted: sql.Composable | None = None,
) -> sql.Composed:
    """One statement for one question: the `pool` nearest chunks and the chunks of the
    `2 x pool` nearest sentences (HNSW), the `pool` best full-text matches (GIN; any word of the
    question, stemmed, ranked by BM25), and for their union the chunk, its cosine and its best
    sentence's, and optionally the stored vector; every side only among the chunks `admitted`
    (a `filter_sql` condition) when given."""
    cast = sql.SQL("::vector({})").format(sql.Literal(dimension))
    distance = sql.SQL("embedding{cast} <=> %(vector)s{cast}").format(cast=cast)
    only = sql.SQL("true") if admitted is None else admitted
    parts: list[sql.Composable] = []
    union: list[str] = []
    if dense:
        parts.append(_dense_sql(distance, admitted))
        union.append("SELECT id FROM dense UNION SELECT id FROM near")
    if lexical:
        parts.append(LEXICAL.format(k1=sql.Literal(K1), b=sql.Literal(B), only=only))
        union.append("SELECT id FROM lexical")
    near: sql.Composable = sql.SQL("NULL::float8")
    if dense:
        near = sql.SQL("CASE WHEN near.id IS NOT NULL THEN 1 - (c.{d}) ELSE dense.cosine END")
        near = near.format(d=distance)
    rank = sql.SQL("lexical.rank") if lexical else sql.SQL("NULL::float8")
    cos = sql.SQL("1 - (c.{d})").format(d=distance) if cosine else sql.SQL("NULL::float8")
    best: sql.Composable = sql.SQL("NULL::float8")
    if cosine:
        best = sql.SQL(
            "(SELECT max(1 - (s.{d})) FROM rag_sentences s WHERE s.chunk_id = c.id)"
        ).format(d=distance)
    extra = sql.SQL(", c.embedding") if with_vectors else sql.SQL("")
    joins = sql.SQL("").join(
        sql.SQL(f" LEFT JOIN {side} ON {side}.id = c.id")
        for side, asked in (("dense", dense), ("near", dense), ("lexical", lexical))
        if asked
    )
    return sql.SQL(
        "WITH {parts} SELECT c.id, {near}, {rank}, {cos}, {best}, c.source, c.chunk_no, "
        "c.title, "
        "c.start_char, c.end_char, c.text, c.sha256, "
        "(SELECT f.collection FROM rag_files f WHERE f.source = c.source){extra} "
        "FROM rag_chunks c{joins} "
        "WHERE c.id IN ({union})"
    ).format(
        parts=sql.SQL(", ").join(parts),
        near=near,
        rank=rank,
        cos=cos,
        best=best,
        extra=extra,
        joins=joins,
        union=sql.SQL(" UNION ".join(union)),
    )


@contextlib.contextmanager
def writer_lock(conn: psycopg.Connection[Any], schema: str) -> Iterator[None]:
    """One ingest at a time across processes and machines; waits up to `LOCK_WAIT_S`."""
    name = f"{INGEST_LOCK} {schema}"
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [name]).fetchone()
        if row and row[0]:
            break
        if time.monotonic() > deadline:
            raise IndexLocked(f"another ingest has been writing for over {LOCK_WAIT_S:.0f} s")
        time.sleep(0.2)
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [name])


def read_epoch(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT value FROM rag_meta WHERE key = 'epoch'").fetchone()
    return None if row is None else str(row[0])


def read_manifest(conn: psycopg.Connection[Any]) -> IndexInfo | None:
    meta = dict(conn.execute("SELECT key, value FROM rag_meta").fetchall())
    if "epoch" not in meta:
        return None
    files = {
        row[0]: FileEntry(*row[1:])  # FileEntry's fields, in order, after the source
        for row in conn.execute(
            f"SELECT source, {FILE_COLUMNS} FROM rag_files ORDER BY source"
        ).fetchall()
    }
    return IndexInfo(
        embedding_model=meta["embedding_model"],
        dimension=int(meta["dimension"]),
        chunk_size_tokens=int(meta["chunk_size_tokens"]),
        chunk_overlap_tokens=int(meta["chunk_overlap_tokens"]),
        index_type="hnsw",
        files=files,
        n_chunks=sum(entry.n_chunks for entry in files.values()),
        sentence_vectors=meta.get("sentence_vectors") == "1",
    )


def hnsw_index(table: str, dimension: int) -> sql.Composed:
    """The statement making `table`'s HNSW index (cosine) for vectors of `dimension`."""
    return sql.SQL(
        "CREATE INDEX {name} ON {table} USING hnsw ((embedding::vector({dim})) vector_cosine_ops)"
    ).format(
        name=sql.Identifier(f"{table}_hnsw_{dimension}"),
        table=sql.Identifier(table),
        dim=sql.Literal(dimension),
    )


def reset(conn: psycopg.Connection[Any], info: IndexInfo) -> None:
    """Empty the tables for a new embedding model or chunking; the HNSW index is made for the
    model's dimension (inside the caller's transaction: readers see the old or the new)."""
    conn.execute("TRUNCATE rag_files, rag_chunks, rag_sentences, rag_words")
    conn.execute("UPDATE rag_totals SET n_chunks = 0, n_words = 0")
    for table in ("rag_chunks", "rag_sentences"):
        for (name,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = %s AND indexname LIKE %s",
            [table, f"{table}_hnsw_%"],
        ).fetchall():
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        conn.execute(hnsw_index(table, info.dimension))
    meta = {
        "sentence_vectors": "1" if info.sentence_vectors else "0",
        "embedding_model": info.embedding_model,
        "dimension": str(info.dimension),
        "chunk_size_tokens": str(info.chunk_size_tokens),
        "chunk_overlap_tokens": str(info.chunk_overlap_tokens),
        "epoch": f"pg-{time.time_ns()}",
    }
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO rag_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(meta.items()),
        )


def count_file(conn: psycopg.Connection[Any], source: str, sign: int) -> None:
    """Add (+1) or withdraw (-1) a file's chunks from BM25's statistics; in the transaction
    that inserts (after) or deletes (before) them."""
    params = {"source": source, "sign": sign}
    conn.execute(
        "INSERT INTO rag_words (word, n_chunks) "
        "SELECT word, %(sign)s * count(*) FROM rag_chunks, unnest(tsvector_to_array(tsv)) AS word "
        "WHERE source = %(source)s GROUP BY word "
        "ON CONFLICT (word) DO UPDATE SET n_chunks = rag_words.n_chunks + excluded.n_chunks",
        params,
    )
    conn.execute(
        "UPDATE rag_totals SET n_chunks = rag_totals.n_chunks + %(sign)s * f.n_chunks, "
        "n_words = rag_totals.n_words + %(sign)s * f.n_words FROM (SELECT count(*) AS n_chunks, "
        "coalesce(sum(n_words), 0) AS n_words FROM rag_chunks WHERE source = %(source)s) f",
        params,
    )


def delete_file(conn: psycopg.Connection[Any], source: str) -> None:
    """A file and its chunks out of the index (call inside a transaction)."""
    count_file(conn, source, -1)
    conn.execute("DELETE FROM rag_files WHERE source = %s", [source])


def replace_file(
    conn: psycopg.Connection[Any],
    source: str,
    entry: FileEntry,
    chunks: list[Chunk],
    vectors: dict[str, NDArray[np.float32]],
    sentences: dict[str, NDArray[np.float32]],
) -> None:
    """A file's row, chunks and their sentences' vectors instead of its old ones (call inside a
    transaction; a chunk without sentence vectors: its own vector stands for its one
    sentence)."""
    delete_file(conn, source)
    conn.execute(
        f"INSERT INTO rag_files (source, {FILE_COLUMNS}) VALUES (%s{', %s' * len(FILE_FIELDS)})",
        [source, *file_row(entry)],
    )
    with conn.cursor() as cursor, cursor.copy(COPY_CHUNKS) as copy:
        for c in chunks:
            row = (c.source, c.chunk_no, c.title, c.start, c.end, c.text, c.sha256, vectors[c.id])
            copy.write_row(row)
    ids = dict(conn.execute("SELECT chunk_no, id FROM rag_chunks WHERE source = %s", [source]))
    with conn.cursor() as cursor, cursor.copy(COPY_SENTENCES) as copy:
        for c in chunks:
            for number, vector in enumerate(sentences.get(c.id, vectors[c.id][None, :])):
                copy.write_row((ids[c.chunk_no], number, vector))
    count_file(conn, source, +1)


def configure(conn: psycopg.Connection[Any]) -> None:
    """Each pooled connection: pgvector's types, and HNSW's candidate count."""
    register_vector(conn)
    conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(EF_SEARCH)))
