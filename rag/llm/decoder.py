"""Several sequences through one llama.cpp context: each `step()` is one `llama_decode` call that
carries one token of every running sequence and, beside them, a chunk of a new prompt.

Sequence 0 holds the fixed head of every prompt (instructions and examples), evaluated once; a
new sequence copies its KV cells (`llama_memory_seq_cp`) for the tokens its prompt shares with
it and evaluates only the rest. The KV cache is unified (every sequence draws from one pool of
cells), so a sequence uses what its prompt needs, and its cells go back to the pool when it
ends (`llama_memory_seq_rm`). Sampling is greedy at temperature 0 (the argmax of the logits),
so an answer does not depend on the others decoded beside it, up to the rounding of batched
arithmetic.

Imported only in the engine's process (it loads llama.cpp's native library).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
import numpy as np

from rag.errors import LLMError, UsageError
from rag.llm.llamacpp import silence_llama_logs

HEAD = 0  # the sequence holding the shared head of the prompts
BATCH_TOKENS = 512  # tokens per llama_decode call (prompt chunks and running sequences)


@dataclass
class Running:
    """A sequence in the context: its prompt until evaluated, then the tokens it generates."""

    seq: int
    pending: list[int]  # prompt tokens not evaluated yet
    position: int  # the next token's position
    generated: int = 0
    rng: np.random.Generator | None = None
    output_index: int = field(default=-1)  # its row of logits in the last step, or -1


class Decoder:
    def __init__(
        self,
        model_path: Path,
        *,
        slots: int,
        context_tokens: int,
        threads: int,
        head: str = "",
    ) -> None:
        silence_llama_logs(llama_cpp)
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), params)
        if not model:
            raise UsageError(f"llama.cpp cannot load {model_path}")
        self.model = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.slots = slots
        self.context_tokens = context_tokens  # per sequence, as for one answer alone
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = context_tokens * slots + context_tokens // 2
        ctx_params.n_batch = BATCH_TOKENS
        ctx_params.n_ubatch = BATCH_TOKENS
        ctx_params.n_seq_max = slots + 1
        ctx_params.n_threads = threads
        ctx_params.n_threads_batch = threads
        ctx_params.kv_unified = True
        ctx_params.swa_full = True  # the head's cells stay whole to be copied
        self.ctx = llama_cpp.llama_init_from_model(model, ctx_params)
        if not self.ctx:
            raise UsageError(f"llama.cpp cannot make a context for {model_path}")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        self.head: list[int] = []
        if head:
            self.head = self.tokenize(head)
            self._evaluate_head()

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        llama_cpp.llama_model_free(self.model)

    def tokenize(self, text: str, bos: bool = True) -> list[int]:
        data = text.encode("utf-8")
        room = len(data) + 16
        tokens = (llama_cpp.llama_token * room)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, room, bos, False)
        if n < 0:
            raise LLMError(f"llama.cpp could not tokenize a text of {len(data)} bytes")
        return list(tokens[:n])

    def piece(self, token: int) -> bytes:
        buffer = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, 64, 0, False)
        if n < 0:
            buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, -n, 0, False)
        return buffer.raw[:n]

    def is_end(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def _evaluate_head(self) -> None:
        for start in range(0, len(self.head), BATCH_TOKENS):
            chunk = self.head[start : start + BATCH_TOKENS]
            self._fill([(token, start + i, HEAD, False) for i, token in enumerate(chunk)])
            self.batch.logits[len(chunk) - 1] = True
            self._decode()

    def start(self, seq: int, prompt: Sequence[int], rng: np.random.Generator | None) -> Running:
        """Sequence `seq` begins with `prompt`: the cells of the head it shares are copied."""
        if len(prompt) >= self.context_tokens:
            raise LLMError(
                f"the prompt takes {len(prompt)} tokens; the context holds {self.context_tokens}"
            )
        shared = 0
        for mine, theirs in zip(prompt, self.head, strict=False):
            if mine != theirs:
                break
            shared += 1
        shared = min(shared, len(prompt) - 1)  # the last prompt token is evaluated for logits
        if shared:  # the cells are shared, not copied: the cache is unified
            llama_cpp.llama_memory_seq_cp(self.memory, HEAD, seq, 0, shared)
        return Running(seq, list(prompt[shared:]), shared, rng=rng)

    def free(self, running: Running) -> None:
        llama_cpp.llama_memory_seq_rm(self.memory, running.seq, -1, -1)

    def step(self, sequences: Sequence[Running], last: Sequence[int | None]) -> None:
        """One llama_decode: for each running sequence its `last` token (None for one still
        reading its prompt); the rest of the batch goes to prompts, oldest first, in chunks.
        Afterwards each sequence that can sample has its `output_index` set."""
        rows: list[tuple[int, int, int, bool]] = []
        for running, token in zip(sequences, last, strict=True):
            running.output_index = -1
            if token is not None and not running.pending:
                running.output_index = len(rows)
                rows.append((token, running.position, running.seq, True))
                running.position += 1
        room = BATCH_TOKENS - len(rows)
        for running in sequences:
            if running.pending and room > 0:
                chunk, running.pending = running.pending[:room], running.pending[room:]
                for i, token in enumerate(chunk):
                    final = not running.pending and i == len(chunk) - 1
                    if final:
                        running.output_index = len(rows)
                    rows.append((token, running.position + i, running.seq, final))
                running.position += len(chunk)
                room -= len(chunk)
        if rows:
            self._fill(rows)
            self._decode()

    def sample(self, running: Running, temperature: float) -> int:
        pointer = llama_cpp.llama_get_logits_ith(self.ctx, running.output_index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        if temperature <= 0 or running.rng is None:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / temperature
        scaled -= scaled.max()
        weights = np.exp(scaled)
        return int(running.rng.choice(self.n_vocab, p=weights / weights.sum()))

    def _fill(self, rows: Sequence[tuple[int, int, int, bool]]) -> None:
        batch = self.batch
        batch.n_tokens = len(rows)
        for i, (token, position, seq, logits) in enumerate(rows):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits

    def _decode(self) -> None:
        status = llama_cpp.llama_decode(self.ctx, self.batch)
        if status != 0:
            raise LLMError(
                "llama.cpp found no room in its KV cache for the batch"
                if status == 1
                else f"llama_decode failed with status {status}"
            )
