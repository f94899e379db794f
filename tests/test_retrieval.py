from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from rag.corpus import Candidates
from rag.embeddings import HashingEmbedder, make_embedder
from rag.errors import IndexMismatch, UsageError
from rag.ingestion import ingest
from rag.retrieval import Retriever
from rag.sentences import sentence_spans
from rag.settings import Settings
from rag.stores import make_store
from tests.conftest import ROOT, indexed_retriever, write_corpus
from tests.fakes import FixedCorpus, hit

DOCS = {
    "rockets.md": "# Apollo\n\nThe Saturn V rocket launched the Apollo missions to the Moon.",
    "rocket-twin.md": "# Apollo again\n\nThe Saturn V rocket launched the Apollo missions to the "
    "Moon, as everyone knows.",
    "oxygen.md": "# Oxygen\n\nLiquid oxygen was the oxidizer of the Saturn V first stage.",
    "primes.md": "# Primes\n\nA prime number has exactly two divisors.",
    "zebra.md": "# Zebras\n\nZebras are African equines with black-and-white stripes.",
}


@pytest.fixture
def retriever(tmp_path: Path, stored: Settings) -> Retriever:
    """The same tests over each store (FAISS files, PostgreSQL)."""
    return indexed_retriever(write_corpus(tmp_path / "docs", DOCS), stored)


def sources(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.chunk.source.removeprefix("docs/") for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_every_mode_finds_the_matching_chunk(retriever: Retriever, mode: str) -> None:
    hits = retriever.search("zebras stripes", 3, mode=mode)  # type: ignore[arg-type]
    assert sources(hits)[0] == "zebra.md"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_hybrid_hits_carry_both_scores(retriever: Retriever) -> None:
    hits = retriever.search("Saturn V oxygen", 5)
    assert all(h.dense_score is not None for h in hits)
    assert hits[0].bm25_score is not None and hits[0].bm25_score > 0
    # the fused ranking favours chunks that both rankers put high
    assert sources(hits)[0] == "oxygen.md"


def test_bm25_mode_ignores_chunks_without_shared_terms(retriever: Retriever) -> None:
    hits = retriever.search("zebras", 5, mode="bm25")
    assert sources(hits) == ["zebra.md"]
    assert retriever.search("the of and", 5, mode="bm25") == []  # stop words only


def test_min_score_drops_weak_hits(retriever: Retriever) -> None:
    everything = retriever.search("zebras stripes", 5, mode="dense")
    threshold = everything[0].score - 1e-6
    strong = retriever.search("zebras stripes", 5, mode="dense", min_score=threshold)
    assert sources(strong) == ["zebra.md"]
    assert retriever.search("zebras stripes", 5, min_score=1.01) == []


def fixed_candidates() -> Candidates:
    """Three chunks with scores set by hand; only the first holds the question's words (in one
    sentence, in order), so its sentence proximity is the best and the others' 0."""
    texts = {0: "Zebras have stripes.", 1: "Horses gallop.", 2: "Cats purr."}
    return Candidates(
        dense={0: 0.5, 1: 0.8, 2: 0.2},
        lexical={0: 2.0, 1: 4.0},
        cosine={0: 0.5, 1: 0.8, 2: 0.2},
        sentence={0: 0.6, 1: 0.9, 2: 0.1},
        chunks={key: hit(text, key + 1).chunk for key, text in texts.items()},
    )


def test_hybrid_scores_are_the_weighted_sum_of_each_side_scaled() -> None:
    retriever = Retriever(FixedCorpus(fixed_candidates()), HashingEmbedder())
    # dense score = 0.3 x chunk cosine + 0.7 x best sentence: 0.57, 0.87, 0.13
    # dense side min-max scaled: (0.57 - 0.13) / 0.74, 1, 0
    # lexical side = 0.5 x BM25 / best BM25 + 0.5 x proximity / best proximity: 0.5 x 0.5 + 0.5,
    # 0.5 x 1 + 0, 0; hybrid = 0.4 x dense + 0.6 x lexical
    expected = {
        "Horses gallop.": 0.4 * 1 + 0.6 * 0.5,
        "Zebras have stripes.": 0.4 * 0.44 / 0.74 + 0.6 * 0.75,
        "Cats purr.": 0.0,
    }
    hits = retriever.search("zebras stripes", 3)
    assert [h.chunk.text for h in hits] == ["Horses gallop.", "Zebras have stripes.", "Cats purr."]
    for found in hits:  # 0.7, 0.688, 0: at a dense weight of 0.3, zebras would come first
        assert found.score == pytest.approx(expected[found.chunk.text], abs=1e-6)
    assert [h.dense_score for h in hits] == pytest.approx([0.87, 0.57, 0.13])
    assert [h.bm25_score for h in hits] == [4.0, 2.0, None]
    dense = retriever.search("zebras stripes", 3, mode="dense")
    assert [h.chunk.text for h in dense] == ["Horses gallop.", "Zebras have stripes.", "Cats purr."]
    assert [h.score for h in dense] == pytest.approx([0.87, 0.57, 0.13])


def test_hybrid_min_score_compares_the_dense_score_not_the_fused_one() -> None:
    retriever = Retriever(FixedCorpus(fixed_candidates()), HashingEmbedder())
    # fused: zebras 0.688, horses 0.7; dense: zebras 0.57, horses 0.87
    kept = retriever.search("zebras stripes", 3, min_score=0.65)
    assert [h.chunk.text for h in kept] == ["Horses gallop."]
    kept = retriever.search("zebras stripes", 3, min_score=0.5)
    assert [h.chunk.text for h in kept] == ["Horses gallop.", "Zebras have stripes."]
    bm25 = retriever.search("zebras stripes", 3, mode="bm25", min_score=3.0)
    assert [h.chunk.text for h in bm25] == ["Horses gallop."]


def test_mmr_prefers_diverse_chunks(retriever: Retriever) -> None:
    plain = retriever.search("Saturn V rocket Apollo Moon", 2, mode="dense")
    assert set(sources(plain)) == {"rockets.md", "rocket-twin.md"}
    diverse = retriever.search("Saturn V rocket Apollo Moon", 2, mode="dense", mmr_lambda=0.3)
    assert len(set(sources(diverse)) & {"rockets.md", "rocket-twin.md"}) == 1


@pytest.mark.parametrize(
    ("query", "k", "kwargs", "message"),
    [
        ("  ", 5, {}, "empty"),
        ("q", 0, {}, "top_k"),
        ("q", 10**9, {}, "top_k"),
        ("q", 5, {"mode": "sparse"}, "unknown retrieval mode"),
        ("q", 5, {"mmr_lambda": 2.0}, "mmr_lambda"),
    ],
)
def test_bad_requests_are_usage_errors(
    retriever: Retriever, query: str, k: int, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        retriever.search(query, k, **kwargs)  # type: ignore[arg-type]


def test_an_index_of_another_model_is_refused(retriever: Retriever) -> None:
    with pytest.raises(IndexMismatch):
        Retriever(retriever.index, HashingEmbedder(dimension=64))


def test_empty_index_returns_nothing(tmp_path: Path, stored: Settings) -> None:
    chosen = make_store(stored)
    (tmp_path / "empty").mkdir()  # an empty folder makes an empty index (a missing one, none)
    ingest([tmp_path / "empty"], stored, HashingEmbedder(), store=chosen)
    assert Retriever(chosen.open(), HashingEmbedder()).search("q", 3) == []


LONG = {
    "long.md": "# Stadium\n\nThe stadium opened in 2014. It seats 68,500 people. Parking is "
    "free on weekdays. The roof was never built.\n\nTickets cost forty dollars.",
    "short.md": "# Rockets\n\nThe Saturn V rocket launched the Apollo missions.",
}


def test_a_dense_score_is_the_chunk_and_its_best_sentence(tmp_path: Path, stored: Settings) -> None:
    """Each store keeps every sentence's vector: a hit's dense score is 0.3 x the cosine of the
    chunk (the unit mean of its sentences' vectors) + 0.7 x the best sentence's, computed here
    by hand from the embedder."""
    chosen = make_store(stored)
    embedder = HashingEmbedder()
    ingest([write_corpus(tmp_path / "docs", LONG)], stored, embedder, store=chosen)
    question = "How many people does the stadium seat?"
    hits = Retriever(chosen.open(), embedder).search(question, 5, mode="dense")
    assert sources(hits)[0] == "long.md"
    query = embedder.embed([question])[0]
    for found in hits:
        text = found.chunk.text
        sentences = embedder.embed([text[a:b] for a, b in sentence_spans(text)])
        mean = sentences.sum(axis=0) / np.linalg.norm(sentences.sum(axis=0))
        expected = 0.3 * float(mean @ query) + 0.7 * float((sentences @ query).max())
        assert found.dense_score == pytest.approx(expected, abs=1e-5)
        assert found.score == found.dense_score


def test_an_index_without_sentence_vectors_still_answers_and_is_rebuilt(
    tmp_path: Path, stored: Settings
) -> None:
    """An index written before sentence vectors (folder format 2; a database without them)
    answers from its chunk vectors, and the next ingest re-embeds everything with the reason."""
    docs = write_corpus(tmp_path / "docs", LONG)
    ingest([docs], stored, HashingEmbedder(), store=make_store(stored))
    forget_sentence_vectors(stored)
    index = make_store(stored).open()
    assert not index.manifest.sentence_vectors
    hits = Retriever(index, HashingEmbedder()).search("stadium seats", 2, mode="dense")
    assert sources(hits)[0] == "long.md" and hits[0].dense_score is not None
    report = ingest([docs], stored, HashingEmbedder(), store=make_store(stored))
    assert report.rebuild_reason and "predates sentence vectors" in report.rebuild_reason
    assert report.n_embedded == report.n_chunks
    assert make_store(stored).open().manifest.sentence_vectors


def forget_sentence_vectors(stored: Settings) -> None:
    """Make the index look as the release before sentence vectors wrote it."""
    if stored.store == "pgvector":
        import psycopg

        from rag.stores.pgvector import PostgresStore

        with psycopg.connect(stored.database_url, **PostgresStore(stored).options()) as conn:
            conn.execute("DELETE FROM rag_sentences")
            conn.execute("DELETE FROM rag_meta WHERE key = 'sentence_vectors'")
        return
    folder = stored.index_dir / (stored.index_dir / "CURRENT").read_text().strip()
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in ("sentences.faiss", "sentence_starts.npy"):
        (folder / name).unlink()
        del manifest["checksums"][name]
    manifest["format_version"] = 2
    del manifest["sentence_vectors"]
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Which team won Super Bowl 50?", "Denver won"),
        ("Who was named MVP of Super Bowl 50?", "Von Miller was named Super Bowl MVP"),
    ],
)
def test_the_readme_questions_rank_the_answer_first(
    sample_index: Retriever, question: str, answer: str
) -> None:
    """The README's example questions over `data/` with the real model: the first source, the
    one the default prompt reads, holds the answer (the MVP question used to rank a chunk about
    BBC radio first and the answer outside the top 5)."""
    first = sample_index.search(question, 5)[0]
    assert answer in first.chunk.text, first.chunk.text[:200]


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    settings = Settings(index_dir=tmp_path_factory.mktemp("sample") / "index")
    embedder = make_embedder(settings)
    ingest([ROOT / "data"], settings, embedder)
    return Retriever(make_store(settings).open(), embedder)
