"""Fuzz the HTTP API from its own OpenAPI schema with schemathesis (valid and invalid requests
for every operation): never a 5xx, and every 4xx is JSON with a message. (Schemathesis' pytest
plugin does not run under pytest 9 yet, so its strategies are driven by Hypothesis directly.)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok

from rag.embeddings import HashingEmbedder
from rag.ingestion import ingest
from rag.llm.mock import MockLLM
from rag.server.app import create_app
from rag.settings import Settings
from tests.conftest import write_corpus
from tests.server.live import LiveServer

Operation = schemathesis.APIOperation[Any, Any, Any, Any]
EXAMPLES_PER_OPERATION = 60  # x 8 operations x valid and invalid: a few hundred requests


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    config = Settings(
        index_dir=root / "index",
        embedding_model="hashing",
        chunk_size_tokens=40,
        chunk_overlap_tokens=8,
        min_score=0.0,
        upload_dir=root / "uploads",
        max_queue=64,
    )
    ingest([write_corpus(root / "docs")], config, HashingEmbedder())
    app = create_app(config, embedder=HashingEmbedder(), llm=MockLLM())
    with LiveServer(app) as server:
        yield server.url


@pytest.fixture(scope="module")
def api_schema(api_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json")


def fuzz(operation: Operation, mode: schemathesis.GenerationMode) -> list[int]:
    """`EXAMPLES_PER_OPERATION` generated requests to one operation; their status codes."""
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case[Operation]) -> None:
        response = case.call(timeout=30)
        statuses.append(response.status_code)
        where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
        assert response.status_code < 500, where[:600]
        if response.status_code >= 400:
            kind = {k.lower(): v for k, v in response.headers.items()}.get("content-type", [""])
            assert kind[0].startswith("application/json"), where[:600]
            assert response.json()["error"]["message"], where[:600]

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
        assert mode is schemathesis.GenerationMode.NEGATIVE and not statuses
    return statuses


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_no_generated_request_makes_the_server_fail(
    api_url: str, api_schema: schemathesis.BaseSchema, mode: schemathesis.GenerationMode
) -> None:
    operations = [cast(Ok[Operation], result).ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8  # every route but the page (and the WebSocket)
    statuses = [status for operation in operations for status in fuzz(operation, mode)]
    print(f"{mode.value}: {len(statuses)} requests, statuses {sorted(Counter(statuses).items())}")
    assert len(statuses) >= 150, len(statuses)  # a few hundred over both modes
    if mode is schemathesis.GenerationMode.NEGATIVE:
        assert sum(400 <= status < 500 for status in statuses) > len(statuses) // 2
    assert httpx.get(f"{api_url}/readyz", timeout=10).status_code == 200  # still serving
