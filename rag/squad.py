"""SQuAD-format JSON -> articles as the project ingests them: one document per article (its title
as a heading, then its paragraphs separated by blank lines), with where each paragraph starts, so
evaluation can place gold answer spans in the article text."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rag.conversation import Message


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]  # character ranges in the article text
    paragraph: tuple[int, int]  # the gold paragraph's character range in the article text
    # a conversational question (squad-dev-a-followups.json): "followup" or "switch", and the
    # chat messages before it
    kind: str | None = None
    history: tuple[Message, ...] = ()
    original: str | None = None  # a follow-up spelled out (its `original_question`)


@dataclass(frozen=True)
class Article:
    slug: str  # "Super_Bowl_50": also the file name stem
    title: str  # "Super Bowl 50"
    text: str
    questions: tuple[Question, ...]

    @property
    def file_name(self) -> str:
        return re.sub(r"[^\w.,()-]+", "_", self.slug) + ".md"


def load_articles(path: Path) -> list[Article]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [_article(raw) for raw in data["data"]]


def _article(raw: dict[str, object]) -> Article:
    slug = str(raw["title"])
    title = slug.replace("_", " ")
    parts = [f"# {title}"]
    offset = len(parts[0]) + 2
    questions: list[Question] = []
    paragraphs = raw["paragraphs"]
    assert isinstance(paragraphs, list)
    for paragraph in paragraphs:
        context = paragraph["context"]
        for qa in paragraph["qas"]:
            answers = tuple(a["text"] for a in qa["answers"])
            spans = tuple(
                (offset + a["answer_start"], offset + a["answer_start"] + len(a["text"]))
                for a in qa["answers"]
            )
            paragraph_range = (offset, offset + len(context))
            history = tuple(Message.from_json(m) for m in qa.get("history", ()))
            question = Question(
                qa["id"],
                qa["question"],
                answers,
                spans,
                paragraph_range,
                qa.get("kind"),
                history,
                qa.get("original_question"),
            )
            questions.append(question)
        parts.append(context)
        offset += len(context) + 2
    return Article(slug, title, "\n\n".join(parts), tuple(questions))


def write_articles(articles: list[Article], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for article in articles:
        path = folder / article.file_name
        path.write_text(article.text, encoding="utf-8")
        paths.append(path)
    return paths
