"""Retrieved chunks + a question -> the prompt with numbered sources; an answer -> its citation.

A completion-style prompt, because the default model is a small *base* model: one instruction
line and two short worked examples (always the same, so llama.cpp reuses their KV cache from one
question to the next), then the sources and the question. Sources are dropped from the lowest
rank up until the prompt fits the token budget. `cite` names the source an answer came from
when the model did not say.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.conversation import Message
from rag.errors import UsageError
from rag.retrieval import Hit
from rag.sentences import WORD, SentenceScorer

INSTRUCTIONS = "Answer each question with a short phrase copied from the sources."

# Short answers copied from longer passages, each with one source like the real prompts (by
# default one source, cut to its best sentences): token F1 0.372 against 0.356 for the same
# examples with two sources each, on 1,000 squad-dev-a questions. Examples that also cited "[1]"
# did worse (0.23 against 0.30 on 40 questions), so citations are added after generation, see
# `cite`.
EXAMPLES = (
    "Sources:\n"
    "[1] Eiffel Tower: The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in "
    "Paris, France. It is named after the engineer Gustave Eiffel, whose company designed and "
    "built the tower from 1887 to 1889.\n"
    "Question: Whose company built the Eiffel Tower?\n"
    "Answer: Gustave Eiffel\n"
    "\n"
    "Sources:\n"
    "[1] Amazon rainforest: The Amazon rainforest covers much of the Amazon basin of South "
    "America. The basin encompasses seven million square kilometres, of which five and a half "
    "million are covered by the rainforest.\n"
    "Question: How large is the area covered by the rainforest?\n"
    "Answer: five and a half million square kilometres\n"
)

# The fixed head of every prompt: an engine evaluates it once and shares its KV cache.
HEAD = f"{INSTRUCTIONS}\n\n{EXAMPLES}\n"

# A generation stops at the end of its line or where the model starts a new example.
STOP = ["\n", "Question:", "Sources:"]


@dataclass(frozen=True)
class Prompt:
    text: str  # the full completion prompt: instructions, examples, conversation, sources, question
    question: str
    sources: tuple[Hit, ...]  # in citation order: sources[0] is [1]
    context: str  # sources and question alone, for chat models (with INSTRUCTIONS as system)
    history: tuple[Message, ...] = ()  # the client's system messages and the earlier turns held

    @property
    def turns(self) -> int:
        """Earlier questions the prompt holds."""
        return sum(1 for m in self.history if m.role == "user")


def render_sources(hits: Sequence[Hit]) -> str:
    """One line per source, `[n] title: text`: line breaks inside a document are flattened, so
    a document cannot start a line of its own in the prompt (a fake `Question:` or `Answer:`)."""
    return "\n".join(
        f"[{number}] {' '.join(hit.chunk.title.split())}: {' '.join(hit.chunk.text.split())}"
        for number, hit in enumerate(hits, start=1)
    )


def build_prompt(
    question: str,
    hits: Sequence[Hit],
    count_tokens: Callable[[str], int],
    budget_tokens: int,
    sentences_per_source: int = 0,
    history: Sequence[Message] = (),
) -> Prompt:
    """The prompt with as many of `hits` (best first) as fit in `budget_tokens`; a single source
    that is too long on its own is shortened. With `sentences_per_source`, each source is cut to
    its sentences that best match the question (the returned sources keep their full text).
    `history` (the conversation's earlier user and assistant messages) goes before the sources
    as a transcript; its oldest turns are left out first when the prompt does not fit."""
    question = " ".join(question.split())
    shown = list(hits)  # what the model reads of each hit, in the same order
    if sentences_per_source > 0:
        scorer = SentenceScorer()
        shown = [
            _with_text(hit, scorer.focus(question, hit.chunk.text, sentences_per_source))
            for hit in hits
        ]
    turns = _turns(history)
    while turns and count_tokens(_text(question, shown[:1], turns)) > budget_tokens:
        turns = turns[1:]
    system = tuple(m for m in history if m.role == "system")  # chat models: after our own
    kept_history = system + tuple(m for turn in turns for m in turn)
    kept = len(hits)
    while kept > 1 and count_tokens(_text(question, shown[:kept], turns)) > budget_tokens:
        kept -= 1
    visible = shown[:kept]
    while visible and count_tokens(_text(question, visible, turns)) > budget_tokens:
        words = visible[0].chunk.text.split()
        if len(words) <= 1:
            kept, visible = 0, []
            break
        visible = [_with_text(visible[0], " ".join(words[: int(len(words) * 0.8)]))]
    if hits and not visible:  # a source matched, the question left no room for it
        raise UsageError(
            f"the question is too long for the model's context: with it, no source fits in "
            f"the {budget_tokens} tokens a prompt may use (the question and the instructions "
            f"take {count_tokens(_text(question, []))}); shorten the question"
        )
    return Prompt(
        text=_text(question, visible, turns),
        question=question,
        sources=tuple(hits[:kept]),
        context=_context(question, visible),
        history=kept_history,
    )


def _with_text(hit: Hit, text: str) -> Hit:
    """The hit with its chunk's text replaced (an empty `text` keeps the original)."""
    return dataclasses.replace(
        hit, chunk=dataclasses.replace(hit.chunk, text=text or hit.chunk.text)
    )


def _context(question: str, hits: Sequence[Hit]) -> str:
    return f"Sources:\n{render_sources(hits)}\nQuestion: {question}\nAnswer:"


def _text(question: str, hits: Sequence[Hit], turns: Sequence[Turn] = ()) -> str:
    return f"{HEAD}{_transcript(turns)}{_context(question, hits)}"


Turn = tuple[Message, ...]  # a user message and the answers after it


def _turns(history: Sequence[Message]) -> list[Turn]:
    """The user and assistant messages of `history`, grouped by question (system messages and
    anything before the first question are left out)."""
    turns: list[list[Message]] = []
    for m in history:
        if m.role == "user":
            turns.append([m])
        elif m.role == "assistant" and turns:
            turns[-1].append(m)
    return [tuple(turn) for turn in turns]


def _transcript(turns: Sequence[Turn]) -> str:
    """The earlier turns, one flattened line each message (no message can start a line of its
    own in the prompt), before the sources; empty without any."""
    if not turns:
        return ""
    names = {"user": "User", "assistant": "Assistant"}
    lines = [f"{names[m.role]}: {' '.join(m.content.split())}" for turn in turns for m in turn]
    return "Conversation:\n" + "\n".join(lines) + "\n"


_CITATION = re.compile(r"\[\d+\]")


def cite(answer: str, sources: Sequence[Hit]) -> int | None:
    """The number of the source an answer was taken from, or None if it names one already or
    shares no word with any: the best-ranked source holding the answer verbatim, else the one
    holding most of its words.

    >>> from rag.chunks import Chunk
    >>> hit = lambda text: Hit(1, 1.0, Chunk("i", "s", "t", 0, 0, len(text), text, ""))
    >>> cite("Denver Broncos", [hit("Carolina won"), hit("The Denver Broncos won")])
    2
    """
    if _CITATION.search(answer) or not sources:
        return None
    wanted = answer.strip().lower()
    texts = [" ".join(hit.chunk.text.split()).lower() for hit in sources]
    for number, text in enumerate(texts, start=1):
        if wanted and wanted in text:
            return number
    words = set(WORD.findall(wanted))
    overlaps = [len(words & set(WORD.findall(text))) for text in texts]
    best = max(range(len(overlaps)), key=lambda i: (overlaps[i], -i))
    return best + 1 if overlaps[best] else None
