"""The LLM engine as a process of its own (with a scripted engine, tests/fake_engine.py): answers
stream from it, several at once; when it dies by any signal the answers it was producing fail
with how it died, `problem()` says so, and it is started again; one that cannot start is an
error at once; a consumer that leaves cancels its sequence in the engine."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.errors import EngineCrashed, LLMError, NotReady, UsageError
from rag.llm.probe import death
from rag.llm.supervisor import EngineLLM
from rag.prompt import Prompt
from tests.conftest import wait_until


def fake_engine(**config: Any) -> list[str]:
    """The command of a scripted engine (run from the repository's root, as the suite is)."""
    return [sys.executable, "-m", "tests.fake_engine", json.dumps(config)]


def prompt(text: str = "Question: q\nAnswer:") -> Prompt:
    return Prompt(text=text, question="q", sources=(), context=text)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[EngineLLM]:
    config = getattr(request, "param", {"words": 40, "step_delay_s": 0.02})
    llm = EngineLLM(fake_engine(**config), name="fake", context_tokens=512, backoff_s=(0.1, 0.2))
    yield llm
    llm.close()


def test_an_answer_streams_from_the_engine_and_several_go_together(engine: EngineLLM) -> None:
    expected = " ".join(f"w{n}" for n in range(40))
    assert "".join(engine.stream(prompt())) == expected
    results: dict[int, str] = {}

    def ask(n: int) -> None:
        results[n] = "".join(engine.stream(prompt()))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {n: expected for n in range(4)}
    assert engine.count_tokens("one two three") == 3


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_an_engine_killed_mid_answer_fails_that_answer_with_the_signal_and_comes_back(
    engine: EngineLLM, sig: signal.Signals
) -> None:
    pieces = engine.stream(prompt())
    first = next(pieces)
    assert first.startswith("w0")
    os.kill(engine._engine.process.pid, sig)
    with pytest.raises(LLMError, match=f"the LLM engine died: {sig.name}"):
        for _ in pieces:
            pass
    problem = engine.problem()
    assert problem is not None and sig.name in problem and "restarting" in problem
    with pytest.raises(NotReady, match=sig.name):
        engine.count_tokens("while it is down")
    wait_until(lambda: engine.problem() is None, "the engine was started again", 60)
    assert "".join(engine.stream(prompt())).split()[:2] == ["w0", "w1"]
    assert engine.restarts == 1


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"die_at_start": "SIGSEGV"}, EngineCrashed, "died while loading fake: SIGSEGV"),
        ({"exit": 3}, UsageError, "cannot load the model"),
    ],
)
def test_an_engine_that_cannot_start_is_an_error_at_once(
    config: dict[str, Any], error: type[Exception], message: str
) -> None:
    started = time.monotonic()
    with pytest.raises(error, match=message):
        EngineLLM(fake_engine(**config), name="fake", context_tokens=512)
    assert time.monotonic() - started < 30


def test_a_consumer_that_leaves_cancels_its_sequence_in_the_engine(tmp_path: Path) -> None:
    transcript = tmp_path / "sent.jsonl"
    config = {"words": 40, "step_delay_s": 0.02, "transcript": str(transcript)}
    llm = EngineLLM(fake_engine(**config), name="fake", context_tokens=512)
    try:
        cancel = threading.Event()
        pieces = llm.stream(prompt(), cancel)
        next(pieces)
        next(pieces)
        cancel.set()
        assert list(pieces) == []
        other = "".join(llm.stream(prompt()))  # the engine goes on with the others
        assert len(other.split()) == 40
    finally:
        llm.close()
    sent = [json.loads(line) for line in transcript.read_text().splitlines()]
    ending = next(m for m in sent if m.get("id") == 1 and "end" in m)
    assert ending["end"] == "cancelled"
    produced = sum(1 for m in sent if m.get("id") == 1 and "text" in m)
    assert produced <= 2 + 5  # two read, then what was decoded before the cancel arrived


def test_the_engine_ends_with_its_parent_not_with_a_ctrl_c_to_the_group() -> None:
    llm = EngineLLM(fake_engine(words=3), name="fake", context_tokens=512)
    process = llm._engine.process
    assert os.getpgid(process.pid) != os.getpgid(0)  # a terminal's Ctrl-C is not for it
    llm.close()
    assert process.returncode == 0 and llm.restarts == 0
    assert llm.problem() is None


def test_death_names_the_signal() -> None:
    assert death(-int(signal.SIGILL)) == "SIGILL (illegal instruction)"
    assert death(-int(signal.SIGSEGV)) == "SIGSEGV (segmentation fault)"
    assert death(2) == "exit status 2"
