from __future__ import annotations

from rag.sentences import SentenceScorer, split_sentences


def test_split_keeps_lower_case_abbreviations_and_drops_headings() -> None:
    text = "# Heading\n\nSmith arrived at 5 p.m. on Monday. He left. 3 days later, rain!"
    assert split_sentences(text) == [
        "Smith arrived at 5 p.m. on Monday.",
        "He left.",
        "3 days later, rain!",
    ]


def test_rare_question_words_weigh_more() -> None:
    scorer = SentenceScorer()
    sentences = [
        "The game was played in Santa Clara.",
        "The game was won by Denver.",
        "The game drew many viewers.",
    ]
    scores = scorer.scores("Which team won the game?", sentences)
    assert scores.index(max(scores)) == 1
    assert scorer.scores("zebra", sentences) == [0.0, 0.0, 0.0]


def test_focus_keeps_the_best_sentences_in_order() -> None:
    text = "Alpha is first. Oxygen is element eight. Beta is second. Oxygen was found in 1774."
    assert SentenceScorer().focus("When was oxygen found?", text, 2) == (
        "Oxygen is element eight. Oxygen was found in 1774."
    )
