"""`rag ask --url`: the terminal client of a running server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from rag.cli import main
from rag.llm.mock import MockLLM
from tests.conftest import Background, interruptible, wait_until
from tests.fakes import EndlessLLM
from tests.server.conftest import Serve

QUESTION = "Who won Super Bowl 50?"


def test_the_answer_streams_to_the_terminal_then_sources_and_timings(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve()
    assert main(["ask", QUESTION, "--url", server.url]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("According to [1], # Super Bowl 50")
    assert "[1] docs/football.md (Super Bowl 50" in out
    assert "first token" in err and "tokens" in err
    assert main(["ask", QUESTION, "--url", server.url, "--json", "--k", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["answer"].startswith("According to [1]")
    assert len(result["sources"]) == 2 and result["usage"]["completion_tokens"] > 0


def test_failures_are_one_line_and_a_non_zero_status(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", QUESTION, "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err
    failing = serve(llm=MockLLM(fail_after=2))
    assert main(["ask", QUESTION, "--url", failing.url]) == 1
    out, err = capsys.readouterr()
    assert out == "According to \n"  # the tokens so far, then the reason
    assert "failed after 2 tokens" in err
    locked = serve(api_key="k")
    assert main(["ask", QUESTION, "--url", locked.url]) == 1
    assert "401" in capsys.readouterr().err
    assert main(["ask", QUESTION, "--url", locked.url, "--api-key", "k"]) == 0


def test_ctrl_c_stops_the_answer_on_the_server(serve: Serve) -> None:
    llm = EndlessLLM(delay_s=0.02)
    server = serve(llm=llm)
    process = subprocess.Popen(
        [sys.executable, "-m", "rag", "ask", QUESTION, "--url", server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=interruptible,
    )
    stdout = process.stdout
    assert stdout is not None
    shown: list[str] = []
    reader = Background(lambda: shown.extend(iter(lambda: stdout.read(1), ""))).start()
    # interrupt once the terminal shows two tokens (a busy machine may show them late)
    wait_until(lambda: "".join(shown).startswith("t0 t1"), "two tokens on the terminal")
    process.send_signal(signal.SIGINT)
    reader.join(30)
    err = process.communicate(timeout=30)[1]
    assert process.returncode == 130, err
    assert "".join(shown).startswith("t0 t1") and "interrupted" in err
    assert llm.ended.wait(10)  # the server stopped generating
    assert llm.produced < 200


def test_scripts_ask_is_the_same_client(serve: Serve) -> None:
    server = serve()
    done = subprocess.run(
        [sys.executable, "scripts/ask.py", QUESTION, "--url", server.url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout)["sources"][0]["source"] == "docs/football.md"


def test_local_only_flags_with_url_are_pointed_out(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve()
    assert main(["ask", QUESTION, "--url", server.url, "--llm", "extractive"]) == 0
    assert "--llm only apply without --url" in capsys.readouterr().err


def test_a_server_of_another_dialect_is_named_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server answering /v1/ask with OpenAI chunks and `data: [DONE]`: one line, exit 1."""
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from tests.server.live import LiveServer

    other = FastAPI()

    @other.post("/v1/ask")
    def chunks() -> StreamingResponse:
        def body() -> Iterator[str]:
            yield 'data: {"choices": [{"delta": {"content": "Denver"}}]}\n\n'
            yield "data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    with LiveServer(other) as server:
        for args in (["--json"], []):
            assert main(["ask", QUESTION, "--url", server.url, *args]) == 1
            err = capsys.readouterr().err
            assert err.startswith(f"error: {server.url} is not a rag server")
            assert len(err.strip().splitlines()) == 1


def test_a_dropped_connection_is_resumed_and_the_answer_printed_once(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.server.live import CuttingRelay

    server = serve(llm=MockLLM(delay_s=0.01, reply="Denver beat Carolina 24 to 10 in Santa Clara."))
    relay = CuttingRelay(server.url)
    assert main(["ask", QUESTION, "--url", relay.url, "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    headers_end = relay.received[0].index(b"\r\n\r\n") + 4
    for cut in (headers_end + 10, headers_end + 400, headers_end + 1200):  # sources, tokens
        relay.cuts = [cut, headers_end + 150]  # the first reconnect is cut too
        assert main(["ask", QUESTION, "--url", relay.url, "--json"]) == 0, cut
        resumed = json.loads(capsys.readouterr().out)
        assert resumed["answer"] == whole["answer"]
        assert whole["answer"].startswith("Denver beat Carolina 24 to 10 in Santa Clara.")
        assert resumed["sources"] == whole["sources"]
        assert not resumed["cancelled"]
    assert len(relay.received) == 1 + 3 * 3  # each question: the POST and two reconnects
    relay.close()
