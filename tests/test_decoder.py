"""How the decoder lays out each llama_decode call so that an answer decoded beside others is
the answer decoded alone (the real model's check: tests/test_engine_llamacpp.py): a prompt is
read alone in its call, in the same chunks whoever else runs; the decoding sequences go in one
ubatch of consecutive sequence numbers, at least two; reading and decoding take turns."""

from __future__ import annotations

from rag.llm.decoder import PROMPT_CHUNK, Running, next_call, starting_point

PAD = 5  # slots 1-4, then the padding sequence


def test_a_lone_decoding_sequence_gets_a_filler_in_the_next_sequence() -> None:
    one = Running(seq=2, pending=[], position=40)
    call = next_call([one], [7], PAD, decoded_last=False)
    assert call.decoding
    assert call.rows == [(7, 40, 2, True), (7, 0, 3, False)]  # 3 is free: its first cell
    assert call.fillers == [(3, 0)]
    assert (one.output_index, one.position) == (0, 41)


def test_with_one_slot_a_lone_row_goes_alone() -> None:
    one = Running(seq=1, pending=[], position=40)
    call = next_call([one], [7], 0, decoded_last=False)
    assert call.rows == [(7, 40, 1, True)] and call.fillers == []


def test_the_gaps_between_decoding_sequences_are_filled_where_each_would_write_next() -> None:
    first = Running(seq=1, pending=[], position=10)
    reading = Running(seq=2, pending=[3, 3], position=25)  # its next prompt row replaces it
    last = Running(seq=4, pending=[], position=30)
    call = next_call([first, reading, last], [5, None, 6], PAD, decoded_last=False)
    assert call.decoding
    assert call.rows == [(5, 10, 1, True), (5, 25, 2, False), (5, 0, 3, False), (6, 30, 4, True)]
    assert call.fillers == [(2, 25), (3, 0)]
    assert [r.output_index for r in (first, reading, last)] == [0, -1, 3]
    assert reading.position == 25 and reading.pending == [3, 3]


def test_a_prompt_is_read_alone_in_chunks_and_its_last_row_gives_logits() -> None:
    prompt = list(range(PROMPT_CHUNK + 3))
    reading = Running(seq=2, pending=list(prompt), position=100)
    waiting = Running(seq=3, pending=[1, 2], position=100)  # younger: waits its turn
    call = next_call([reading, waiting], [None, None], PAD, decoded_last=False)
    assert not call.decoding
    assert [r[0] for r in call.rows] == prompt[:PROMPT_CHUNK]
    assert {r[2] for r in call.rows} == {2}
    assert [r[1] for r in call.rows] == list(range(100, 100 + PROMPT_CHUNK))
    assert not any(r[3] for r in call.rows) and reading.output_index == -1
    call = next_call([reading, waiting], [None, None], PAD, decoded_last=False)
    assert call.rows == [(PROMPT_CHUNK + i, 100 + PROMPT_CHUNK + i, 2, i == 2) for i in range(3)]
    assert reading.output_index == 2 and waiting.pending == [1, 2]


def test_reading_and_decoding_take_turns() -> None:
    decoding = Running(seq=1, pending=[], position=50)
    reading = Running(seq=2, pending=[4] * (2 * PROMPT_CHUNK), position=0)
    both, last = [decoding, reading], [8, None]
    calls = []
    decoded_last = False
    for _ in range(4):
        call = next_call(both, last, PAD, decoded_last)
        decoded_last = call.decoding
        calls.append("decode" if call.decoding else f"read {len(call.rows)}")
    assert calls == ["decode", f"read {PROMPT_CHUNK}", "decode", f"read {PROMPT_CHUNK}"]
    assert decoding.position == 52 and reading.output_index == PROMPT_CHUNK - 1


def test_a_prompt_starts_from_its_own_kept_cells_when_they_share_more_than_the_head() -> None:
    head, kept = [1, 2, 3], [1, 2, 3, 4, 5, 6, 7]
    assert starting_point([1, 2, 3, 4, 5, 9, 9], head, kept) == (5, True)
    assert starting_point([1, 2, 3, 8, 9], head, kept) == (3, True)  # as much: no copy
    assert starting_point([1, 2, 3, 8, 9], head, []) == (3, False)
    assert starting_point([1, 2, 9], head, [1, 7]) == (2, False)  # the head shares more


def test_the_last_prompt_token_is_always_evaluated_for_its_logits() -> None:
    assert starting_point([1, 2, 3, 4], [1, 2, 3], [1, 2, 3, 4, 5]) == (3, True)
    assert starting_point([1, 2, 3], [1, 2, 3], []) == (2, False)


def test_a_sequence_holds_the_prompt_tokens_it_has_read() -> None:
    read_part = Running(seq=1, pending=[7, 8], position=3, prompt=[4, 5, 6, 7, 8])
    assert read_part.evaluated() == [4, 5, 6]
    answering = Running(seq=1, pending=[], position=9, prompt=[4, 5, 6, 7, 8])
    assert answering.evaluated() == [4, 5, 6, 7, 8]
