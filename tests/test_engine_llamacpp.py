"""The engine process with the real model (Gemma 3 270M through llama.cpp): answers decoded
together stay each with its own sources and are the same text as the answers decoded alone; an
engine killed mid-answer by SIGKILL or SIGSEGV ends that answer with the signal's name and the
next question is answered once it has been started again."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from rag.errors import LLMError
from rag.llm.supervisor import EngineLLM
from rag.prompt import Prompt
from rag.settings import Settings
from tests.conftest import wait_until
from tests.test_llm import prompt_for

pytestmark = pytest.mark.slow

FACTS = [
    ("Who won Super Bowl 50?", "The Denver Broncos won Super Bowl 50 in Santa Clara."),
    ("What is the atomic number of oxygen?", "Oxygen has the atomic number 8."),
    ("Which river flows through Cairo?", "The Nile flows north through Cairo to the sea."),
    ("Who wrote Hamlet?", "Hamlet is a tragedy written by William Shakespeare."),
    ("What is the capital of Finland?", "Helsinki is the capital of Finland."),
    ("When did the Berlin Wall fall?", "The Berlin Wall fell on 9 November 1989."),
    ("What do bees make?", "Honey bees make honey from the nectar of flowers."),
    ("Which planet is the largest?", "Jupiter is the largest planet in the Solar System."),
]


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


@pytest.fixture(scope="module")
def engine() -> EngineLLM:
    llm = EngineLLM.from_settings(Settings(max_generations=4, max_tokens=24))
    llm.backoff_s = (0.5,)
    return llm


def test_answers_decoded_together_keep_to_their_own_sources(engine: EngineLLM) -> None:
    prompts = [prompt_for(question, fact) for question, fact in FACTS]
    alone = ["".join(engine.stream(p)) for p in prompts]
    together: dict[int, str] = {}
    spans: dict[int, tuple[float, float]] = {}

    def answer(n: int, prompt: Prompt) -> None:
        started = time.perf_counter()
        together[n] = "".join(engine.stream(prompt))
        spans[n] = (started, time.perf_counter())

    threads = [threading.Thread(target=answer, args=item) for item in enumerate(prompts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(together) == list(range(len(FACTS)))
    for n, (question, fact) in enumerate(FACTS):
        # each answer draws on its own source, never another's (a KV cache shared wrongly
        # would mix them)
        others = set().union(*(words(f) for m, (_, f) in enumerate(FACTS) if m != n))
        own = words(fact) - others
        assert words(together[n]) & own, (question, together[n])
        assert not words(together[n]) & (others - words(fact) - words(question)), together[n]
    # the four slots were in use at once: answers overlapped in time
    overlapping = sum(1 for a in spans.values() for b in spans.values() if a[0] < b[0] < a[1])
    assert overlapping >= 3
    # the decoder keeps each row's arithmetic the same whoever shares its call (rag/llm/decoder.py)
    assert [together[n] for n in range(len(FACTS))] == alone


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_an_engine_killed_mid_answer_says_so_and_answers_the_next_question(
    engine: EngineLLM, sig: signal.Signals
) -> None:
    long = prompt_for("Write a long story about the Broncos.", "The Broncos are a team. " * 20)
    pieces = engine.stream(long)
    next(pieces)
    os.kill(engine._engine.process.pid, sig)
    with pytest.raises(LLMError, match=f"the LLM engine died: {sig.name}"):
        list(pieces)
    wait_until(lambda: engine.problem() is None, "the engine was started again", 120)
    question, fact = FACTS[0]
    assert "Broncos" in "".join(engine.stream(prompt_for(question, fact)))


def test_a_row_has_the_same_logits_to_the_bit_alone_and_beside_others() -> None:
    """Prompts of 600-700 tokens (past 512 cells, where flash attention would split a lone
    row's cache across threads), decoded greedily alone, beside one other sequence and beside
    three: the logits of every step are equal to the bit."""
    import numpy as np
    from numpy.typing import NDArray

    from rag.llm.decoder import Decoder, Running
    from rag.llm.llamacpp import runnable_model
    from rag.prompt import HEAD

    decoder = Decoder(
        runnable_model(Settings()), slots=4, context_tokens=2048, threads=2, head=HEAD
    )

    def prompt(fact: str, question: str, times: int) -> list[int]:
        text = f"{HEAD}Sources:\n[1] {fact * times}\n\nQuestion: {question}\nAnswer:"
        return decoder.tokenize(text)

    mine = prompt("Paris is the capital of France. ", "What is the capital of France?", 60)
    other = prompt("Oslo is the capital of Norway. ", "What is the capital of Norway?", 55)
    assert 512 < len(mine) < 2048 and 512 < len(other) < 2048

    def decode(prompts: dict[int, list[int]], steps: int = 6) -> list[NDArray[np.float32]]:
        running: list[Running] = [decoder.start(s, p, None) for s, p in prompts.items()]
        last: list[int | None] = [None] * len(running)
        seen: dict[int, list[NDArray[np.float32]]] = {r.seq: [] for r in running}
        while min(len(v) for v in seen.values()) < steps:
            decoder.step(running, last)
            for i, r in enumerate(running):
                if r.output_index >= 0:
                    row = decoder.logits(r).copy()
                    seen[r.seq].append(row)
                    last[i] = int(np.argmax(row))
        for r in running:
            decoder.free(r)
        return seen[1][:steps]

    try:
        alone = decode({1: mine})
        for company in ({1: mine, 3: other}, {2: other, 1: mine, 3: other, 4: other}):
            beside = decode(company)
            assert all(np.array_equal(a, b) for a, b in zip(alone, beside, strict=True))
    finally:
        decoder.close()


def test_with_one_slot_the_next_prompt_reads_only_what_differs_from_the_last() -> None:
    """Two questions over the same source: the second starts where the two prompts part (past
    the head), as the in-process backend does, and answers as a fresh decoder does."""
    from rag.llm.decoder import Decoder
    from rag.llm.llamacpp import runnable_model
    from rag.llm.scheduler import Request, Scheduler
    from rag.prompt import HEAD, STOP

    source = FACTS[0][1] * 8
    first = prompt_for("Who won Super Bowl 50?", source).text
    second = prompt_for("Where was Super Bowl 50 played?", source).text

    def run(decoder: Decoder, text: str) -> tuple[int, str]:
        """(the position its prompt was read from, its answer)"""
        sent: list[dict[str, object]] = []
        scheduler = Scheduler(decoder, 1, sent.append)
        scheduler.submit(Request(id=1, prompt=text, max_tokens=16, stop=tuple(STOP)))
        scheduler._admit()
        start = scheduler.active[1].running.position
        while scheduler.busy:
            scheduler.step()
        return start, "".join(str(m.get("text", "")) for m in sent)

    path = runnable_model(Settings())
    kept = Decoder(path, slots=1, context_tokens=2048, threads=2, head=HEAD)
    fresh = Decoder(path, slots=1, context_tokens=2048, threads=2, head=HEAD)
    try:
        pairs = zip(kept.tokenize(first), kept.tokenize(second), strict=False)
        shared = next(i for i, (a, b) in enumerate(pairs) if a != b)
        assert shared > len(kept.head) + 20  # the source comes before the question
        run(kept, first)
        start, text = run(kept, second)
        fresh_start, fresh_text = run(fresh, second)
        assert start == shared and fresh_start < shared
        assert text == fresh_text and "Santa Clara" in text
    finally:
        kept.close()
        fresh.close()
