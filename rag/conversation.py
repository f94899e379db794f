"""A conversation as retrieval reads it: the earlier messages of a chat, before the question.

A follow-up ("Who won it?") names nothing by itself; what it refers to is in the turns before
it. Retrieval searches the question alone and the question with the earlier user turns before
it, and fuses the two rankings (`Retriever.search`'s `context`): the question alone keeps its
weight when the conversation has moved to another subject, the context finds what a pronoun
points at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "developer", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One chat message, as OpenAI clients send them."""

    role: str
    content: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(str(data["role"]), str(data.get("content") or ""))


def search_context(history: Sequence[Message], turns: int = 2) -> str:
    """What a follow-up is searched with besides itself: the last `turns` user messages before
    it, oldest first (the assistant's answers add little a search can use, and a system message
    nothing)."""
    said = [m.content.strip() for m in history if m.role == "user" and m.content.strip()]
    return " ".join(said[-turns:]) if turns > 0 else ""


def recent_turns(history: Sequence[Message], turns: int) -> list[Message]:
    """The messages of the last `turns` questions (each question with the answers after it);
    system messages are not turns and are left out."""
    starts = [i for i, m in enumerate(history) if m.role == "user"]
    if turns <= 0 or not starts:
        return []
    first = starts[-turns] if turns < len(starts) else starts[0]
    return [m for m in history[first:] if m.role in ("user", "assistant")]
