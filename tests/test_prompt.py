from __future__ import annotations

from rag.llm.mock import pieces
from rag.prompt import EXAMPLES, INSTRUCTIONS, build_prompt, cite
from tests.fakes import hit


def count(text: str) -> int:
    return len(pieces(text))


def test_sources_are_numbered_and_the_prefix_is_fixed() -> None:
    prompt = build_prompt(
        "Who won?", [hit("Denver won.", 1), hit("Carolina lost.", 2)], count, 10_000
    )
    assert prompt.text.startswith(f"{INSTRUCTIONS}\n\n{EXAMPLES}")
    assert prompt.text.endswith(
        "Sources:\n[1] Doc: Denver won.\n[2] Doc: Carolina lost.\nQuestion: Who won?\nAnswer:"
    )
    assert prompt.context in prompt.text


def test_lowest_ranked_sources_are_dropped_to_fit_the_budget() -> None:
    hits = [hit(f"source number {i} " + "word " * 50, i) for i in range(1, 6)]
    fixed = count(build_prompt("q?", [], count, 10**6).text)
    prompt = build_prompt("q?", hits, count, fixed + 2 * 56)
    assert [h.rank for h in prompt.sources] == [1, 2]
    assert count(prompt.text) <= fixed + 2 * 56


def test_a_single_source_too_long_is_shortened() -> None:
    fixed = count(build_prompt("q?", [], count, 10**6).text)
    prompt = build_prompt("q?", [hit("word " * 1000)], count, fixed + 100)
    assert len(prompt.sources) == 1
    assert count(prompt.text) <= fixed + 100
    assert prompt.sources[0].chunk.text.startswith("word word")


def test_cite_finds_the_source_of_an_answer() -> None:
    sources = [hit("Carolina Panthers lost the game."), hit("The Denver Broncos won it.")]
    assert cite("Denver Broncos", sources) == 2
    assert cite("the broncos", sources) == 2  # no verbatim match: most shared words
    assert cite("Denver [2]", sources) is None  # already cited
    assert cite("zebra", sources) is None
    assert cite("anything", []) is None


def test_sources_can_be_cut_to_their_best_sentences() -> None:
    source = hit("Alpha is first. Oxygen is element eight. Beta is second. Zeta is last.")
    prompt = build_prompt("What element is oxygen?", [source], count, 10**6, sentences_per_source=1)
    assert "[1] Doc: Oxygen is element eight.\nQuestion:" in prompt.text
    assert prompt.sources[0].chunk.text == source.chunk.text  # users still see the whole chunk


def test_a_question_that_leaves_no_room_for_a_source_is_refused_not_unanswered() -> None:
    """A source matched, but the question alone fills the budget: a usage error saying so (422
    before the first byte), never "nothing in the indexed documents matches"."""
    import pytest

    from rag.errors import UsageError

    question = "word " * 400 + "who won?"
    fixed = count(build_prompt("q?", [], count, 10**6).text)
    with pytest.raises(UsageError, match=r"the question is too long for the model's context"):
        build_prompt(question, [hit("Denver won Super Bowl 50.")], count, fixed + 100)
    # no source at all is still an honest "I don't know", not an error
    assert build_prompt(question, [], count, fixed + 100).sources == ()
