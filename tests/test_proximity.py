from __future__ import annotations

from rag.chunks import Chunk
from rag.proximity import Proximity


def chunk(text: str, title: str = "Super Bowl") -> Chunk:
    return Chunk("d#0", "d", title, 0, 0, len(text), text, "")


def test_the_sentence_holding_the_words_together_wins() -> None:
    together = chunk("The game was long. Von Miller was named MVP of the game. It rained.")
    apart = chunk("Miller was named early. Later, the MVP trophy shone. The game ended.")
    scores = Proximity().scores("Who was named MVP of the game?", {1: together, 2: apart})
    assert scores[1] > scores[2] > 0


def test_scores_are_words_over_the_best_plus_pairs_over_the_best() -> None:
    """Two candidates, one sentence each: idf counts sentences holding each word among the
    candidates'; the best single-word sum and the best pair sum each count as 1."""
    a = chunk("Oxygen was discovered by Priestley.", title="")
    b = chunk("Priestley discovered oxygen.", title="")
    scores = Proximity().scores("oxygen discovered", {1: a, 2: b})
    # both hold both words (idf ln(1 + 2 / 2.5) each): words 1.0 for both; the pair
    # (oxygen, discov) stands within two words in a only
    assert scores == {1: 2.0, 2: 1.0}


def test_no_shared_word_scores_zero_and_title_words_count() -> None:
    proximity = Proximity()
    scores = proximity.scores("zebra stripes", {1: chunk("Nothing here.", title="")})
    assert scores == {1: 0.0}
    titled = proximity.scores("super bowl", {1: chunk("It was cold.")})
    assert titled[1] > 0  # the title's words belong to every sentence of the chunk
