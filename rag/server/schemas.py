"""Request bodies, validated before the first byte of any answer: a bad request is a 422 with
a readable message, never a half-started stream."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rag.conversation import Message
from rag.filters import Filter
from rag.settings import RetrievalMode, limit

# The bounds of the settings a request may override (`Settings.max_question_chars` lowers the
# question's further, per server).
TOP_K, QUESTION = limit("top_k"), limit("max_question_chars")


MAX_HISTORY = 200  # messages a request of /v1/ask may carry
MAX_MESSAGES = 1000  # and of /v1/chat/completions (OpenAI clients send the whole chat)


class HistoryMessage(BaseModel):
    """A message of a client-kept conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1, max_length=QUESTION.high)


class Filtered(BaseModel):
    """A request that may limit its sources to some documents."""

    filter: dict[str, Any] | None = Field(
        default=None,
        description='only sources from the documents it admits, e.g. {"collection": "manuals"}, '
        '{"collection": ["a", "b"], "source": {"prefix": "docs/"}, "tags": {"team": "infra"}, '
        '"modified": {"gte": "2026-01-01"}}; none admitted: "I don\'t know" without the LLM',
    )

    def where(self) -> Filter | None:
        """The filter, parsed (`UsageError`: a 422 saying what is wrong)."""
        return Filter.from_json(self.filter)


class AskRequest(Filtered):
    """`POST /v1/ask` and each WebSocket question."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=QUESTION.high)
    top_k: int | None = Field(default=None, ge=TOP_K.low, le=TOP_K.high)
    retrieval: RetrievalMode | None = None

    stream: bool = True
    resumable: bool = Field(
        default=False,
        description="when the client disconnects, the answer goes on for RAG_RESUME_GRACE_S "
        "(default 30 s) so GET /v1/answers/{id}/events can resume it; without it, a "
        "disconnect stops the generation within one token",
    )
    conversation_id: str | None = Field(
        default=None,
        max_length=64,
        description="continue this conversation (its turns are the history); without it, and "
        "without `history`, the question starts a new one",
    )
    history: list[HistoryMessage] | None = Field(
        default=None,
        max_length=MAX_HISTORY,
        description="the messages before the question, for clients that keep the conversation "
        "themselves (instead of conversation_id)",
    )

    @model_validator(mode="after")
    def _one_history(self) -> AskRequest:
        if self.conversation_id is not None and self.history is not None:
            raise ValueError("send conversation_id or history, not both")
        return self

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return checked_question(value)


def checked_question(value: str) -> str:
    """One rule for every route's question: not blank, no NUL (C libraries stop at one)."""
    if not value.strip():
        raise ValueError("the question is blank")
    if "\x00" in value:
        raise ValueError("the question contains a NUL character")
    return value


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(Filtered):
    """`POST /v1/chat/completions`: the OpenAI request shape. Options this service does not use
    (temperature, n, tools ...) are accepted and ignored, as OpenAI clients send them freely."""

    model_config = ConfigDict(extra="allow")

    model: str = "rag"
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    top_k: int | None = Field(
        default=None, ge=TOP_K.low, le=TOP_K.high, description="sources to retrieve"
    )
    retrieval: RetrievalMode | None = None

    def question(self) -> str:
        """The last user message: what retrieval runs on."""
        for message in reversed(self.messages):
            if message.role == "user" and message.text.strip():
                return checked_question(message.text)
        raise ValueError("no user message with text")

    def history(self) -> list[Message]:
        """The messages before the last user message (the conversation so far), with text."""
        last = max(i for i, m in enumerate(self.messages) if m.role == "user" and m.text.strip())
        roles = {"system": "system", "developer": "system", "user": "user"} | {
            "assistant": "assistant"
        }
        return [
            Message(roles[m.role], m.text)
            for m in self.messages[:last]
            if m.role in roles and m.text.strip()
        ]
