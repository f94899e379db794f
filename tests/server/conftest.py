"""Fixtures for the HTTP tests: an indexed tiny corpus and live servers over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from rag.embeddings import HashingEmbedder
from rag.ingestion import ingest
from rag.llm import LLM
from rag.llm.mock import MockLLM
from rag.server.app import create_app
from rag.settings import Settings
from tests.server.live import LiveServer

Serve = Callable[..., LiveServer]


@pytest.fixture
def indexed(corpus: Path, settings: Settings, tmp_path: Path) -> Settings:
    ingest([corpus], settings, HashingEmbedder())
    return settings.replace(min_score=0.0, llm="mock", upload_dir=tmp_path / "uploads")


def process_env(settings: Settings, **more: str) -> dict[str, str]:
    """`RAG_*` variables for a `rag serve` process over the `indexed` corpus."""
    return {
        "RAG_INDEX_DIR": str(settings.index_dir),
        "RAG_EMBEDDING_MODEL": "hashing",
        "RAG_MIN_SCORE": "0",
        "RAG_LLM": "mock",
        **more,
    }


@pytest.fixture
def serve(indexed: Settings) -> Iterator[Serve]:
    """`serve(llm=..., **settings)` starts a live server; all stop at the end of the test."""
    with ExitStack() as stack:

        def start(llm: LLM | None = None, **changes: Any) -> LiveServer:
            app = create_app(
                indexed.replace(**changes), embedder=HashingEmbedder(), llm=llm or MockLLM()
            )
            return stack.enter_context(LiveServer(app))

        yield start
