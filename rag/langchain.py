"""The pipeline the LangChain way, for notebook users: a `BaseRetriever` over our index and a
Runnable whose `.invoke/.stream/.astream` yield the same tokens as `Answerer.stream`.

LangChain is needed only here (and for the text splitters); the core does not import it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableGenerator
from pydantic import ConfigDict

from rag.answer import Answerer, Token
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
    """A Runnable from a question (a string, or a dict with "question") to answer text.

    `chain.stream(q)` yields the answer's tokens as the LLM produces them; `chain.invoke(q)`
    returns them joined."""

    def question_of(item: Any) -> str:
        return str(item["question"] if isinstance(item, dict) else item)

    def tokens(inputs: Iterator[Any]) -> Iterator[str]:
        for item in inputs:
            for event in answerer.stream(question_of(item)):
                if isinstance(event, Token):
                    yield event.text

    async def atokens(inputs: AsyncIterator[Any]) -> AsyncIterator[str]:
        import asyncio

        async for item in inputs:
            stream = answerer.stream(question_of(item))
            while True:  # each next() may block on the model: run it off the event loop
                event = await asyncio.to_thread(next, stream, None)
                if event is None:
                    break
                if isinstance(event, Token):
                    yield event.text

    return RunnableGenerator(tokens, atokens)
