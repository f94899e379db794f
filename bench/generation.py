"""Generation speed (a section of `python -m bench`): Gemma 3 270M through our `llamacpp` backend
vs `llama_cpp.Llama` called directly with the same model file, context, threads and sampling,
on the same prompts, alternating which goes first. Prefill tokens/s (prompt tokens over the time
to the first token) and decode tokens/s (the tokens after the first over the time they took).
Each prompt starts with a line of its own, so neither side reuses a cached prompt head: prefill
is measured in full. The ratio should be about 1: the backend adds a lock and a cancel check.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.report import table
from rag.llm.gguf import default_model_path
from rag.llm.llamacpp import LlamaCppLLM
from rag.prompt import STOP, Prompt, build_prompt
from rag.settings import Settings
from rag.squad import load_articles

Stream = Callable[[str], Iterator[str]]


def prompts(dataset: Path, n: int, count: Callable[[str], int]) -> list[str]:
    """n prompts as the service builds them (gold paragraph as the one source), each made
    unique from its first line."""
    from rag.chunks import Chunk
    from rag.retrieval import Hit

    pairs = [(a, q) for a in load_articles(dataset) for q in a.questions][:: 4961 // n + 1][:n]
    texts = []
    for number, (article, question) in enumerate(pairs):
        start, end = question.paragraph
        text = article.text[start:end]
        hit = Hit(1, 1.0, Chunk("x", "x", article.title, 0, start, end, text, ""))
        prompt = build_prompt(question.text, [hit], count, 1500, sentences_per_source=3)
        texts.append(f"Set {number}.\n{prompt.text}")
    return texts


def timed(stream: Stream, text: str) -> tuple[float, int, float]:
    """(seconds to the first token, tokens, seconds from the first token to the last)."""
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    for _ in stream(text):
        last = time.perf_counter()
        if tokens == 0:
            first = last
        tokens += 1
    return first - started, tokens, last - first


def run(dataset: Path, n: int = 20) -> dict[str, Any]:
    import llama_cpp

    settings = Settings()
    path = default_model_path()
    threads = settings.llm_threads or os.cpu_count() or 1
    ours = LlamaCppLLM.from_settings(settings)
    raw = llama_cpp.Llama(
        model_path=str(path), n_ctx=settings.llm_context_tokens, n_threads=threads, verbose=False
    )

    def through_ours(text: str) -> Iterator[str]:
        return ours.stream(Prompt(text, "", (), ""))

    def direct(text: str) -> Iterator[str]:
        for part in raw.create_completion(
            text,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            stop=STOP,
            stream=True,
        ):
            text = part["choices"][0]["text"]  # type: ignore[index]
            if text:  # as our backend: pieces held back while a stop sequence may follow
                yield text

    texts = prompts(dataset, n, ours.count_tokens)
    sides: dict[str, Stream] = {"ours": through_ours, "llama_cpp": direct}
    totals = {name: {"prefill_s": 0.0, "decode_s": 0.0, "decoded": 0} for name in sides}
    timed(through_ours, "warm up"), timed(direct, "warm up")
    prompt_tokens = 0
    for number, text in enumerate(texts):
        prompt_tokens += ours.count_tokens(text)
        order = list(sides) if number % 2 == 0 else list(reversed(sides))
        for name in order:
            prefill_s, tokens, decode_s = timed(sides[name], text)
            totals[name]["prefill_s"] += prefill_s
            totals[name]["decode_s"] += decode_s
            totals[name]["decoded"] += max(0, tokens - 1)
    rows = {
        name: {
            "prefill_tokens_per_s": round(prompt_tokens / t["prefill_s"], 1),
            "decode_tokens_per_s": round(t["decoded"] / t["decode_s"], 1) if t["decode_s"] else 0,
            "decoded_tokens": t["decoded"],
        }
        for name, t in totals.items()
    }
    return {
        "model": path.name,
        "threads": threads,
        "prompts": len(texts),
        "mean_prompt_tokens": round(prompt_tokens / len(texts)),
        "rows": rows,
        "prefill_ratio": round(
            rows["ours"]["prefill_tokens_per_s"] / rows["llama_cpp"]["prefill_tokens_per_s"], 3
        ),
        "decode_ratio": round(
            rows["ours"]["decode_tokens_per_s"] / rows["llama_cpp"]["decode_tokens_per_s"], 3
        ),
    }


def render(r: dict[str, Any]) -> str:
    ours, raw = r["rows"]["ours"], r["rows"]["llama_cpp"]

    def columns(row: dict[str, Any]) -> list[object]:
        return [row["prefill_tokens_per_s"], row["decode_tokens_per_s"], row["decoded_tokens"]]

    return "\n".join(
        [
            "## Generation",
            "",
            f"{r['model']} on {r['threads']} threads, {r['prompts']} prompts as the service "
            f"builds them (mean {r['mean_prompt_tokens']} tokens, no cached head), greedy, "
            "alternating which side goes first:",
            "",
            *table(
                ["", "prefill tokens/s", "decode tokens/s", "tokens decoded"],
                "lrrr",
                [
                    ["our `llamacpp` backend", *columns(ours)],
                    ["`llama_cpp.Llama` directly", *columns(raw)],
                    ["**ratio, ours / direct**", r["prefill_ratio"], r["decode_ratio"], ""],
                ],
            ),
            "",
        ]
    )
