"""Any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, OpenAI itself) through the
official `openai` client, streaming chat completions, with connect and read timeouts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from rag.dependencies import require
from rag.errors import LLMError
from rag.prompt import INSTRUCTIONS, Prompt
from rag.settings import Settings


class OpenAICompatibleLLM:
    context_tokens = 8192

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "none",
        timeout_s: float = 30.0,
        temperature: float = 0.0,
        max_tokens: int = 48,
    ) -> None:
        openai = require("openai", needed_for="the openai LLM", install="openai")
        self._openai = openai
        self._client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=openai.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            max_retries=0,
        )
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.model = model
        self.name = f"openai:{model}"
        self.temperature = temperature
        self.max_tokens = max_tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleLLM:
        return cls(
            settings.openai_base_url,
            settings.openai_model,
            api_key=settings.openai_api_key,
            timeout_s=settings.openai_timeout_s,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
        )

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1  # the server's tokenizer is unknown: about 4 characters a token

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        history = sorted(prompt.history, key=lambda m: m.role != "system")  # stable: in order
        messages: Any = [
            {"role": "system", "content": INSTRUCTIONS},  # first: a client's comes after it
            *({"role": m.role, "content": m.content} for m in history),
            {"role": "user", "content": prompt.context},  # the sources only in the last turn
        ]
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                stream=True,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
            chunks = 0
            with response:
                for chunk in response:
                    chunks += 1
                    if cancel is not None and cancel.is_set():
                        return
                    if not chunk.choices:
                        continue
                    text = chunk.choices[0].delta.content
                    if text:
                        yield text
            if chunks == 0:  # e.g. a web page where the API should be
                raise LLMError(
                    f"the LLM server at {self.base_url} sent no completion chunks: is it an "
                    "OpenAI-compatible server (RAG_OPENAI_BASE_URL usually ends in /v1)?"
                )
        except self._openai.APITimeoutError:
            raise LLMError(
                f"the LLM server at {self.base_url} did not answer within {self.timeout_s:g} s"
            ) from None
        except self._openai.APIError as err:
            raise LLMError(f"the LLM server at {self.base_url} failed: {_describe(err)}") from None
        except (ValueError, KeyError, AttributeError, TypeError) as err:
            raise LLMError(
                f"the LLM server at {self.base_url} sent a malformed reply: {err}"
            ) from None


def _describe(err: Exception) -> str:
    message = getattr(err, "message", None) or str(err) or type(err).__name__
    return " ".join(str(message).split())[:300]
