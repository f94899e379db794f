"""Where `rag ask` and `rag chat` get an answer's events: a running server (`--url`) or the
pipeline in this process, in a conversation or not. In this process the conversations are the
index's own (kept beside it, as a server keeps them)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import get_args

from rag.answer import Answerer, Event
from rag.chat import recorded
from rag.cli.filters import add_filter_options, filter_json, filter_of
from rag.conversation import ConversationStore, title_of
from rag.errors import ConversationNotFound
from rag.retrieval import MODES
from rag.settings import LLMName, Settings

NEW = "new"  # --conversation new: start one


def add_answer_options(parser: argparse.ArgumentParser) -> None:
    """The options `rag ask` and `rag chat` share: the backend, the sources, the server's key."""
    parser.add_argument(
        "--llm",
        choices=get_args(LLMName),
        default=None,
        help="llamacpp (default, $RAG_LLM), mock, extractive (no model) or openai",
    )
    parser.add_argument("--k", dest="top_k", type=int, default=None, help="sources in the prompt")
    parser.add_argument("--retrieval", choices=MODES, default=None, help="default hybrid")
    parser.add_argument(
        "--api-key", default=None, help="Bearer key for --url (default: $RAG_API_KEY)"
    )
    add_filter_options(parser)


class Asker:
    """Answers questions for the command line; `conversation_id` (None: none; NEW: start one at
    the next question) follows the conversation as the answers name it."""

    def __init__(
        self, args: argparse.Namespace, settings: Settings, conversation_id: str | None
    ) -> None:
        self.args, self.settings = args, settings
        self.conversation_id = conversation_id
        self._answerer: Answerer | None = None
        self._conversations: ConversationStore | None = None
        if args.url:
            local_only = [f"--{n}" for n in ("llm", "index", "model") if getattr(args, n, None)]
            if local_only:
                print(
                    f"note: {', '.join(local_only)} only apply without --url; the server at "
                    f"{args.url} answers with its own settings",
                    file=sys.stderr,
                )

    def events(self, question: str) -> Iterator[Event]:
        if self.args.url:
            return self._remote(question)
        return self._local(question)

    def _remote(self, question: str) -> Iterator[Event]:
        from rag.client import ask_events

        return ask_events(
            self.args.url,
            question,
            top_k=self.args.top_k,
            retrieval=self.args.retrieval,
            api_key=self.args.api_key or self.settings.api_key or None,
            conversation_id=None if self.conversation_id in (None, NEW) else self.conversation_id,
            where=filter_json(self.args) or None,
        )

    def _local(self, question: str) -> Iterator[Event]:
        answerer = self.answerer()
        where = filter_of(self.args)
        if self.conversation_id is None:
            return answerer.stream(question, where=where)
        store = self.conversations()
        if self.conversation_id == NEW:
            self.conversation_id = store.create(title_of(question))
            history = []
        else:
            found = store.get(self.conversation_id)
            if found is None:
                raise ConversationNotFound(
                    f"no conversation {self.conversation_id!r} in {answerer_where(self.settings)}"
                )
            history = found.messages()
        events = answerer.stream(question, history=history, where=where)
        return recorded(events, store, self.conversation_id, question)

    def answerer(self) -> Answerer:
        """The pipeline, built at the first question (the models load once)."""
        if self._answerer is None:
            from rag.embeddings import make_embedder
            from rag.llm import make_llm
            from rag.retrieval import Retriever
            from rag.stores import make_store

            embedder = make_embedder(self.settings)
            retriever = Retriever(make_store(self.settings).open(), embedder)
            self._answerer = Answerer(retriever, make_llm(self.settings), self.settings)
            embedder.embed(["warm up"])  # the timings then show the answer's own cost
        return self._answerer

    def conversations(self) -> ConversationStore:
        if self._conversations is None:
            from rag.stores import make_store

            self._conversations = make_store(self.settings).conversations()
        return self._conversations


def answerer_where(settings: Settings) -> str:
    from rag.stores import make_store

    return make_store(settings).where
