from __future__ import annotations

import asyncio
from pathlib import Path

from langchain_core.documents import Document

from rag.answer import Answerer
from rag.embeddings import HashingEmbedder
from rag.ingestion import ingest
from rag.langchain import RagRetriever, answer_chain
from rag.llm.mock import MockLLM
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.stores import folder as store

QUESTION = "Who won Super Bowl 50, the Broncos?"


def answerer(corpus: Path, settings: Settings) -> Answerer:
    ingest([corpus], settings, HashingEmbedder())
    retriever = Retriever(store.load(settings.index_dir), HashingEmbedder())
    return Answerer(retriever, MockLLM(), settings.replace(min_score=0.0))


def test_retriever_returns_documents_with_metadata(corpus: Path, settings: Settings) -> None:
    pipeline = answerer(corpus, settings)
    docs = RagRetriever(retriever=pipeline.retriever, k=2).invoke(QUESTION)
    assert len(docs) == 2 and all(isinstance(d, Document) for d in docs)
    assert docs[0].metadata["source"] == "docs/football.md"
    assert {"title", "start", "end", "score", "dense_score", "bm25_score"} <= docs[
        0
    ].metadata.keys()


def test_chain_streams_the_same_tokens_sync_and_async(corpus: Path, settings: Settings) -> None:
    pipeline = answerer(corpus, settings)
    expected, _, _ = pipeline.answer(QUESTION)
    chain = answer_chain(pipeline)
    streamed = list(chain.stream(QUESTION))
    assert len(streamed) > 3
    assert "".join(streamed).strip() == expected
    assert chain.invoke({"question": QUESTION}).strip() == expected

    async def collect() -> list[str]:
        return [piece async for piece in chain.astream(QUESTION)]

    assert asyncio.run(collect()) == streamed
