from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.live import free_port
from rag.llm import LLMError, make_llm
from rag.llm.extractive import ExtractiveLLM
from rag.llm.mock import MockLLM
from rag.prompt import Prompt, build_prompt
from rag.settings import Settings
from tests.fakes import hit


def prompt_for(question: str, *texts: str) -> Prompt:
    hits = [hit(text, rank) for rank, text in enumerate(texts, start=1)]
    return build_prompt(question, hits, lambda t: len(t.split()), 10**6)


PROMPT = prompt_for(
    "Who won Super Bowl 50?",
    "The Carolina Panthers lost. The Denver Broncos won Super Bowl 50 in Santa Clara.",
    "Oxygen is a chemical element.",
)


def test_mock_is_deterministic_and_streams_word_pieces() -> None:
    first = list(MockLLM().stream(PROMPT))
    assert first == list(MockLLM().stream(PROMPT))
    assert len(first) > 3
    assert "".join(first) == "According to [1], The Carolina Panthers lost."


def test_mock_fails_after_n_tokens() -> None:
    received = []
    with pytest.raises(LLMError, match="after 2 tokens"):
        for piece in MockLLM(fail_after=2).stream(PROMPT):
            received.append(piece)
    assert len(received) == 2


def test_mock_stops_promptly_when_cancelled() -> None:
    cancel = threading.Event()
    stream = MockLLM(delay_s=0.05).stream(PROMPT, cancel)
    next(stream)
    cancel.set()
    started = time.perf_counter()
    assert list(stream) == []
    assert time.perf_counter() - started < 0.1


def test_extractive_quotes_the_best_sentence_with_its_citation() -> None:
    answer = "".join(ExtractiveLLM().stream(PROMPT))
    assert answer == "The Denver Broncos won Super Bowl 50 in Santa Clara. [1]"
    prompt = prompt_for("What is oxygen?", "Zebras have stripes.", "Oxygen is a chemical element.")
    assert "".join(ExtractiveLLM().stream(prompt)) == "Oxygen is a chemical element. [2]"
    assert "".join(ExtractiveLLM().stream(prompt_for("Who?"))) == "I don't know."


def test_factory_imports_only_the_chosen_backend() -> None:
    mock = make_llm(Settings.from_env({"RAG_LLM": "mock", "RAG_MOCK_TOKEN_DELAY_MS": "5"}))
    assert isinstance(mock, MockLLM) and mock.delay_s == 0.005
    assert isinstance(make_llm(Settings(llm="mock", mock_fail_after=3)), MockLLM)
    assert make_llm(Settings(llm="mock", mock_fail_after=3)).fail_after == 3  # type: ignore[attr-defined]
    assert isinstance(make_llm(Settings(llm="extractive")), ExtractiveLLM)


def test_openai_backend_reports_a_server_that_is_down_quickly() -> None:
    port = free_port()
    llm = make_llm(
        Settings(llm="openai", openai_base_url=f"http://127.0.0.1:{port}/v1", openai_timeout_s=2)
    )
    started = time.perf_counter()
    with pytest.raises(LLMError, match=f"127.0.0.1:{port}"):
        list(llm.stream(PROMPT))
    assert time.perf_counter() - started < 3


@pytest.fixture(scope="module")
def gemma_path() -> Path:
    from rag.llm.gguf import default_model_path

    return default_model_path()


class RecordingLlama:
    """Stands in for llama_cpp.Llama: records what it is asked, streams two pieces."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, object]]] = []

    def create_completion(self, prompt: str, **options: object) -> Iterator[dict[str, Any]]:
        self.asked.append((prompt, options))
        return ({"choices": [{"text": text}]} for text in ["Denver", " [1]"])


def test_llamacpp_sends_the_whole_prompt_with_its_stop_sequences() -> None:
    """The stop sequences keep a base model from writing a `Question:` line of its own after
    its answer (what a planted instruction would need): they must reach llama.cpp."""
    from rag.llm.llamacpp import LlamaCppLLM

    llm = LlamaCppLLM.__new__(LlamaCppLLM)  # without loading a model
    llm._llama, llm._lock = RecordingLlama(), threading.Lock()
    llm.max_tokens, llm.temperature = 9, 0.0
    assert "".join(llm.stream(PROMPT)) == "Denver [1]"
    ((prompt, options),) = llm._llama.asked
    assert prompt == PROMPT.text
    assert options == {
        "max_tokens": 9,
        "temperature": 0.0,
        "stop": ["\n", "Question:", "Sources:"],
        "stream": True,
    }


@pytest.mark.slow
def test_llamacpp_streams_gemma_and_stops_between_tokens(gemma_path: Path) -> None:
    llm = make_llm(Settings(llm="llamacpp", max_tokens=40))
    assert llm.name == f"llamacpp:{gemma_path.name}"
    pieces = list(llm.stream(PROMPT))
    assert len(pieces) >= 1 and "".join(pieces).strip()
    # a 270M model is not always right, but it answers with a phrase copied from the sources
    answer_words = set(re.findall(r"\w+", "".join(pieces).lower()))
    source_words = set(re.findall(r"\w+", PROMPT.context.lower()))
    assert answer_words <= source_words
    # cancellation: a long generation stops right after the event is set
    long = prompt_for("Write a long story about the Broncos.", "The Broncos are a team. " * 20)
    cancel = threading.Event()
    stream = make_llm(Settings(llm="llamacpp", max_tokens=200)).stream(long, cancel)
    received = [next(stream)]
    cancel.set()
    received += list(stream)
    assert len(received) <= 2


@pytest.mark.slow
def test_openai_backend_streams_from_a_real_llama_cpp_server(llama_server: str) -> None:
    llm = make_llm(
        Settings(llm="openai", openai_base_url=llama_server, openai_model="gemma", max_tokens=24)
    )
    pieces = list(llm.stream(PROMPT))
    assert len(pieces) > 1  # streamed, not one block
    assert "".join(pieces).strip()
