"""The pipeline the LangChain way, for notebook users: a `BaseRetriever` over our index and a
Runnable whose `.invoke/.stream/.astream` yield the same tokens as `Answerer.stream`.

LangChain is needed only here (and for the text splitters); the core does not import it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableGenerator
from pydantic import ConfigDict

from rag.answer import Answerer, Token
from rag.conversation import Message
from rag.retrieval import Hit, Mode, Retriever


def to_document(hit: Hit) -> Document:
    chunk = hit.chunk
    return Document(
        page_content=chunk.text,
        id=chunk.id,
        metadata={
            "source": chunk.source,
            "title": chunk.title,
            "chunk_no": chunk.chunk_no,
            "start": chunk.start,
            "end": chunk.end,
            "score": hit.score,
            "dense_score": hit.dense_score,
            "bm25_score": hit.bm25_score,
        },
    )


class RagRetriever(BaseRetriever):
    """`retriever.invoke("question")` -> Documents with source, offsets and scores in metadata."""

    retriever: Retriever
    k: int = 5
    mode: Mode = "hybrid"

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [to_document(hit) for hit in self.retriever.search(query, self.k, mode=self.mode)]


def answer_chain(answerer: Answerer) -> Runnable[Any, str]:
    """A Runnable from a question to answer text. The input is a string, a dict with
    "question" (and optionally "history", a list of messages), or a list of LangChain messages
    (`HumanMessage`, `AIMessage`, `SystemMessage`, or `(role, text)` pairs): the last human
    message is the question, the ones before it the conversation it follows up on.

    `chain.stream(q)` yields the answer's tokens as the LLM produces them; `chain.invoke(q)`
    returns them joined."""

    def tokens(inputs: Iterator[Any]) -> Iterator[str]:
        for item in inputs:
            question, history = question_and_history(item)
            for event in answerer.stream(question, history=history):
                if isinstance(event, Token):
                    yield event.text

    async def atokens(inputs: AsyncIterator[Any]) -> AsyncIterator[str]:
        import asyncio

        async for item in inputs:
            question, history = question_and_history(item)
            stream = answerer.stream(question, history=history)
            while True:  # each next() may block on the model: run it off the event loop
                event = await asyncio.to_thread(next, stream, None)
                if event is None:
                    break
                if isinstance(event, Token):
                    yield event.text

    return RunnableGenerator(tokens, atokens)


ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"} | {
    "system": "system"
}


def question_and_history(item: Any) -> tuple[str, list[Message]]:
    """The question a chain input asks and the conversation before it."""
    if isinstance(item, dict):
        history = [_message(m) for m in item.get("history") or []]
        return str(item["question"]), [m for m in history if m.content.strip()]
    if isinstance(item, list):
        messages = [_message(m) for m in item]
        asked = [i for i, m in enumerate(messages) if m.role == "user" and m.content.strip()]
        if not asked:
            raise ValueError("the messages hold no human message to answer")
        last = asked[-1]
        return messages[last].content, [m for m in messages[:last] if m.content.strip()]
    return str(item), []


def _message(message: Any) -> Message:
    if isinstance(message, BaseMessage):
        content = message.content
        role, text = message.type, content if isinstance(content, str) else message.text
    elif isinstance(message, dict):
        role, text = message.get("role", ""), message.get("content", "")
    else:
        role, text = message
    if role not in ROLES:
        raise ValueError(f"a message of role {role!r}: use human, ai or system")
    return Message(ROLES[role], str(text))
