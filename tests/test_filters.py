"""Filters: parsed from JSON and flags, and the same documents admitted by both stores: a
property test over random filters on a random corpus finds no hit outside its filter, k hits
whenever k chunks pass it, and the same hits on FAISS and on PostgreSQL."""

from __future__ import annotations

import os
import random
from pathlib import Path

import psycopg
import pytest

from rag.catalog import FileEntry
from rag.embeddings import HashingEmbedder
from rag.errors import UsageError
from rag.filters import Filter, describe
from rag.ingestion import ingest
from rag.labels import Labels
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.stores import make_store

WORDS = [
    "river",
    "bridge",
    "harbour",
    "engine",
    "valve",
    "copper",
    "lantern",
    "orchard",
    "glacier",
    "meadow",
]
DAY = 86_400.0
ITERATIVE = ("SET LOCAL hnsw.iterative_scan = strict_order",)


def entry(**fields: object) -> FileEntry:
    base = {"path": "/x", "root": "/", "from_folder": True, "sha256": "", "size": 1}
    return FileEntry(**{**base, "title": "T", "n_chunks": 1, **fields})  # type: ignore[arg-type]


def test_json_and_flags_say_the_same_filter() -> None:
    from_json = Filter.from_json(
        {
            "collection": ["manuals", "notes"],
            "file_type": "pdf",
            "source": {"prefix": "manuals/"},
            "modified": {"gte": "2026-01-01", "lt": 1798761600},
            "tags": {"team": ["infra", "ops"]},
        }
    )
    from_flags = Filter.from_args(
        ["manuals", "notes"],
        [
            "file_type=pdf",
            "source^=manuals/",
            "modified>=2026-01-01",
            "modified<1798761600",
            "tag.team=infra,ops",
        ],
    )
    assert from_json == from_flags
    assert from_json is not None and from_json.modified_from == 1767225600.0
    assert describe(from_json) == (
        "collection in {manuals, notes}, file_type in {pdf}, tag.team in {infra, ops}, "
        "source^=manuals/, modified>=2026-01-01T00:00:00+00:00, modified<2027-01-01T00:00:00+00:00"
    )
    admitted = entry(
        collection="notes", file_type="pdf", modified=1767225600.0, tags={"team": "ops"}
    )
    assert from_json.admits("manuals/a.pdf", admitted)
    assert not from_json.admits("notes/a.pdf", admitted)  # the prefix
    assert not from_json.admits("manuals/a.pdf", entry(collection="notes", file_type="pdf"))
    assert Filter.from_json(None) is None and Filter.from_json({}) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("manuals", "filter: an object"),
        ({"colour": "red"}, "unknown or malformed field 'colour'"),
        ({"collection": []}, "a string or a list of 1-1000 strings"),
        ({"collection": 3}, "a string or a list"),
        ({"source": {"suffix": ".md"}}, 'a name or {"prefix": "folder/"}'),
        ({"modified": {"after": 1}}, "modified"),
        ({"modified": {"gte": "yesterday"}}, "'yesterday' is not a time"),
        ({"modified": {"lt": 10**400}}, "is not a time"),
        ({"modified": {"lt": "nan"}}, "'nan' is not a time"),
        ({"modified": {"gte": True}}, "True is not a time"),
        ({"tags": {"team": 5}}, "filter tags.team: a string"),
    ],
)
def test_a_malformed_filter_is_refused_saying_what_is_wrong(raw: object, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("(", r"\(")):
        Filter.from_json(raw)


def random_corpus(root: Path, rng: random.Random) -> list[tuple[Path, Labels]]:
    """24 documents in 3 collections and 2 folders, some tagged, modified over 60 days."""
    groups = []
    for number in range(24):
        folder = root / "docs" / f"part{number % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"doc{number}.{rng.choice(['md', 'txt'])}"
        paragraphs = [" ".join(rng.choices(WORDS, k=12)) + "." for _ in range(rng.randint(1, 4))]
        path.write_text("\n\n".join(paragraphs))
        moment = 1_767_225_600 + rng.randint(0, 60) * DAY
        os.utime(path, (moment, moment))
        tags = rng.choice([{}, {"team": "infra"}, {"team": "ops"}])
        groups.append((path, Labels(rng.choice(["a", "b", "c"]), tags)))
    return groups


def random_filter(rng: random.Random) -> dict[str, object]:
    raw: dict[str, object] = {}
    if rng.random() < 0.6:
        raw["collection"] = rng.sample(["a", "b", "c"], rng.randint(1, 2))
    if rng.random() < 0.3:
        raw["file_type"] = rng.choice(["md", "txt"])
    if rng.random() < 0.3:
        raw["tags"] = {"team": rng.choice(["infra", "ops"])}
    if rng.random() < 0.3:
        raw["source"] = {"prefix": f"docs/part{rng.randint(0, 1)}/"}
    if rng.random() < 0.3:
        start = 1_767_225_600 + rng.randint(0, 40) * DAY
        raw["modified"] = {"gte": start, "lt": start + rng.randint(1, 30) * DAY}
    return raw or {"collection": "a"}


@pytest.mark.parametrize("planner", ["iterative scan", "before 0.8"])
def test_random_filters_admit_the_same_hits_on_both_stores(
    tmp_path: Path, settings: Settings, pg: Settings, planner: str
) -> None:
    """pgvector 0.8 and later walk the graph on until the filter has admitted enough (the test
    server's pgvector: 0.8.2); before 0.8 the store plans a further walk or an exact search
    (rag/stores/pgvector_plan.py), asked for here on the same server."""
    from rag.stores.pgvector import PostgresCorpus
    from rag.stores.pgvector_plan import Plan, iterative_scan, plan

    rng = random.Random(17)
    files = random_corpus(tmp_path, rng)
    retrievers = {}
    for name, stored in (("faiss", settings), ("pgvector", pg)):
        store = make_store(stored)
        for path, labels in files:
            ingest([path], stored, HashingEmbedder(), store=store, labels=labels, prune=False)
        retrievers[name] = Retriever(store.open(), HashingEmbedder())
    corpus = retrievers["pgvector"].index
    assert isinstance(corpus, PostgresCorpus)
    if planner == "iterative scan":
        with psycopg.connect(pg.database_url) as conn:
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            version = row.fetchone()
        if not iterative_scan(str(version[0]) if version else ""):
            pytest.skip("this PostgreSQL's pgvector is older than 0.8: no iterative scan")
    told: list[bool] = []  # what the store found its pgvector can do, at each search

    def planned(admitted: int | None, total: int, pool: int, iterative: bool) -> Plan:
        told.append(iterative)
        return plan(admitted, total, pool, iterative and planner == "iterative scan")

    corpus.plan = planned
    manifest = retrievers["faiss"].index.manifest
    for trial in range(40):
        raw = random_filter(rng)
        where = Filter.from_json(raw)
        assert where is not None
        admitted = where.sources(manifest.files)
        n_chunks = sum(manifest.files[s].n_chunks for s in admitted)
        question = " ".join(rng.choices(WORDS, k=3))
        found = {}
        for name, retriever in retrievers.items():
            hits = retriever.search(question, k=8, mode="dense", where=where)
            assert {h.chunk.source for h in hits} <= admitted, (trial, raw, name)
            assert len(hits) == min(8, n_chunks), (trial, raw, name)  # k when k exist
            hybrid = retriever.search(question, k=8, where=where)
            assert {h.chunk.source for h in hybrid} <= admitted, (trial, raw, name)
            named = {h.collection for h in hits}
            assert named == {manifest.files[h.chunk.source].collection for h in hits}, name
            found[name] = [(h.chunk.id, round(h.dense_score or 0, 4)) for h in hits]
        ours, theirs = found["faiss"], found["pgvector"]
        assert [s for _, s in ours] == [s for _, s in theirs], (trial, raw)
        last = ours[-1][1] if ours else 0.0  # chunks tied at the last place may differ
        assert {i for i, s in ours if s > last} == {i for i, s in theirs if s > last}, trial
    assert told  # every search was planned
    if planner == "iterative scan":
        assert all(told)  # the store found by itself that its pgvector walks on


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("share", [0.01, 0.5])
def test_a_filtered_vector_search_returns_the_k_nearest_admitted_rows(
    kind: str, share: float
) -> None:
    """Not by over-fetching and dropping: a filter keeping 1% of the rows still gets k."""
    import numpy as np

    from rag.index import FaissIndex

    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(6000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = FaissIndex.build(vectors, 32, kind)  # type: ignore[arg-type]
    allowed = rng.random(6000) < share
    query = vectors[:3]
    _, rows = index.search(query, 10, allowed)
    exact = np.argsort(-(query @ vectors[allowed].T), axis=1)[:, :10]
    expected = np.flatnonzero(allowed)[exact]
    assert rows.shape == (3, 10) and allowed[rows].all()
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, expected, strict=True)])
    assert overlap >= (1.0 if kind == "flat" or share < 0.05 else 0.9)


@pytest.mark.parametrize(
    ("admitted", "pool", "iterative", "settings", "exact"),
    [
        (None, 50, False, (), False),  # no filter: the graph at its usual ef_search (100)
        (None, 100, False, ("SET LOCAL hnsw.ef_search = 200",), False),
        (500_000, 50, False, ("SET LOCAL hnsw.ef_search = 400",), False),  # 2 x 100 / 0.5
        (200_000, 50, False, ("SET LOCAL hnsw.ef_search = 1000",), False),  # the bound
        (199_000, 50, False, ("SET LOCAL enable_indexscan = off",), True),  # past it: exact
        (10_000, 50, False, ("SET LOCAL enable_indexscan = off",), True),
        (0, 50, False, ("SET LOCAL enable_indexscan = off",), True),
        (1_000_000, 50, False, (), False),  # a filter admitting everything: as none
        (500_000, 50, True, ITERATIVE, False),  # pgvector 0.8: walks on until it has enough
        (500_000, 100, True, ("SET LOCAL hnsw.ef_search = 200", *ITERATIVE), False),
        (10_000, 50, True, ("SET LOCAL enable_indexscan = off",), True),  # selective: exact
    ],
)
def test_pgvector_walks_the_graph_further_for_a_broad_filter_and_searches_a_selective_one_exactly(
    admitted: int | None, pool: int, iterative: bool, settings: tuple[str, ...], exact: bool
) -> None:
    from rag.stores.pgvector_plan import plan

    chosen = plan(admitted, 1_000_000, pool, iterative)
    assert (chosen.settings, chosen.exact) == (settings, exact)


def test_a_pgvector_walk_that_comes_back_short_is_searched_again_exactly(
    tmp_path: Path, pg: Settings
) -> None:
    """A walk of one candidate keeps at most one admitted chunk: the store must notice that it
    has fewer than it needs and search exactly, returning k hits, the nearest admitted."""
    from rag.stores.pgvector import PostgresCorpus
    from rag.stores.pgvector_plan import Plan

    rng = random.Random(3)
    files = random_corpus(tmp_path, rng)
    store = make_store(pg)
    for path, labels in files:
        ingest([path], pg, HashingEmbedder(), store=store, labels=labels, prune=False)
    retriever = Retriever(store.open(), HashingEmbedder())
    where = Filter.from_json({"collection": ["a", "b"]})
    assert where is not None
    exact = retriever.search("river bridge", k=8, mode="dense", where=where)
    forced = ("SET LOCAL enable_seqscan = off", "SET LOCAL enable_sort = off")
    walk = Plan((*forced, "SET LOCAL hnsw.ef_search = 1"), exact=False)
    assert isinstance(retriever.index, PostgresCorpus)
    retriever.index.plan = lambda *args: walk
    walked = retriever.search("river bridge", k=8, mode="dense", where=where)
    assert len(exact) == 8
    assert [h.chunk.id for h in walked] == [h.chunk.id for h in exact]
