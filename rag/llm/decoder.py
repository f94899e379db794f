"""Several sequences through one llama.cpp context, each answer the same text as it would be
alone: each `step()` is one `llama_decode` call, either one token of every running sequence or
a chunk of one new prompt.

Sequence 0 holds the fixed head of every prompt (instructions and examples), evaluated once; a
new sequence starts from a copy of its KV cells and evaluates only the rest of its prompt.

An answer decoded beside others is the answer decoded alone (greedy sampling is the argmax of
the logits, so this needs the logits to the last bit). llama.cpp's CPU kernels round the same
row differently depending on what shares its call, so the context is set up so that a row
meets the same kernels and the same KV layout whoever else runs:
- each sequence has a KV stream of its own (not a unified cache), so its cells sit at the same
  places alone or not, and attention (flash attention: only the order of a sequence's own cells
  counts) sees the same values in the same order;
- a prompt is read in calls of its own, in the same chunks whoever else is running;
- a decoding call is one ubatch of at least two sequences (filler rows fill the gaps in their
  numbers, which would split it, and sit beside a lone one): with one sequence of one row,
  flash attention splits the cache across threads, which rounds differently (with one slot
  nothing is decoded beside anything, and a lone row goes alone: a filler costs ~13% of a
  token's time);
- weights are not repacked for the CPU (repacked Q4_K kernels treat rows in groups of four).
With one slot nothing shares a call, so it runs as llama-cpp-python's `Llama` does in-process:
repacked weights, and the sequence keeps its last prompt's cells, so the next prompt evaluates
only what differs (often more than the head: consecutive questions bring the same sources).
The cost of these choices is measured in the `engine` section of `python -m bench`.

Imported only in the engine's process (it loads llama.cpp's native library).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
import numpy as np
from numpy.typing import NDArray

from rag.errors import LLMError, UsageError
from rag.llm.llamacpp import silence_llama_logs

HEAD = 0  # the sequence holding the shared head of the prompts
BATCH_TOKENS = 512  # tokens per llama_decode call at most
PROMPT_CHUNK = 512  # prompt tokens read per call (the running answers wait for one chunk)
FLASH_ATTENTION = 1  # LLAMA_FLASH_ATTN_TYPE_ENABLED


@dataclass
class Running:
    """A sequence in the context: its prompt until evaluated, then the tokens it generates."""

    seq: int
    pending: list[int]  # prompt tokens not evaluated yet
    position: int  # the next token's position
    generated: int = 0
    rng: np.random.Generator | None = None
    output_index: int = field(default=-1)  # its row of logits in the last step, or -1
    prompt: list[int] = field(default_factory=list)  # the whole prompt
    reusable: bool = True  # its cells can be kept when it ends (no call of it failed)

    def evaluated(self) -> list[int]:
        """The prompt tokens its cells hold."""
        return self.prompt[: min(self.position, len(self.prompt))]


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens `a` and `b` have in common at their start."""
    shared = 0
    for mine, theirs in zip(a, b, strict=False):
        if mine != theirs:
            break
        shared += 1
    return shared


def starting_point(
    prompt: Sequence[int], head: Sequence[int], kept: Sequence[int]
) -> tuple[int, bool]:
    """(prompt tokens already in the cells, whether they are the sequence's own `kept` cells
    rather than a copy of the head's); the last prompt token is always evaluated, for logits."""
    from_head, from_kept = shared_prefix(prompt, head), shared_prefix(prompt, kept)
    own = from_kept > 0 and from_kept >= from_head
    return min(from_kept if own else from_head, len(prompt) - 1), own


Row = tuple[int, int, int, bool]  # token, position, sequence, whether its logits are wanted


@dataclass
class Call:
    """One llama_decode: its rows, whether it decodes (or reads a prompt), and the filler rows'
    (sequence, position) whose cells are dropped afterwards."""

    rows: list[Row]
    decoding: bool
    fillers: list[tuple[int, int]] = field(default_factory=list)


def next_call(
    sequences: Sequence[Running], last: Sequence[int | None], pad: int, decoded_last: bool
) -> Call:
    """The next llama_decode. When none is decoding, or every other call while some are, the
    next chunk of the oldest unread prompt, alone in its call. Otherwise the `last` token of
    each decoding sequence (None: still reading its prompt), in one ubatch: llama.cpp splits a
    batch whose sequences are not consecutive numbers into one ubatch per run, and a ubatch of
    one row takes other kernels (rounding otherwise) than several, so the gaps between them get
    a filler row, and so does the sequence after a lone one (`pad` is the last number; with one
    slot, `pad` is 0: no answer is ever decoded beside another, and a lone row goes alone).
    Sets each sequence's `output_index` (-1: no logits for it in this call)."""
    decoding = {
        running.seq: (running, token)
        for running, token in zip(sequences, last, strict=True)
        if token is not None and not running.pending
    }
    reading = next((r for r in sequences if r.pending), None)
    for running in sequences:
        running.output_index = -1
    if reading is not None and (not decoding or decoded_last):
        chunk, reading.pending = reading.pending[:PROMPT_CHUNK], reading.pending[PROMPT_CHUNK:]
        rows = [(t, reading.position + i, reading.seq, False) for i, t in enumerate(chunk)]
        reading.position += len(chunk)
        if not reading.pending:
            rows[-1] = (*rows[-1][:3], True)
            reading.output_index = len(rows) - 1
        return Call(rows, decoding=False)
    if not decoding:
        return Call([], decoding=True)
    low, high = min(decoding), max(decoding)
    if high == low and pad:
        high += 1
    positions = {running.seq: running.position for running in sequences}
    call = Call([], decoding=True)
    filler_token = next(iter(decoding.values()))[1]
    for seq in range(low, high + 1):
        if seq in decoding:
            running, token = decoding[seq]
            running.output_index = len(call.rows)
            call.rows.append((token, running.position, seq, True))
            running.position += 1
        else:  # a free sequence, or one reading its prompt: a row its next prompt row replaces
            position = positions.get(seq, 0)
            call.fillers.append((seq, position))
            call.rows.append((filler_token, position, seq, False))
    return call


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
        params.use_extra_bufts = slots == 1  # repacked weights only where no row is shared
        model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), params)
        if not model:
            raise UsageError(f"llama.cpp cannot load {model_path}")
        self.model = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.slots = slots
        self.pad = slots + 1 if slots > 1 else 0  # the last filler's sequence (0: no fillers)
        self.context_tokens = context_tokens  # per sequence, as for one answer alone
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_seq_max = slots + 2  # the head, the answers, the padding
        ctx_params.n_ctx = context_tokens * ctx_params.n_seq_max  # a stream per sequence
        ctx_params.n_batch = BATCH_TOKENS
        ctx_params.n_ubatch = BATCH_TOKENS
        ctx_params.n_threads = threads
        ctx_params.n_threads_batch = threads
        ctx_params.kv_unified = False
        ctx_params.flash_attn_type = FLASH_ATTENTION
        ctx_params.swa_full = True  # the head's cells stay whole to be copied
        self.ctx = llama_cpp.llama_init_from_model(model, ctx_params)
        if not self.ctx:
            raise UsageError(f"llama.cpp cannot make a context for {model_path}")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        self.head: list[int] = []
        self.kept: dict[int, list[int]] = {}  # by sequence: the prompt its cells still hold
        self._decoded_last = False  # the last step decoded (the next may read a prompt)
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
        shared, own = starting_point(prompt, self.head, self.kept.pop(seq, []))
        if own:  # its own cells from the prompt before: cut to what this prompt shares
            llama_cpp.llama_memory_seq_rm(self.memory, seq, shared, -1)
        else:
            llama_cpp.llama_memory_seq_rm(self.memory, seq, -1, -1)
            if shared:  # another stream: the head's cells are copied whole, then cut
                llama_cpp.llama_memory_seq_cp(self.memory, HEAD, seq, -1, -1)
                llama_cpp.llama_memory_seq_rm(self.memory, seq, shared, -1)
        return Running(seq, list(prompt[shared:]), shared, rng=rng, prompt=list(prompt))

    def free(self, running: Running) -> None:
        """With one slot, a sequence keeps the cells of its prompt (as llama-cpp-python's
        `Llama` does): the next prompt evaluates only what differs, often more than the head
        (consecutive questions often bring the same sources). With several, every answer
        starts from the head alone, whichever slot it gets: the same cells as alone."""
        kept = running.evaluated() if self.slots == 1 and running.reusable else []
        llama_cpp.llama_memory_seq_rm(self.memory, running.seq, len(kept), -1)
        if kept:
            self.kept[running.seq] = kept

    def step(self, sequences: Sequence[Running], last: Sequence[int | None]) -> None:
        """One llama_decode, as `next_call` lays it out. Afterwards each sequence that can
        sample has its `output_index` set."""
        call = next_call(sequences, last, self.pad, self._decoded_last)
        if not call.rows:
            return
        self._decoded_last = call.decoding
        self._fill(call.rows)
        try:
            self._decode()
        except LLMError:
            for running in sequences:
                running.reusable = False
            raise
        finally:
            for seq, position in call.fillers:
                llama_cpp.llama_memory_seq_rm(self.memory, seq, position, -1)

    def logits(self, running: Running) -> NDArray[np.float32]:
        """Its row of logits from the last step (a view: valid until the next step)."""
        pointer = llama_cpp.llama_get_logits_ith(self.ctx, running.output_index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def sample(self, running: Running, temperature: float) -> int:
        logits = self.logits(running)
        if temperature <= 0 or running.rng is None:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / temperature
        scaled -= scaled.max()
        weights = np.exp(scaled)
        return int(running.rng.choice(self.n_vocab, p=weights / weights.sum()))

    def _fill(self, rows: Sequence[Row]) -> None:
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
