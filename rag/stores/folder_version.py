"""One version of the folder store, loaded: its manifest, its chunks in FAISS row order, their
vectors, BM25 index and sentence vectors; it is the `Corpus` retrieval reads (keys are FAISS
rows). Reading and writing the files is `folder.py`'s."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rag.catalog import FileEntry
from rag.chunks import Chunk
from rag.corpus import CandidateQuery, Candidates, IndexInfo
from rag.index import FaissIndex
from rag.lexical import LexicalIndex
from rag.stores.folder_sentences import SentenceRows

if TYPE_CHECKING:
    from rag.filters import Filter

FORMAT_VERSION = 3
READABLE = (2, 3)  # 2: no sentence vectors (the next ingest rebuilds it)


@dataclass(frozen=True)
class Manifest(IndexInfo):
    """The folder format's manifest.json: what the index reports, plus its own bookkeeping."""

    format_version: int = FORMAT_VERSION
    created_at: str = ""
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> sha256

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        files = {k: FileEntry(**v) for k, v in data.pop("files").items()}
        return cls(files=files, **data)


@dataclass
class StoredIndex:
    """One loaded version: its manifest, its chunks in row order, their vectors and BM25 index."""

    version: str
    manifest: Manifest
    chunks: list[Chunk]
    vectors: FaissIndex
    lexical: LexicalIndex
    sentences: SentenceRows | None = None
    _documents: tuple[list[str], NDArray[np.int64]] | None = field(default=None, repr=False)

    def allowed(self, admitted: Filter | None) -> NDArray[np.bool_] | None:
        """The rows of the documents `admitted` passes, as a mask (None: no filter)."""
        if admitted is None:
            return None
        if self._documents is None:  # each row's document, found once per loaded version
            names = sorted({chunk.source for chunk in self.chunks})
            number = {name: n for n, name in enumerate(names)}
            rows = np.fromiter((number[c.source] for c in self.chunks), np.int64, len(self.chunks))
            self._documents = (names, rows)
        names, rows = self._documents
        files = self.manifest.files
        kept = np.array([name in files and admitted.admits(name, files[name]) for name in names])
        return kept[rows] if len(rows) else np.zeros(0, dtype=bool)

    def candidates(self, query: CandidateQuery) -> Candidates:
        """The `Corpus` seam: keys are FAISS row numbers."""
        vector, pool = query.vector, query.pool
        found = Candidates()
        allowed = self.allowed(query.filter)
        if self.vectors.size == 0 or (allowed is not None and not allowed.any()):
            return found
        near: set[int] = set()
        if query.dense and vector is not None:
            scores, rows = self.vectors.search(vector[None, :], pool, allowed)
            pairs = zip(scores[0], rows[0], strict=True)
            found.dense = {int(r): float(s) for s, r in pairs if r >= 0}
            if self.sentences is not None:
                near = self.sentences.near(vector, 2 * pool, allowed) - set(found.dense)
        if query.lexical:
            scores, rows = self.lexical.search(query.text, pool, allowed)
            found.lexical = {int(r): float(s) for s, r in zip(scores, rows, strict=True)}
        keys = list(found.dense.keys() | near | found.lexical.keys())
        found.chunks = {key: self.chunks[key] for key in keys}
        files = self.manifest.files
        found.collections = {
            key: files[chunk.source].collection
            for key, chunk in found.chunks.items()
            if chunk.source in files
        }
        found.cosine = dict(found.dense)
        missing = [key for key in keys if key not in found.dense]
        if vector is not None and missing:  # chunks the vector search did not return
            cosines = self.vectors.reconstruct(missing) @ vector
            found.cosine.update(zip(missing, cosines.tolist(), strict=True))
        found.dense.update((key, found.cosine[key]) for key in near)
        if vector is not None and self.sentences is not None:
            found.sentence = self.sentences.best(keys, vector)
        if query.with_vectors and keys:
            found.vectors = dict(zip(keys, self.vectors.reconstruct(keys), strict=True))
        return found
