"""The index in PostgreSQL, for several API workers sharing one store: chunks with their
embeddings (pgvector, an HNSW index for cosine distance) and a `tsvector` column (a GIN index)
for full-text search, and the files with their hashes, in tables this module creates and
migrates itself (`rag_schema` records the version).

Hybrid retrieval runs in the database, one statement per question (one snapshot): the nearest
vectors, the best BM25 matches of the question's words (any of them; BM25 computed in SQL over
PostgreSQL's full-text parsing), and the chunks of both; fusion stays in `rag.retrieval`.
Ingestion is incremental and transactional: each file's old chunks are replaced by its new ones
in one transaction, so a reader never sees half a file, and a crash loses nothing already
committed. A change of embedding model or chunk settings
replaces everything in one transaction.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from rag.chunks import Chunk
from rag.conversation import limits
from rag.corpus import CandidateQuery, Candidates, Change, Corpus, IndexInfo, IndexWriter, Written
from rag.errors import IndexCorrupt, IndexNotFound, StoreUnavailable, UsageError
from rag.settings import IndexType, Settings
from rag.stores.pgvector_answers import PostgresAnswers
from rag.stores.pgvector_conversations import PostgresConversations
from rag.stores.pgvector_plan import EXACT, Planner, iterative_scan, plan
from rag.stores.pgvector_schema import migrate
from rag.stores.pgvector_sql import (
    CONNECT_TIMEOUT_S,
    FILE_COLUMNS,
    FILE_FIELDS,
    POOL_TIMEOUT_S,
    admitted_chunks,
    candidates_sql,
    configure,
    delete_file,
    file_row,
    files_where,
    filter_sql,
    read_epoch,
    read_manifest,
    replace_file,
    reset,
    writer_lock,
)


def redacted(url: str) -> str:
    """The database URL without its password, for messages and logs.

    >>> redacted("postgresql://rag:secret@db:5432/rag")
    'postgresql://rag@db:5432/rag'
    """
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the database (unparsable RAG_DATABASE_URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host", "localhost"))
    if host.startswith("/"):
        host = f"[socket {host}]"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname', '')}"


class PostgresStore:
    def __init__(self, settings: Settings) -> None:
        try:
            conninfo_to_dict(settings.database_url)
        except psycopg.ProgrammingError as err:
            raise UsageError(
                f"RAG_DATABASE_URL is not a PostgreSQL connection string ({str(err).strip()}): "
                "write postgresql://user:password@host:5432/database"
            ) from None
        self.settings = settings
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_lock = threading.Lock()

    @property
    def where(self) -> str:
        schema = self.settings.database_schema
        return redacted(self.settings.database_url) + (f" (schema {schema})" if schema else "")

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Database failures as the index errors the CLI and the server already report."""
        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise StoreUnavailable(f"the database {self.where} does not answer: {reason}") from None
        except psycopg.Error as err:
            raise IndexCorrupt(f"the database {self.where} failed: {err}".strip()) from None

    def connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (the writer's), with the schema migrated."""
        with self.errors():
            conn = psycopg.connect(self.settings.database_url, **self.options())
            migrate(conn, self.settings.database_schema)
            return conn

    def options(self) -> dict[str, Any]:
        """Connection options: autocommit (transactions are explicit), a connect timeout, and
        the schema first on the search path (pgvector's types stay reachable in public)."""
        options: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, "autocommit": True}
        if self.settings.database_schema:
            options["options"] = f"-c search_path={self.settings.database_schema},public"
        return options

    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """The readers' pool, opened at first use (the schema migrated first); a failed open is
        tried again at the next call."""
        with self._pool_lock:
            if self._pool is None:
                self.connect().close()  # migrates the schema, so the pool can register types
                pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                    self.settings.database_url,
                    min_size=1,
                    max_size=self.settings.database_pool_size,
                    kwargs=self.options(),
                    configure=configure,
                    check=ConnectionPool.check_connection,
                    timeout=POOL_TIMEOUT_S,
                    name="rag",
                    open=False,
                )
                with self.errors():
                    try:
                        pool.open(wait=True, timeout=POOL_TIMEOUT_S)
                    except BaseException:
                        pool.close()
                        raise
                self._pool = pool
            return self._pool

    def drop_schema(self) -> None:
        """Remove the schema of `database_schema` and everything in it (evaluations and
        benchmarks use a schema of their own); never the default one."""
        schema = self.settings.database_schema
        if not schema:
            raise UsageError("drop_schema needs database_schema: the default one is kept")
        self.close()
        with self.errors(), psycopg.connect(self.settings.database_url, **self.options()) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection. When the database stops answering, the pool is dropped and the
        next call opens a new one at once (the pool's own reconnection backs off up to minutes,
        too slow to notice a database that came back)."""
        pool = self.pool()
        try:
            with self.errors(), pool.connection() as conn:
                yield conn
        except StoreUnavailable:
            with self._pool_lock:
                if self._pool is pool:
                    self._pool = None
            pool.close(timeout=1.0)
            raise

    def conversations(self) -> PostgresConversations:
        return PostgresConversations(self.connection, limits(self.settings))

    def shared_answers(self) -> PostgresAnswers:
        return PostgresAnswers(self.connection)

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def version(self) -> str | None:
        """The epoch of the index (a new one after a rebuild); None before the first ingest."""
        with self.connection() as conn:
            return read_epoch(conn)

    def open(self) -> Corpus:
        with self.connection() as conn:
            manifest = read_manifest(conn)
        if manifest is None:
            raise IndexNotFound(
                f"nothing ingested into {self.where} yet: run `python -m rag ingest PATH` "
                "with RAG_STORE=pgvector"
            )
        return PostgresCorpus(self, manifest.dimension)

    @contextlib.contextmanager
    def writing(self) -> Iterator[IndexWriter]:
        """The writer's own connection, holding the ingest lock (waits for another writer)."""
        conn = self.connect()
        with self.errors(), conn, writer_lock(conn, self.settings.database_schema):
            register_vector(conn)  # vectors are copied in as numpy arrays
            yield PostgresWriter(conn, self.settings)


class PostgresWriter:
    """Writes per file, each in a transaction of its own (a crash keeps what was committed);
    a rebuild replaces everything in one transaction."""

    index_types: tuple[IndexType, ...] = ("hnsw",)

    def __init__(self, conn: psycopg.Connection[Any], settings: Settings) -> None:
        self.conn = conn
        self.settings = settings

    def previous(self) -> IndexInfo | None:
        return read_manifest(self.conn)

    def write(self, change: Change) -> Written:
        conn, entries = self.conn, change.info.files
        if change.rebuild:
            with conn.transaction():
                reset(conn, change.info)
                for source, chunks in change.fresh.items():
                    replace_file(
                        conn, source, entries[source], chunks, change.vectors, change.sentences
                    )
        else:
            for source in change.removed:
                with conn.transaction():
                    delete_file(conn, source)
            for source, chunks in change.fresh.items():
                with conn.transaction():
                    replace_file(
                        conn, source, entries[source], chunks, change.vectors, change.sentences
                    )
            moved = [[*file_row(entries[s]), s] for s in change.moved]
            with conn.transaction(), conn.cursor() as cursor:  # an unchanged file's new entry
                cursor.executemany(
                    f"UPDATE rag_files SET ({FILE_COLUMNS}) = "
                    f"({', '.join(['%s'] * len(FILE_FIELDS))}) WHERE source = %s",
                    moved,
                )
        counted = conn.execute("SELECT count(*) FROM rag_chunks").fetchone()
        return Written(read_epoch(conn), int(counted[0]) if counted else 0)


class PostgresCorpus:
    """Retrieval's view of the tables: always the committed state (no reload needed)."""

    def __init__(self, store: PostgresStore, dimension: int) -> None:
        self.store = store
        self.dimension = dimension
        self.plan: Planner = plan  # how a question is searched (benchmarks compare others)
        self._iterative: bool | None = None

    def _iterative_scan(self, conn: psycopg.Connection[Any]) -> bool:
        """Whether this pgvector has iterative HNSW scans (0.8 and later), by its version: its
        settings are listed only in a session that has loaded it."""
        if self._iterative is None:
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
            self._iterative = iterative_scan(str(row[0]) if row else "")
        return self._iterative

    @property
    def manifest(self) -> IndexInfo:
        with self.store.connection() as conn:
            manifest = read_manifest(conn)
        if manifest is None:
            raise IndexNotFound(f"the index in {self.store.where} was emptied")
        return manifest

    def candidates(self, query: CandidateQuery) -> Candidates:
        """One statement (rag.stores.pgvector_sql), searched as rag.stores.pgvector_plan says:
        the graph, the graph walked further for a filter, or exactly for a selective one."""
        vector, pool, lexical = query.vector, query.pool, query.lexical
        dense, with_vectors = query.dense and vector is not None, query.with_vectors
        params: dict[str, Any] = {"vector": vector, "query": query.text, "pool": pool}
        where = None if query.filter is None else files_where(query.filter, params)
        admitted = None if where is None else filter_sql(where)
        statement = candidates_sql(
            self.dimension, dense, lexical, vector is not None, with_vectors, admitted
        )
        found = Candidates()
        with self.store.connection() as conn, conn.transaction():
            n_admitted: int | None = None
            total = 0
            if where is not None:
                n_admitted, total = admitted_chunks(conn, where, params)
            search = self.plan(n_admitted, total, pool, self._iterative_scan(conn))
            for setting in search.settings:
                conn.execute(setting)
            rows = conn.execute(statement, params).fetchall()
            near = sum(1 for row in rows if row[1] is not None)
            short = n_admitted is not None and near < min(pool, n_admitted)
            if dense and short and not search.exact:
                for setting in EXACT.settings:  # the walk came back short: search exactly
                    conn.execute(setting)
                rows = conn.execute(statement, params).fetchall()
        for key, near, rank, cosine, sentence, *columns in rows:
            if near is not None:
                found.dense[key] = float(near)
            if rank is not None:
                found.lexical[key] = float(rank)
            if cosine is not None:
                found.cosine[key] = float(cosine)
            if sentence is not None:
                found.sentence[key] = float(sentence)
            source, chunk_no, title, start, end, text, sha256 = columns[:7]
            found.chunks[key] = Chunk(
                f"{source}#{chunk_no}", source, title, chunk_no, start, end, text, sha256
            )
            found.collections[key] = columns[7]
            if with_vectors:
                found.vectors[key] = np.asarray(columns[8].to_numpy(), dtype=np.float32)
        return found
