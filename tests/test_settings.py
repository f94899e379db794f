"""Each numeric setting's limit is declared once, on its field: the settings check it with the
variable's name, and the HTTP schemas take their bounds from it."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from rag.errors import UsageError
from rag.server.schemas import AskRequest, ChatRequest
from rag.settings import Limit, Settings, limit

LIMITED = [f.name for f in dataclasses.fields(Settings) if "limit" in f.metadata]


def test_the_limited_settings() -> None:
    assert set(LIMITED) >= {"top_k", "max_queue", "max_generations", "port", "chunk_size_tokens"}
    assert limit("top_k") == Limit(1, 20) and limit("max_queue") == Limit(0)


@pytest.mark.parametrize("name", LIMITED)
def test_a_value_outside_the_limit_is_refused_with_the_variable_named(name: str) -> None:
    bounds = limit(name)
    Settings.from_env(env(name, bounds.low))
    with pytest.raises(UsageError, match=f"^RAG_{name.upper()} must be"):
        Settings.from_env(env(name, bounds.low - 1))
    if bounds.high is not None:
        Settings.from_env(env(name, bounds.high))
        with pytest.raises(UsageError, match=f"between {bounds.low} and {bounds.high}"):
            Settings.from_env(env(name, bounds.high + 1))


def env(name: str, value: int) -> dict[str, str]:
    """The variables that set `name` to `value` (no chunk overlap: the chunk size's own lower
    bound is then allowed)."""
    return {"RAG_CHUNK_OVERLAP_TOKENS": "0", f"RAG_{name.upper()}": str(value)}


def test_the_request_schemas_take_their_bounds_from_the_settings() -> None:
    top = limit("top_k").high
    assert top is not None
    assert AskRequest(question="q", top_k=top).top_k == top
    with pytest.raises(ValidationError):
        AskRequest(question="q", top_k=top + 1)
    with pytest.raises(ValidationError):
        ChatRequest.model_validate(
            {"messages": [{"role": "user", "content": "q"}], "top_k": top + 1}
        )
    longest = limit("max_question_chars").high
    assert longest is not None
    with pytest.raises(ValidationError):
        AskRequest(question="q" * (longest + 1))
