"""The LLM engine's death seen from HTTP (a scripted engine process under a live server): the
answer it was producing ends with an `error` event saying how it died, /readyz is 503 with the
reason and questions get a 503 while it restarts, health and the document list keep answering,
and once it is back the next question is answered."""

from __future__ import annotations

import os
import signal

import httpx

from rag.llm.supervisor import EngineLLM
from tests.conftest import wait_until
from tests.server.conftest import Serve
from tests.server.live import ask, sse_events
from tests.test_supervisor import fake_engine

QUESTION = "Who won Super Bowl 50?"


def test_an_engine_killed_mid_answer_ends_that_answer_and_the_server_goes_on(
    serve: Serve,
) -> None:
    engine = EngineLLM(
        fake_engine(words=40, step_delay_s=0.05),
        name="fake",
        context_tokens=4096,
        backoff_s=(1.5,),
    )
    server = serve(llm=engine)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            with client.stream("POST", "/v1/ask", json={"question": QUESTION}) as response:
                events = sse_events(response)
                names = [next(events).name, next(events).name]
                assert names == ["sources", "token"]
                os.kill(engine._engine.process.pid, signal.SIGKILL)
                rest = list(events)
            assert rest[-1].name == "error"
            assert "the LLM engine died: SIGKILL" in rest[-1].data["message"]
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert "the LLM engine died: SIGKILL" in ready.json()["error"]["message"]
            refused = client.post("/v1/ask", json={"question": QUESTION})
            assert refused.status_code == 503
            assert "restarting" in refused.json()["error"]["message"]
            assert client.get("/healthz").status_code == 200
            assert client.get("/v1/documents").status_code == 200
            wait_until(
                lambda: client.get("/readyz").status_code == 200, "ready again", timeout_s=60
            )
            answered = ask(client, QUESTION)
            assert answered[-1].name == "done"
            assert "".join(e.data["text"] for e in answered if e.name == "token").startswith("w0")
    finally:
        engine.close()
