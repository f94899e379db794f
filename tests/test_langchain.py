from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.documents import Document

from rag.answer import Answerer
from rag.langchain import RagRetriever, answer_chain
from rag.llm.mock import MockLLM
from rag.settings import Settings
from tests.conftest import indexed_retriever

QUESTION = "Who won Super Bowl 50, the Broncos?"


def answerer(corpus: Path, settings: Settings) -> Answerer:
    retriever = indexed_retriever(corpus, settings)
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


def test_the_chain_takes_a_conversation_as_langchain_messages(
    corpus: Path, settings: Settings
) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    from rag.conversation import Message
    from rag.langchain import question_and_history

    pipeline = answerer(corpus, settings)
    conversation = [
        SystemMessage("Be brief."),
        HumanMessage("Where was Super Bowl 50 played?"),
        AIMessage("Levi's Stadium"),
        HumanMessage("Who was its quarterback?"),
    ]
    question, history = question_and_history(conversation)
    assert question == "Who was its quarterback?"
    assert history == [
        Message("system", "Be brief."),
        Message("user", "Where was Super Bowl 50 played?"),
        Message("assistant", "Levi's Stadium"),
    ]
    expected, _, done = pipeline.answer(question, history=history)
    assert done.history_turns == 1
    chain = answer_chain(pipeline)
    assert "".join(chain.stream(conversation)).strip() == expected
    as_pairs = [("human", "Where was Super Bowl 50 played?"), ("ai", "Levi's Stadium")]
    as_dict = {"question": "Who was its quarterback?", "history": as_pairs}
    assert chain.invoke(as_dict).strip() == expected
    with pytest.raises(ValueError, match="no human message"):
        question_and_history([AIMessage("hello")])
    with pytest.raises(ValueError, match="role 'tool'"):
        question_and_history([("tool", "x"), ("human", "q")])
