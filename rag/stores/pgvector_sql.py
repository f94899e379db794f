"""The SQL of the pgvector store: the tables and their migrations, BM25 over PostgreSQL's
full-text parsing, one question's candidates in one statement, and the writes of one file
(its chunks and BM25's word counts in the caller's transaction)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import astuple
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from pgvector.psycopg import register_vector
from psycopg import sql

from rag.chunks import Chunk
from rag.corpus import FileEntry, IndexInfo
from rag.errors import IndexCorrupt, IndexLocked

# Applied in order, each once, in one transaction under an advisory lock: append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE EXTENSION IF NOT EXISTS vector SCHEMA public;
    CREATE TABLE rag_meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE rag_files (
        source text PRIMARY KEY,
        path text NOT NULL,
        root text NOT NULL,
        from_folder boolean NOT NULL,
        sha256 text NOT NULL,
        size bigint NOT NULL,
        title text NOT NULL,
        n_chunks integer NOT NULL
    );
    CREATE TABLE rag_chunks (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source text NOT NULL REFERENCES rag_files (source) ON DELETE CASCADE,
        chunk_no integer NOT NULL,
        title text NOT NULL,
        start_char integer NOT NULL,
        end_char integer NOT NULL,
        text text NOT NULL,
        sha256 text NOT NULL,
        embedding vector NOT NULL,
        tsv tsvector NOT NULL,  -- both set by the trigger below, from title and text
        n_words integer NOT NULL,
        UNIQUE (source, chunk_no)
    );
    CREATE FUNCTION rag_chunk_words() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.tsv := to_tsvector('english', NEW.title || E'\\n' || NEW.text);
        NEW.n_words := (
            SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0) FROM unnest(NEW.tsv)
        );
        RETURN NEW;
    END $$;
    CREATE TRIGGER rag_chunk_words BEFORE INSERT OR UPDATE OF title, text ON rag_chunks
        FOR EACH ROW EXECUTE FUNCTION rag_chunk_words();
    CREATE INDEX rag_chunks_tsv ON rag_chunks USING gin (tsv);
    -- BM25's statistics, kept by each ingest transaction: chunks holding each word, and totals
    CREATE TABLE rag_words (word text PRIMARY KEY, n_chunks integer NOT NULL);
    CREATE TABLE rag_totals (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        n_chunks bigint NOT NULL,
        n_words bigint NOT NULL
    );
    INSERT INTO rag_totals VALUES (true, 0, 0);
    """,
    """
    CREATE TABLE rag_conversations (
        id text PRIMARY KEY,
        owner text NOT NULL DEFAULT '',
        title text NOT NULL,
        created double precision NOT NULL,
        updated double precision NOT NULL
    );
    CREATE INDEX rag_conversations_recent ON rag_conversations (owner, updated DESC);
    CREATE TABLE rag_turns (
        conversation text NOT NULL REFERENCES rag_conversations (id) ON DELETE CASCADE,
        number integer NOT NULL,
        body jsonb NOT NULL,
        PRIMARY KEY (conversation, number)
    );
    """,
    """
    CREATE TABLE rag_answers (
        id text PRIMARY KEY,
        created double precision NOT NULL,
        ended double precision,
        cancel boolean NOT NULL DEFAULT false,
        read_at double precision NOT NULL DEFAULT 0
    );
    CREATE TABLE rag_answer_events (
        answer text NOT NULL REFERENCES rag_answers (id) ON DELETE CASCADE,
        number integer NOT NULL,
        kind text NOT NULL,
        body jsonb NOT NULL,
        PRIMARY KEY (answer, number)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# advisory locks (database-wide, hence named by schema): migrations, and one ingest at a time
MIGRATION_LOCK, INGEST_LOCK = "rag migration", "rag ingest"
LOCK_WAIT_S = 60.0
CONNECT_TIMEOUT_S = 3
POOL_TIMEOUT_S = 5.0
EF_SEARCH = 100  # HNSW candidates per query (pgvector's default 40 is below our pool of 50)
COPY_CHUNKS = (
    "COPY rag_chunks (source, chunk_no, title, start_char, end_char, text, sha256, embedding) "
    "FROM STDIN"
)


# BM25 (Lucene's formula, k1 1.2, b 0.75) over PostgreSQL's own parsing and stemming: the
# question's words with their IDF from rag_words, the chunks holding any of them (GIN), and each
# chunk's score from its term frequencies (the positions in its tsvector) and its length.
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
    ),
    lexical AS (
        SELECT m.id, sum(w.idf * f.tf / (f.tf + 1.2 * (0.25 + 0.75 * m.n_words / t.average)))
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


def candidates_sql(
    dimension: int, dense: bool, lexical: bool, cosine: bool, with_vectors: bool
) -> sql.Composed:
    """One statement for one question: the `pool` nearest chunks (HNSW), the `pool` best
    full-text matches (GIN; any word of the question, stemmed, ranked by BM25), and
    for their union the chunk, the cosine and optionally the stored vector."""
    cast = sql.SQL("::vector({})").format(sql.Literal(dimension))
    distance = sql.SQL("embedding{cast} <=> %(vector)s{cast}").format(cast=cast)
    parts: list[sql.Composable] = []
    union: list[str] = []
    if dense:
        parts.append(
            sql.SQL(
                "dense AS (SELECT id, 1 - ({d}) AS cosine FROM rag_chunks "
                "ORDER BY {d} LIMIT %(pool)s)"
            ).format(d=distance)
        )
        union.append("SELECT id FROM dense")
    if lexical:
        parts.append(LEXICAL)
        union.append("SELECT id FROM lexical")
    near = sql.SQL("dense.cosine") if dense else sql.SQL("NULL::float8")
    rank = sql.SQL("lexical.rank") if lexical else sql.SQL("NULL::float8")
    cos = sql.SQL("1 - (c.{d})").format(d=distance) if cosine else sql.SQL("NULL::float8")
    extra = sql.SQL(", c.embedding") if with_vectors else sql.SQL("")
    joins = sql.SQL("").join(
        sql.SQL(f" LEFT JOIN {side} ON {side}.id = c.id")
        for side, asked in (("dense", dense), ("lexical", lexical))
        if asked
    )
    return sql.SQL(
        "WITH {parts} SELECT c.id, {near}, {rank}, {cos}, c.source, c.chunk_no, c.title, "
        "c.start_char, c.end_char, c.text, c.sha256{extra} FROM rag_chunks c{joins} "
        "WHERE c.id IN ({union})"
    ).format(
        parts=sql.SQL(", ").join(parts),
        near=near,
        rank=rank,
        cos=cos,
        extra=extra,
        joins=joins,
        union=sql.SQL(" UNION ".join(union)),
    )


def migrate(conn: psycopg.Connection[Any], schema: str = "") -> None:
    """Bring the tables to `SCHEMA_VERSION`, one transaction, one process at a time."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [MIGRATION_LOCK])
        if schema:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS rag_schema "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT coalesce(max(version), 0) FROM rag_schema").fetchone()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise IndexCorrupt(
                f"the database schema is version {current}, newer than this program knows "
                f"({SCHEMA_VERSION}): upgrade rag"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version - 1].encode())
            conn.execute("INSERT INTO rag_schema (version) VALUES (%s)", [version])


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
            "SELECT source, path, root, from_folder, sha256, size, title, n_chunks "
            "FROM rag_files ORDER BY source"
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
    )


def reset(conn: psycopg.Connection[Any], info: IndexInfo) -> None:
    """Empty the tables for a new embedding model or chunking; the HNSW index is made for the
    model's dimension (inside the caller's transaction: readers see the old or the new)."""
    conn.execute("TRUNCATE rag_files, rag_chunks, rag_words")
    conn.execute("UPDATE rag_totals SET n_chunks = 0, n_words = 0")
    for (name,) in conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'rag_chunks' AND indexname LIKE 'rag_chunks_hnsw_%'"
    ).fetchall():
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    conn.execute(
        sql.SQL(
            "CREATE INDEX {name} ON rag_chunks USING hnsw "
            "((embedding::vector({dim})) vector_cosine_ops)"
        ).format(
            name=sql.Identifier(f"rag_chunks_hnsw_{info.dimension}"),
            dim=sql.Literal(info.dimension),
        )
    )
    meta = {
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
) -> None:
    """A file's row and chunks instead of its old ones (call inside a transaction)."""
    delete_file(conn, source)
    conn.execute(
        "INSERT INTO rag_files (source, path, root, from_folder, sha256, size, title, n_chunks) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [source, *astuple(entry)],
    )
    with conn.cursor() as cursor, cursor.copy(COPY_CHUNKS) as copy:
        for c in chunks:
            row = (c.source, c.chunk_no, c.title, c.start, c.end, c.text, c.sha256, vectors[c.id])
            copy.write_row(row)
    count_file(conn, source, +1)


def configure(conn: psycopg.Connection[Any]) -> None:
    """Each pooled connection: pgvector's types, and HNSW's candidate count."""
    register_vector(conn)
    conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(EF_SEARCH)))
