from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rag.chunks import Chunk
from rag.evaluation import exact_match, is_hit, normalize_answer, token_f1
from rag.retrieval import Hit
from rag.squad import load_articles
from tests.conftest import ROOT

SQUAD = {
    "data": [
        {
            "title": "Tiny_Test",
            "paragraphs": [
                {
                    "context": "Denver won the game.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "Who won?",
                            "answers": [{"text": "Denver", "answer_start": 0}],
                        }
                    ],
                },
                {
                    "context": "Oxygen is element eight. Denver is a city.",
                    "qas": [
                        {
                            "id": "q2",
                            "question": "What element is eight?",
                            "answers": [{"text": "Oxygen", "answer_start": 0}],
                        }
                    ],
                },
            ],
        }
    ]
}


def test_squad_normalisation_and_scores() -> None:
    assert normalize_answer("The Denver  Broncos.") == "denver broncos"
    assert exact_match("the Denver Broncos", ["Denver Broncos"]) == 1.0
    assert token_f1("Denver Broncos won", ["Denver Broncos"]) == pytest.approx(0.8)
    assert token_f1("Panthers", ["Denver Broncos", "Broncos"]) == 0.0


def test_gold_spans_are_placed_in_the_article_text(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SQUAD))
    (article,) = load_articles(path)
    for question in article.questions:
        ((start, end),) = question.spans
        assert article.text[start:end] == question.answers[0]
    # a chunk containing the same word elsewhere is no hit: the span must be covered
    q1 = article.questions[0]
    second_paragraph = article.text.index("Oxygen")
    chunk = Chunk("x", "squad/Tiny_Test.md", "t", 1, second_paragraph, len(article.text), "", "")
    assert "Denver" in article.text[second_paragraph:]
    assert not is_hit(Hit(1, 1.0, chunk), article, q1)
    whole = Chunk("x", "squad/Tiny_Test.md", "t", 0, 0, len(article.text), "", "")
    assert is_hit(Hit(1, 1.0, whole), article, q1)


def run_eval(tmp_path: Path, *args: str, dataset: dict[str, Any] | None = None) -> dict[str, Any]:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SQUAD if dataset is None else dataset))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/eval.py"),
            "--dataset",
            str(path),
            "--json",
            "--model",
            "hashing",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "RAG_MIN_SCORE": "0"},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_eval_script_reports_json(tmp_path: Path) -> None:
    result = run_eval(tmp_path)
    assert result["n_questions"] == 2
    # two articles of one paragraph each: each question's own is found first
    assert result["recall_at_k"] == 1.0 and result["mrr_at_10"] == 1.0
    assert result["recall"] == {"1": 1.0, "5": 1.0, "10": 1.0}


def test_eval_script_scores_answers_on_gold_or_retrieved_context(tmp_path: Path) -> None:
    for context in ("gold", "retrieved"):
        result = run_eval(tmp_path, "--llm", "extractive", "--context", context)
        assert result["context"] == context and result["n_answered"] == 2
        # the extractive answerer quotes the whole sentence: "Denver won the game." for
        # "Denver" (3 tokens without "the", 1 right: F1 2/4) and "Oxygen is element eight."
        # for "Oxygen" (F1 2/5); their mean 0.45, and no exact match
        assert result["f1"] == pytest.approx(0.45) and result["exact_match"] == 0.0
