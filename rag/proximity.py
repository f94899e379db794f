"""Which candidate holds the question's words together: each chunk's best sentence, scored by
the question's words it contains (rarer among the candidates' sentences weigh more) and by the
pairs of the question's neighbouring words that stand close in it, in the same order (within
three words: "named Super Bowl MVP" holds the pair of "named MVP of Super Bowl"; on squad-dev-a
articles 1-12 a window of two measured the same, recall@1 0.863 vs 0.862, and orderless pairs
less, 0.858).

BM25 scores a chunk by its words wherever they are; a question's words gathered in one
sentence, in the question's order, mark the sentence that answers far better. Computed per
question over its candidates only (no index of its own, the same for every store), with each
chunk's stemmed sentences kept between questions. Measured in `rag/retrieval.py`.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping

from rag.chunks import Chunk
from rag.sentences import sentence_spans

WORD = re.compile(r"\w\w+")  # bm25s' own token pattern
PAIR_WEIGHT = 1.0  # close pairs against single words, each scaled by its best (chosen on 1-12)
WINDOW = 3  # a pair is close when its second word comes at most this many words after the first
KEPT = 20_000  # chunks whose stemmed sentences are kept

Sentence = tuple[frozenset[str], frozenset[tuple[str, str]]]  # its words, its close pairs


class Proximity:
    def __init__(self, size: int = KEPT) -> None:
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN

        self._stem = Stemmer.Stemmer("english").stemWords
        self._stop = frozenset(STOPWORDS_EN)
        self._size = size
        self._kept: OrderedDict[str, list[Sentence]] = OrderedDict()
        self._lock = threading.Lock()

    def words(self, text: str) -> list[str]:
        """Stemmed, stop words out, in order.

        >>> Proximity().words("Who was named the MVPs of the games?")
        ['who', 'name', 'mvps', 'game']
        """
        lowered = (m.lower() for m in WORD.findall(text))
        return list(self._stem([w for w in lowered if w not in self._stop]))

    def scores(self, question: str, chunks: Mapping[int, Chunk]) -> dict[int, float]:
        """For each chunk, its best sentence's score: the summed IDF (among all the chunks'
        sentences) of the question's words it holds, over the best such sum, plus
        `PAIR_WEIGHT` times the same for the question's adjacent word pairs it holds close
        together (the second at most `WINDOW` words after the first). 0 for a chunk sharing
        no word with the question."""
        asked = self.words(question)
        wanted, pairs = set(asked), set(itertools.pairwise(asked))
        sentences = {key: self._sentences(chunk) for key, chunk in chunks.items()}
        total = sum(len(s) for s in sentences.values())
        counts = dict.fromkeys(wanted, 0)
        for mine in sentences.values():
            for words, _ in mine:
                for word in wanted & words:
                    counts[word] += 1
        idf = {w: math.log(1 + total / (n + 0.5)) for w, n in counts.items()}
        single: dict[int, list[float]] = {}
        close: dict[int, list[float]] = {}
        for key, mine in sentences.items():
            single[key] = [sum(idf[w] for w in wanted & words) for words, _ in mine]
            close[key] = [sum(idf[a] + idf[b] for a, b in pairs & near) for _, near in mine]
        top_single = max((max(v, default=0.0) for v in single.values()), default=0.0) or 1.0
        top_close = max((max(v, default=0.0) for v in close.values()), default=0.0) or 1.0
        return {
            key: max(
                (
                    s / top_single + PAIR_WEIGHT * c / top_close
                    for s, c in zip(single[key], close[key], strict=True)
                ),
                default=0.0,
            )
            for key in sentences
        }

    def _sentences(self, chunk: Chunk) -> list[Sentence]:
        """A chunk's sentences as stemmed words (with its title's) and close pairs; kept."""
        key = f"{chunk.sha256 or chunk.text}\0{chunk.title}"
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        title = frozenset(self.words(chunk.title))
        made = []
        for start, end in sentence_spans(chunk.text):
            words = self.words(chunk.text[start:end])
            gaps = range(1, WINDOW + 1)
            near = {pair for gap in gaps for pair in zip(words, words[gap:], strict=False)}
            made.append((frozenset(words) | title, frozenset(near)))
        with self._lock:
            self._kept[key] = made
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return made
