from __future__ import annotations

from pathlib import Path

import pytest

from rag.answer import NO_ANSWER, Answerer, Done, Sources, Token
from rag.errors import LLMError
from rag.llm.mock import MockLLM
from rag.retrieval import Retriever
from rag.settings import Settings
from tests.conftest import indexed_retriever


@pytest.fixture
def retriever(corpus: Path, settings: Settings) -> Retriever:
    return indexed_retriever(corpus, settings)


def test_events_come_in_order_sources_tokens_done(retriever: Retriever, settings: Settings) -> None:
    answerer = Answerer(retriever, MockLLM(), settings.replace(min_score=0.0))
    events = list(answerer.stream("Who won Super Bowl 50, the Broncos?"))
    assert isinstance(events[0], Sources) and isinstance(events[-1], Done)
    tokens = [e.text for e in events[1:-1] if isinstance(e, Token)]
    assert len(tokens) == len(events) - 2 > 3
    assert events[0].hits[0].chunk.source == "docs/football.md"
    assert "".join(tokens).startswith("According to [1], # Super Bowl 50")
    done = events[-1]
    assert done.completion_tokens == len(tokens) and done.prompt_tokens > 0
    assert done.ttft_ms is not None and 0 <= done.retrieval_ms <= done.ttft_ms <= done.total_ms
    assert set(done.to_json()) == {"usage", "timings", "cancelled"}
    assert events[0].to_json()[0]["number"] == 1


def test_nothing_relevant_means_i_dont_know_without_the_llm(
    retriever: Retriever, settings: Settings
) -> None:
    answerer = Answerer(retriever, MockLLM(fail_after=0), settings.replace(min_score=0.99))
    text, sources, done = answerer.answer("completely unrelated zebra question")
    assert text == NO_ANSWER and sources.hits == () and done.prompt_tokens == 0


def test_a_failing_llm_raises_after_its_tokens(retriever: Retriever, settings: Settings) -> None:
    answerer = Answerer(retriever, MockLLM(fail_after=2), settings.replace(min_score=0.0))
    received = []
    with pytest.raises(LLMError):
        for event in answerer.stream("Broncos?"):
            received.append(event)
    assert isinstance(received[0], Sources) and len(received) == 3


def test_an_uncited_answer_gets_its_source_number(retriever: Retriever, settings: Settings) -> None:
    answerer = Answerer(retriever, MockLLM(reply="Denver Broncos"), settings.replace(min_score=0.0))
    text, sources, _ = answerer.answer("Who won Super Bowl 50, the Broncos?")
    number = int(text.rsplit("[", 1)[1].rstrip("]"))
    assert text.startswith("Denver Broncos [")
    assert "Denver Broncos" in sources.hits[number - 1].chunk.text
