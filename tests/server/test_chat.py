"""The OpenAI-compatible endpoint, driven by clients no one here wrote: the official `openai`
package and LangChain's `ChatOpenAI`."""

from __future__ import annotations

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr

from rag.llm.mock import MockLLM
from tests.fakes import GatedLLM
from tests.server.conftest import Serve
from tests.server.live import sse_events

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is oxygen?"},
    {"role": "assistant", "content": "A gas."},
    {"role": "user", "content": "Who won Super Bowl 50?"},
]


def client_for(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_the_openai_client_streamed_and_not_gets_the_same_answer(serve: Serve) -> None:
    server = serve(llm=MockLLM(delay_s=0.002))
    client = client_for(server.url)
    whole = client.chat.completions.create(model="rag", messages=MESSAGES)
    stream = client.chat.completions.create(
        model="rag",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert "Super Bowl 50" in text  # retrieval ran on the last user message
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.completion_tokens > 0
    assert (whole.model_extra or {})["sources"][0]["source"] == "docs/football.md"
    # one id; the role only in the first delta; exactly one finish_reason; usage last
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices].count("stop") == 1
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert (chunks[0].model_extra or {})["sources"][0]["source"] == "docs/football.md"
    assert [m.id for m in client.models.list()] == ["rag"]


def test_the_raw_stream_ends_with_done(serve: Serve) -> None:
    server = serve()
    body = {"model": "rag", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        events = list(sse_events(response))
    assert events[-1].data == "[DONE]"
    assert all(e.name == "message" for e in events)  # OpenAI sends no event: lines


def test_the_stream_delivers_the_first_token_before_the_generator_makes_the_second(
    serve: Serve,
) -> None:
    llm = GatedLLM()
    server = serve(llm=llm)
    body = {"model": "rag", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        events = sse_events(response)
        role = next(events).data["choices"][0]["delta"]
        first = next(events).data["choices"][0]["delta"]
        assert role["role"] == "assistant"
        assert first == {"content": "Denver "}
        assert not llm.gate.is_set()  # the second token does not exist yet
        llm.gate.set()
        rest = [e.data for e in events]
    assert rest[-1] == "[DONE]"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in rest[:-1]) == "won [1]"


def test_a_failure_mid_stream_raises_in_the_openai_client(serve: Serve) -> None:
    server = serve(llm=MockLLM(fail_after=2))
    client = client_for(server.url)
    stream = client.chat.completions.create(model="rag", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError, match="failed after 2 tokens"):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3  # the role chunk and two tokens came before the error
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="rag", messages=MESSAGES)
    assert caught.value.status_code == 502


def test_requests_without_a_user_message_are_refused(serve: Serve) -> None:
    server = serve()
    client = client_for(server.url)
    with pytest.raises(openai.UnprocessableEntityError, match="no user message"):
        client.chat.completions.create(
            model="rag", messages=[{"role": "system", "content": "hello"}]
        )


def test_langchain_chat_openai_invokes_and_streams(serve: Serve) -> None:
    server = serve()
    chat = ChatOpenAI(
        base_url=f"{server.url}/v1",
        api_key=SecretStr("unused"),
        model="rag",
        max_retries=0,
    )
    answer = chat.invoke("Who won Super Bowl 50?")
    pieces = [chunk.content for chunk in chat.stream("Who won Super Bowl 50?")]
    assert isinstance(answer.content, str) and "Super Bowl 50" in answer.content
    assert len([p for p in pieces if p]) > 3
    assert "".join(str(p) for p in pieces) == answer.content


def test_one_rule_for_the_question_on_both_routes(serve: Serve) -> None:
    """A NUL in the question, and a body that is not JSON, are refused alike by /v1/ask and
    /v1/chat/completions."""
    server = serve()
    nul = "Who won\x00 Super Bowl 50?"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ask = client.post("/v1/ask", json={"question": nul})
        chat = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": nul}]}
        )
        assert (ask.status_code, chat.status_code) == (422, 422)
        for response in (ask, chat):
            assert "NUL character" in response.json()["error"]["message"]
        for route in ("/v1/ask", "/v1/chat/completions"):
            broken = client.post(
                route, content=b'{"messages": [', headers={"content-type": "application/json"}
            )
            assert broken.status_code == 400
            assert broken.json()["error"]["message"].startswith("the body is not valid JSON")
