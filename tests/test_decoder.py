"""How the decoder lays out each llama_decode call so that an answer decoded beside others is
the answer decoded alone (the real model's check: tests/test_engine_llamacpp.py): a prompt is
read alone in its call, in the same chunks whoever else runs; a decoding call has at least two
rows; reading and decoding take turns."""

from __future__ import annotations

from rag.llm.decoder import BATCH_TOKENS, Running, next_call

PAD = 9


def test_a_lone_decoding_sequence_gets_a_padding_row_with_logits() -> None:
    one = Running(seq=1, pending=[], position=40)
    rows, decoding = next_call([one], [7], PAD, decoded_last=False)
    assert decoding
    assert rows == [(7, 40, 1, True), (7, 0, PAD, True)]
    assert (one.output_index, one.position) == (0, 41)


def test_several_decoding_sequences_share_one_call_without_padding() -> None:
    running = [Running(seq=s, pending=[], position=10 * s) for s in (1, 2, 3)]
    rows, decoding = next_call(running, [5, 6, 7], PAD, decoded_last=False)
    assert decoding
    assert rows == [(5, 10, 1, True), (6, 20, 2, True), (7, 30, 3, True)]
    assert [r.output_index for r in running] == [0, 1, 2]


def test_a_prompt_is_read_alone_in_chunks_and_the_last_row_gives_logits() -> None:
    prompt = list(range(BATCH_TOKENS + 3))
    reading = Running(seq=2, pending=list(prompt), position=100)
    waiting = Running(seq=3, pending=[1, 2], position=100)  # younger: waits its turn
    rows, decoding = next_call([reading, waiting], [None, None], PAD, decoded_last=False)
    assert not decoding
    assert [r[0] for r in rows] == prompt[:BATCH_TOKENS] and {r[2] for r in rows} == {2}
    assert [r[1] for r in rows] == list(range(100, 100 + BATCH_TOKENS))
    assert not any(r[3] for r in rows) and reading.output_index == -1
    rows, _ = next_call([reading, waiting], [None, None], PAD, decoded_last=False)
    assert rows == [(BATCH_TOKENS + i, 100 + BATCH_TOKENS + i, 2, i == 2) for i in range(3)]
    assert reading.output_index == 2 and waiting.pending == [1, 2]


def test_reading_and_decoding_take_turns() -> None:
    decoding = Running(seq=1, pending=[], position=50)
    reading = Running(seq=2, pending=[4] * (2 * BATCH_TOKENS), position=0)
    both, last = [decoding, reading], [8, None]
    calls = []
    decoded_last = False
    for _ in range(4):
        rows, decoded_last = next_call(both, last, PAD, decoded_last)
        calls.append("decode" if decoded_last else f"read {len(rows)}")
    assert calls == ["decode", f"read {BATCH_TOKENS}", "decode", f"read {BATCH_TOKENS}"]
    assert decoding.position == 52 and reading.output_index == BATCH_TOKENS - 1
