"""Conversations: the earlier messages of a chat as retrieval and the prompt read them, and the
turns a server keeps (the `ConversationStore` seam, one per index store).

A follow-up ("Who won it?") names nothing by itself; what it refers to is in the questions
before it. A question that refers back (a pronoun such as it, its, they, there, this) is
searched twice and the two rankings fused (`Retriever.search`'s `context`): alone, and read
with the earlier questions (their vectors added to its own, their words to its words). A
question that names its subject is searched alone, so a conversation that moves to another
subject does not pull it back. Measured on squad-dev-a's follow-ups (README).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from rag.settings import Settings

ROLES = ("system", "developer", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One chat message, as OpenAI clients send them."""

    role: str
    content: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(str(data["role"]), str(data.get("content") or ""))


# Words that point back at something named before; a question holding one is a follow-up.
REFERS_BACK = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|he|him|his|she|her|hers|there|this|that|these|"
    r"those|the same)\b",
    re.IGNORECASE,
)
CONTEXT_WEIGHT = 0.7  # a follow-up's ranking with the earlier questions, against its own


@dataclass(frozen=True)
class SearchContext:
    """What retrieval reads of a conversation for its next question."""

    questions: tuple[str, ...]  # the earlier questions, oldest first
    weight: float  # how much the ranking read with them counts (0: the question alone)


def search_context(question: str, history: Sequence[Message], turns: int = 2) -> SearchContext:
    """The last `turns` user messages before `question` (the assistant's answers add little a
    search can use, a system message nothing), weighted `CONTEXT_WEIGHT` if the question
    refers back to something, else 0."""
    said = [m.content.strip() for m in history if m.role == "user" and m.content.strip()]
    questions = tuple(said[-turns:]) if turns > 0 else ()
    refers = bool(questions) and REFERS_BACK.search(question) is not None
    return SearchContext(questions, CONTEXT_WEIGHT if refers else 0.0)


def recent_turns(history: Sequence[Message], turns: int) -> list[Message]:
    """The messages of the last `turns` questions (each question with the answers after it);
    system messages are not turns and are left out."""
    starts = [i for i, m in enumerate(history) if m.role == "user"]
    if turns <= 0 or not starts:
        return []
    first = starts[-turns] if turns < len(starts) else starts[0]
    return [m for m in history[first:] if m.role in ("user", "assistant")]


STATUSES = ("done", "cancelled", "failed")
ID_PATTERN = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Turn:
    """One question and what became of it: `done`, `cancelled` (the client left or stopped it:
    the answer is what was produced) or `failed` (`error` says why)."""

    question: str
    answer: str
    status: str
    sources: tuple[dict[str, Any], ...] = ()  # as the sources event sent them
    done: dict[str, Any] = field(default_factory=dict)  # the done event's usage and timings
    error: str | None = None
    at: float = 0.0  # when it was recorded (Unix time)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sources": list(self.sources)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Turn:
        return cls(**{**data, "sources": tuple(data.get("sources", ()))})


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str  # its first question, shortened
    created: float
    updated: float
    turns: tuple[Turn, ...] = ()
    n_turns: int = 0

    def messages(self) -> list[Message]:
        """The conversation as chat messages, for the next question: every question, and the
        answer of each that was answered in full."""
        said: list[Message] = []
        for turn in self.turns:
            said.append(Message("user", turn.question))
            if turn.status == "done" and turn.answer:
                said.append(Message("assistant", turn.answer))
        return said

    def to_json(self, with_turns: bool = True) -> dict[str, Any]:
        head = {"id": self.id, "title": self.title, "created": self.created}
        head |= {"updated": self.updated, "n_turns": self.n_turns}
        return head | ({"turns": [t.to_json() for t in self.turns]} if with_turns else {})


@dataclass(frozen=True)
class Limits:
    """What a conversation store keeps: turns per conversation (the oldest dropped), the number
    of conversations (the least recently used dropped) and their age."""

    turns: int = 100
    conversations: int = 1000
    max_age_s: float = 30 * 86400


def limits(settings: Settings) -> Limits:
    return Limits(
        settings.conversation_turns, settings.max_conversations, settings.conversation_days * 86400
    )


def title_of(question: str) -> str:
    words = " ".join(question.split())
    return words if len(words) <= TITLE_CHARS else words[: TITLE_CHARS - 1] + "…"


TITLE_CHARS = 80


class ConversationStore(Protocol):
    """Where conversations are kept: beside the index (SQLite by the FAISS folder, a table in
    PostgreSQL), so every worker of a server sees the same. `owner` keys every row (one API key
    today: ""), so per-user ownership needs no migration."""

    def create(self, title: str, owner: str = "") -> str: ...

    def get(self, conversation_id: str, owner: str = "") -> Conversation | None:
        """The conversation with its turns, oldest first; None when unknown."""
        ...

    def append(self, conversation_id: str, turn: Turn) -> None:
        """Record a turn at the end, in one transaction (a crash never leaves half of one)."""
        ...

    def page(self, limit: int, offset: int, owner: str = "") -> tuple[list[Conversation], int]:
        """Conversations without their turns, most recently updated first, and how many."""
        ...

    def delete(self, conversation_id: str, owner: str = "") -> bool: ...
