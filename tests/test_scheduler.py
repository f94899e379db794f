"""The engine's scheduler with a scripted decoder: answers decoded together, one token each per
step; a new prompt read beside the running answers; stop strings cut and held back; a cancel
costs at most one more token of its own sequence; a sequence's cells freed when it ends."""

from __future__ import annotations

from typing import Any

from rag.errors import LLMError
from rag.llm.scheduler import Request, Scheduler, Text
from tests.fakes import ScriptedDecoder


class Sent(list[dict[str, Any]]):
    """The messages the scheduler sent, in order."""


def run(scheduler: Scheduler, steps: int = 1000) -> None:
    for _ in range(steps):
        if not scheduler.busy:
            return
        scheduler.step()
    raise AssertionError("the scheduler never became idle")


def answers(sent: list[dict[str, Any]]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for message in sent:
        if "text" in message:
            texts[message["id"]] = texts.get(message["id"], "") + message["text"]
    return texts


def echo(prompt: str) -> str:
    """The scripted answer: the prompt's last word, three times."""
    word = prompt.split()[-1]
    return f" {word} {word} {word}"


def test_answers_are_decoded_together_one_token_each_per_step() -> None:
    decoder, sent = ScriptedDecoder(echo, chunk=100), Sent()
    scheduler = Scheduler(decoder, slots=3, send=sent.append)
    for n in range(3):
        scheduler.submit(Request(n, f"question {n} alpha{n}"))
    run(scheduler)
    assert answers(sent) == {n: f" alpha{n} alpha{n} alpha{n}" for n in range(3)}
    # the three prompts in one step, then every step carries one token of each answer
    assert decoder.steps[0] == [("prompt", seq, 3) for seq in (1, 2, 3)]
    assert decoder.steps[1] == [("token", seq) for seq in (1, 2, 3)]
    ends = [m for m in sent if "end" in m]
    assert [(m["end"], m["tokens"], m["prompt_tokens"]) for m in ends] == [("stop", 4, 3)] * 3
    assert sorted(decoder.freed) == [1, 2, 3]


def test_a_new_prompt_is_read_in_chunks_beside_the_running_answers() -> None:
    decoder, sent = ScriptedDecoder(lambda _: " a b c d e f g h i j", chunk=4), Sent()
    scheduler = Scheduler(decoder, slots=2, send=sent.append)
    scheduler.submit(Request(1, "short"))
    scheduler.step()  # the first prompt is read, its first token sampled
    scheduler.submit(Request(2, " ".join(["word"] * 10)))
    scheduler.step()
    scheduler.step()
    # answer 1 goes on decoding while prompt 2 (10 tokens) is read 4 tokens at a time
    assert decoder.steps[1] == [("token", 1), ("prompt", 2, 4)]
    assert decoder.steps[2] == [("token", 1), ("prompt", 2, 4)]
    run(scheduler)
    assert answers(sent) == {1: " a b c d e f g h i j", 2: " a b c d e f g h i j"}


def test_requests_past_the_slots_wait_in_order_for_a_free_sequence() -> None:
    decoder, sent = ScriptedDecoder(echo), Sent()
    scheduler = Scheduler(decoder, slots=2, send=sent.append)
    for n in range(5):
        scheduler.submit(Request(n, f"q w{n}"))
    scheduler.step()
    assert {a.running.seq for a in scheduler.active.values()} == {1, 2}
    assert [r.id for r in scheduler.waiting] == [2, 3, 4]
    run(scheduler)
    assert answers(sent) == {n: f" w{n} w{n} w{n}" for n in range(5)}
    assert max(len(step) for step in decoder.steps) == 2


def test_a_stop_string_ends_the_answer_and_is_never_sent() -> None:
    decoder, sent = ScriptedDecoder(lambda _: " Paris\nQuestion: next"), Sent()
    scheduler = Scheduler(decoder, slots=1, send=sent.append)
    scheduler.submit(Request(1, "q", stop=("\n", "Question:")))
    run(scheduler)
    assert answers(sent) == {1: " Paris"}
    assert sent[-1]["end"] == "stop"


def test_max_tokens_ends_the_answer_with_length() -> None:
    decoder, sent = ScriptedDecoder(lambda _: "one two three four five"), Sent()
    scheduler = Scheduler(decoder, slots=1, send=sent.append)
    scheduler.submit(Request(1, "q", max_tokens=2))
    run(scheduler)
    assert answers(sent) == {1: "one two "}
    assert (sent[-1]["end"], sent[-1]["tokens"]) == ("length", 2)


def test_a_cancel_costs_at_most_one_more_token_and_the_others_go_on() -> None:
    words = " ".join(f"w{n}" for n in range(50))
    decoder, sent = ScriptedDecoder(lambda _: words), Sent()
    scheduler = Scheduler(decoder, slots=2, send=sent.append)
    scheduler.submit(Request(1, "q", max_tokens=100))
    scheduler.submit(Request(2, "q", max_tokens=100))
    for _ in range(5):
        scheduler.step()
    before = len(answers(sent)[1].split())
    scheduler.cancel(1)
    run(scheduler)
    assert len(answers(sent)[1].split()) <= before + 1
    assert answers(sent)[2].split() == words.split()
    ending = next(m for m in sent if m.get("id") == 1 and "end" in m)
    assert ending["end"] == "cancelled"
    assert sorted(decoder.freed) == [1, 2]


def test_a_waiting_request_cancelled_never_starts() -> None:
    decoder, sent = ScriptedDecoder(echo), Sent()
    scheduler = Scheduler(decoder, slots=1, send=sent.append)
    scheduler.submit(Request(1, "q a"))
    scheduler.submit(Request(2, "q b"))
    scheduler.cancel(2)
    run(scheduler)
    assert answers(sent) == {1: " a a a"}
    assert {"id": 2, "end": "cancelled", "tokens": 0} in sent


def test_a_prompt_too_long_fails_alone() -> None:
    decoder, sent = ScriptedDecoder(echo, context_tokens=10), Sent()
    scheduler = Scheduler(decoder, slots=2, send=sent.append)
    scheduler.submit(Request(1, " ".join(["w"] * 20)))
    scheduler.submit(Request(2, "q ok"))
    run(scheduler)
    assert {"id": 1, "error": "the prompt takes 20 tokens"} in sent
    assert answers(sent) == {2: " ok ok ok"}


def test_text_holds_back_what_could_start_a_stop_string_and_joins_utf8() -> None:
    text = Text(("\nQuestion:",))
    assert text.add(b"Par") == ("Par", False)
    assert text.add(b"is\nQue") == ("is", False)  # "\nQue" could be the stop string
    assert text.add(b"en") == ("\nQueen", False)  # it was not
    assert text.add("é".encode()[:1]) == ("", False)  # half a character waits for the rest
    assert text.add("é".encode()[1:]) == ("é", False)
    assert text.add(b" x\nQuestion: y") == (" x", True)


def test_a_failed_decode_fails_the_answers_in_it_and_the_engine_goes_on() -> None:
    decoder, sent = ScriptedDecoder(echo), Sent()
    scheduler = Scheduler(decoder, slots=2, send=sent.append)
    scheduler.submit(Request(1, "q a"))
    scheduler.submit(Request(2, "q b"))
    step = decoder.step

    def full(sequences: Any, last: Any) -> None:
        raise LLMError("llama.cpp found no room in its KV cache for the batch")

    decoder.step = full  # type: ignore[method-assign]
    scheduler.step()
    failed = [m for m in sent if "error" in m]
    assert [m["id"] for m in failed] == [1, 2] and sorted(decoder.freed) == [1, 2]
    decoder.step = step  # type: ignore[method-assign]
    scheduler.submit(Request(3, "q c"))
    run(scheduler)
    assert answers(sent) == {3: " c c c"}
