from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from rag.embeddings import HashingEmbedder
from rag.errors import IndexMismatch, UsageError
from rag.ingestion import ingest
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.stores import make_store
from tests.conftest import write_corpus

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
    chosen = make_store(stored)
    ingest(
        [write_corpus(tmp_path / "docs", DOCS)],
        stored,
        HashingEmbedder(),
        store=chosen,
        progress=False,
    )
    return Retriever(chosen.open(), HashingEmbedder())


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
