"""Answering inside a conversation: each answer's events are watched as they pass (`TurnRecorder`)
and, however the answer ends, its turn is appended to the conversation: `done`, `cancelled`
(stopped by the user or the client leaving: the answer as far as it got) or `failed`. The
server wraps its async streams in it; `recorded` does the same for an answer in this process
(`rag chat`, `rag ask --conversation`)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

from rag.answer import Done, Error, Event, Sources, Token
from rag.conversation import ConversationStore, Turn
from rag.errors import RagError

log = logging.getLogger("rag")


class TurnRecorder:
    """What one answer in conversation `conversation_id` became, from its events."""

    def __init__(self, conversation_id: str, question: str) -> None:
        self.conversation_id, self.question = conversation_id, question
        self.sources: tuple[dict[str, Any], ...] = ()
        self.text: list[str] = []
        self.status = "cancelled"  # until a done or an error says otherwise
        self.error: str | None = None
        self.done: dict[str, Any] = {}

    def see(self, event: Event) -> Event:
        """Note `event`; a `Done` comes back naming the conversation."""
        match event:
            case Sources():
                self.sources = tuple(event.to_json())
            case Token():
                self.text.append(event.text)
            case Done():
                event = dataclasses.replace(event, conversation_id=self.conversation_id)
                self.status = "cancelled" if event.cancelled else "done"
                self.done = {k: v for k, v in event.to_json().items() if k in ("usage", "timings")}
            case Error():
                self.failed(event.message)
        return event

    def failed(self, message: str) -> None:
        self.status, self.error = "failed", message

    def turn(self) -> Turn:
        answer = "".join(self.text).strip()
        return Turn(
            self.question, answer, self.status, self.sources, self.done, self.error, time.time()
        )

    def save(self, store: ConversationStore) -> None:
        """Append the turn; a store that fails is logged, the answer already reached its user."""
        try:
            store.append(self.conversation_id, self.turn())
        except RagError as err:
            log.warning(
                "the turn of conversation %s was not recorded: %s", self.conversation_id, err
            )


def recorded(
    events: Iterator[Event], store: ConversationStore, conversation_id: str, question: str
) -> Iterator[Event]:
    """`events` with the conversation named in `done`, the turn appended when they end."""
    recorder = TurnRecorder(conversation_id, question)
    try:
        for event in events:
            yield recorder.see(event)
    except Exception as err:
        recorder.failed(str(err))
        raise
    finally:
        recorder.save(store)
        close = getattr(events, "close", None)
        if close is not None:
            close()
