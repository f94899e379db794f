"""The pgvector store against a real PostgreSQL (pgserver): schema versions, a reader during a
re-ingest, an ingest killed mid-way, and the database going away and coming back. The
behaviours it shares with the FAISS store are tested on both in test_ingestion and
test_retrieval."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import psycopg
import pytest

from rag.embeddings import HashingEmbedder
from rag.errors import IndexCorrupt, IndexNotFound, StoreUnavailable, UsageError
from rag.ingestion import ingest
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.stores.pgvector import PostgresStore, redacted
from rag.stores.pgvector_schema import SCHEMA_VERSION
from tests.conftest import (
    Background,
    KillAt,
    OwnPostgres,
    dying_ingest,
    postgres_settings,
    write_corpus,
)


def query(settings: Settings, statement: str) -> list[tuple[object, ...]]:
    options = PostgresStore(settings).options()
    with psycopg.connect(settings.database_url, **options) as conn:
        return conn.execute(statement.encode()).fetchall()


def test_the_schema_is_created_once_and_its_version_recorded(pg: Settings) -> None:
    first = PostgresStore(pg)
    with pytest.raises(IndexNotFound, match="nothing ingested"):
        first.open()
    first.close()
    PostgresStore(pg).version()  # another process: nothing applied twice
    applied = query(pg, "SELECT version FROM rag_schema ORDER BY version")
    assert applied == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # each once, in order
    query(pg, f"INSERT INTO rag_schema (version) VALUES ({SCHEMA_VERSION + 1}) RETURNING 1")
    with pytest.raises(IndexCorrupt, match="newer than this program knows"):
        PostgresStore(pg).version()


def test_a_database_of_the_first_schema_gains_the_conversation_tables(pg: Settings) -> None:
    """A database made by the release before conversations (schema version 1) is brought up to
    date when a newer program opens it: its index stays, the new tables (conversations, kept
    answers) appear."""
    PostgresStore(pg).version()
    options = PostgresStore(pg).options()
    with psycopg.connect(pg.database_url, **options) as conn:
        conn.execute(
            "DROP TABLE rag_sentences, rag_answer_events, rag_answers, rag_turns, rag_conversations"
        )
        conn.execute(
            "ALTER TABLE rag_files DROP COLUMN collection, DROP COLUMN file_type, "
            "DROP COLUMN modified, DROP COLUMN tags"
        )
        conn.execute("DELETE FROM rag_schema WHERE version > 1")
    store = PostgresStore(pg)
    assert store.conversations().page(10, 0) == ([], 0)
    assert store.shared_answers().read("0" * 32, 0) is None
    applied = query(pg, "SELECT version FROM rag_schema ORDER BY version")
    assert applied == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    store.close()


def test_bm25_statistics_follow_every_change(corpus: Path, pg: Settings) -> None:
    store = PostgresStore(pg)
    ingest([corpus], store.settings, HashingEmbedder(), store=store, progress=False)
    (corpus / "oxygen.txt").write_text("Oxygen was discovered by Priestley and Scheele.")
    (corpus / "football.md").unlink()
    ingest([corpus], store.settings, HashingEmbedder(), store=store, progress=False)
    kept = query(pg, "SELECT n_chunks, n_words FROM rag_totals")
    assert kept == query(pg, "SELECT count(*), sum(n_words) FROM rag_chunks")
    counted = query(
        pg,
        "SELECT word, count(*) FROM rag_chunks, unnest(tsvector_to_array(tsv)) AS word "
        "GROUP BY word ORDER BY word",
    )
    kept_words = "SELECT word, n_chunks FROM rag_words WHERE n_chunks > 0 ORDER BY word"
    assert counted == query(pg, kept_words)


def test_a_reader_during_a_reingest_sees_the_old_or_the_new_file_never_a_mix(
    tmp_path: Path, pg: Settings
) -> None:
    folder = tmp_path / "docs"
    old = {"story.md": "\n\n".join(f"alpha part {i}. " + "filler " * 30 for i in range(8))}
    new = {"story.md": "\n\n".join(f"beta part {i}. " + "filler " * 30 for i in range(5))}
    write_corpus(folder, old)
    store = PostgresStore(pg)
    ingest([folder], store.settings, HashingEmbedder(), store=store, progress=False)
    retriever = Retriever(store.open(), HashingEmbedder())
    expected = {
        "alpha": len(retriever.search("alpha part", 100, mode="bm25")),
        "beta": 0,
    }
    assert expected["alpha"] >= 8
    stop = threading.Event()
    rounds = 0

    def writer() -> None:
        nonlocal rounds
        while not stop.is_set():
            write_corpus(folder, new if rounds % 2 == 0 else old)
            ingest([folder], store.settings, HashingEmbedder(), store=store, progress=False)
            rounds += 1

    thread = Background(writer).start()
    seen: set[tuple[int, int]] = set()
    try:
        deadline, give_up = time.monotonic() + 3, time.monotonic() + 300
        while (time.monotonic() < deadline or rounds < 4) and thread.is_alive():
            assert time.monotonic() < give_up, f"{rounds} ingests in 300 s"
            hits = retriever.search("alpha beta part filler", 100, mode="bm25")
            alphas = sum("alpha" in h.chunk.text for h in hits)
            betas = sum("beta" in h.chunk.text for h in hits)
            seen.add((alphas, betas))
    finally:
        stop.set()
        thread.join(120)  # re-raises what stopped the writer
    whole_new = len(new["story.md"].split("\n\n"))
    assert seen <= {(expected["alpha"], 0), (0, whole_new)}, seen
    assert len(seen) == 2  # both versions were read while the writer ran


def corpus_of(folder: Path, marker: str) -> Path:
    files = {
        f"doc{i:02}.txt": " ".join(f"{marker} paragraph {i} sentence {j}." for j in range(40))
        for i in range(30)
    }
    return write_corpus(folder, files)


def test_an_ingest_killed_while_writing_loses_nothing_committed(
    tmp_path: Path, pg: Settings
) -> None:
    folder = corpus_of(tmp_path / "docs", "original")
    store = PostgresStore(pg)
    ingest([folder], store.settings, HashingEmbedder(), store=store, progress=False)
    chance = random.Random(11)
    for trial in range(5):
        corpus_of(folder, f"edit{trial}")
        dies_at = chance.randint(1, 30)  # after writing this file, before committing it
        kill = KillAt("rag.stores.pgvector", "replace_file", nth=dies_at, after=True)
        child = dying_ingest(pg, folder, kill)
        assert child.wait(timeout=120) == -signal.SIGKILL
        # the files written before are committed, the one being written is not
        edited = query(
            pg,
            f"SELECT count(DISTINCT source) FROM rag_chunks WHERE text LIKE 'edit{trial} %'",
        )
        assert edited == [(dies_at - 1,)]
        # every file whole: its chunks all of one version, as many as its row says
        per_file = query(
            pg,
            "SELECT f.source, f.n_chunks, count(c.id), count(DISTINCT split_part(c.text, ' ', 1)) "
            "FROM rag_files f LEFT JOIN rag_chunks c USING (source) GROUP BY f.source, f.n_chunks",
        )
        assert len(per_file) == 30
        assert all(n == counted and versions == 1 for _, n, counted, versions in per_file)
        total = sum(int(str(row[1])) for row in per_file)
        assert query(pg, "SELECT n_chunks FROM rag_totals") == [(total,)]
    report = ingest([folder], store.settings, HashingEmbedder(), store=store, progress=False)
    assert not report.skipped
    texts = query(pg, "SELECT DISTINCT split_part(text, ' ', 1) FROM rag_chunks")
    assert texts == [("edit4",)]


def test_the_database_going_away_is_a_clear_error_and_its_return_is_noticed(
    corpus: Path, settings: Settings, own_postgres: OwnPostgres
) -> None:
    store = PostgresStore(settings.replace(store="pgvector", database_url=own_postgres.url))
    ingest([corpus], store.settings, HashingEmbedder(), store=store, progress=False)
    retriever = Retriever(store.open(), HashingEmbedder())
    assert retriever.search("Broncos", 1)
    own_postgres.stop()
    with pytest.raises(StoreUnavailable, match="does not answer"):
        retriever.search("Broncos", 1)
    with pytest.raises(StoreUnavailable):
        store.version()
    own_postgres.start()
    try:
        assert store.version() is not None
        assert retriever.search("Broncos", 1)[0].chunk.source == "docs/football.md"
    finally:
        store.close()


def test_messages_never_show_the_password() -> None:
    assert redacted("postgresql://rag:secret@db:5432/rag") == "postgresql://rag@db:5432/rag"
    assert "secret" not in redacted("host=db user=rag password=secret dbname=rag")


def test_two_schemas_in_one_database_are_two_indexes(
    corpus: Path, settings: Settings, postgres_url: str
) -> None:
    first, second = (postgres_settings(settings, postgres_url) for _ in range(2))
    try:
        ingest([corpus], first, HashingEmbedder())
        ingest([corpus / "oxygen.txt"], second, HashingEmbedder())
        files = [sorted(PostgresStore(s).open().manifest.files) for s in (first, second)]
        assert files == [sorted(CORPUS_SOURCES), ["oxygen.txt"]]  # a file named alone
        for chosen in (first, second):  # each keeps its own HNSW index
            indexes = query(
                chosen,
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexname LIKE 'rag_chunks_hnsw_%'",
            )
            assert len(indexes) == 1
    finally:
        for chosen in (first, second):
            PostgresStore(chosen).drop_schema()


CORPUS_SOURCES = ["docs/football.md", "docs/nested/primes.html", "docs/oxygen.txt"]


def test_a_malformed_database_url_is_a_usage_error(settings: Settings) -> None:
    bad = settings.replace(store="pgvector", database_url="notaurl")
    with pytest.raises(UsageError, match="not a PostgreSQL connection string"):
        PostgresStore(bad)


def test_kept_answers_are_shared_through_the_database(pg: Settings) -> None:
    """What one process writes of an answer, another reads; a cancel asked by one reaches the
    writer at its next batch; ended answers are pruned past their time and the cap."""
    store, elsewhere = PostgresStore(pg), PostgresStore(pg)
    writer, reader = store.shared_answers(), elsewhere.shared_answers()
    first = "a" * 32
    assert reader.read(first, 0) is None and reader.cancel(first) is None
    sources = [{"number": 1, "text": "Denver won"}]
    assert (
        writer.record(first, [(1, "sources", sources), (2, "token", {"text": "Den"})], False)
        is False
    )
    assert reader.read(first, 0) == (
        [(1, "sources", sources), (2, "token", {"text": "Den"})],
        False,
    )
    assert reader.read(first, 1) == ([(2, "token", {"text": "Den"})], False)
    assert reader.read_within(first, 5.0) and not reader.read_within("b" * 32, 5.0)
    assert reader.cancel(first) is True
    assert writer.record(first, [(3, "token", {"text": "ver"})], False) is True  # asked: stop
    writer.record(first, [(4, "done", {"cancelled": True})], True)
    assert reader.read(first, 3) == ([(4, "done", {"cancelled": True})], True)
    assert reader.cancel(first) is False  # ended already
    for n in range(3):
        writer.record(f"{n:032d}", [(1, "token", {"text": "x"})], True)
    writer.prune(ttl_s=3600, keep=2)  # four ended: the oldest two go
    assert reader.read(first, 0) is None and reader.read(f"{0:032d}", 0) is None
    assert reader.read(f"{2:032d}", 0) is not None
    time.sleep(0.05)
    writer.prune(ttl_s=0.01, keep=100)
    assert reader.read(f"{2:032d}", 0) is None
    store.close()
    elsewhere.close()
