"""The pgvector store's tables, as migrations applied in order, each once; a database newer
than this program is refused."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from rag.errors import IndexCorrupt

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
    """
    CREATE TABLE rag_sentences (
        chunk_id bigint NOT NULL REFERENCES rag_chunks (id) ON DELETE CASCADE,
        number integer NOT NULL,
        embedding vector NOT NULL,  -- HNSW index made per dimension, as rag_chunks' (reset)
        PRIMARY KEY (chunk_id, number)
    );
    """,
    # 5: documents carry the metadata filters ask about
    """
    ALTER TABLE rag_files
        ADD COLUMN collection text NOT NULL DEFAULT 'default',
        ADD COLUMN file_type text NOT NULL DEFAULT '',
        ADD COLUMN modified double precision NOT NULL DEFAULT 0,
        ADD COLUMN tags jsonb NOT NULL DEFAULT '{}';
    CREATE INDEX rag_files_collection ON rag_files (collection);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
MIGRATION_LOCK = "rag migration"  # an advisory lock: one process migrates at a time


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
