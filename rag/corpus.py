"""The index seam: where the chunks live (`Store`: open it, write to it) and what retrieval reads
from it (`Corpus`: the candidates of one question, dense and lexical, with their chunks).

Two stores under `rag.stores`: FAISS + BM25 files in a folder (the embedded default) and
PostgreSQL with pgvector and full-text search (several workers sharing one index). Ingestion
(`rag.ingestion`) is written once over `IndexWriter`; fusion, minimum score and MMR stay in
`rag.retrieval`, the same for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from rag.catalog import FileEntry
from rag.chunks import Chunk
from rag.conversation import ConversationStore
from rag.documents import Skipped
from rag.settings import IndexType

if TYPE_CHECKING:
    from rag.filters import Filter


@dataclass(frozen=True)
class IndexInfo:
    """What any store reports of its index: how it was built, and its documents."""

    embedding_model: str
    dimension: int
    chunk_size_tokens: int
    chunk_overlap_tokens: int
    index_type: IndexType  # the vector index: FAISS flat or HNSW; pgvector's is HNSW
    files: dict[str, FileEntry]
    n_chunks: int
    sentence_vectors: bool = False  # each chunk's sentences have vectors (older indexes: not)


@dataclass
class IngestReport:
    """What one ingest did, for the CLI's summary, `--json` and the upload route."""

    index: str  # the store's `where`: a folder (`index/`) or a database URL without its password
    version: str | None = None
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[Skipped] = field(default_factory=list)
    rebuild_reason: str | None = None
    notes: list[str] = field(default_factory=list)  # other changes worth a line, e.g. index type
    encodings: dict[str, str] = field(default_factory=dict)  # documents read in another than UTF-8
    ocr_pages: int = 0  # PDF pages read by OCR
    n_files: int = 0
    n_chunks: int = 0
    n_embedded: int = 0
    seconds: float = 0.0
    wrote: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def announcements(self) -> list[str]:
        """What changed beyond the documents named, in lines worth showing (a rebuild, an
        index type change)."""
        return [note for note in [self.rebuild_reason, *self.notes] if note]


@dataclass(frozen=True)
class Change:
    """The index after an ingest, as a writer receives it: every document's entry, the fresh
    chunks of new and changed ones with their vectors (by chunk id), the documents removed;
    documents in `entries` without fresh chunks keep what the index holds."""

    info: IndexInfo  # model, dimension, chunk settings and index type of the result
    fresh: dict[str, list[Chunk]]
    vectors: dict[str, NDArray[np.float32]]
    removed: Sequence[str]
    rebuild: bool  # everything is new: the previous content goes in the same step
    moved: Sequence[str] = ()  # unchanged documents whose file is now elsewhere (its entry says)
    sentences: dict[str, NDArray[np.float32]] = field(default_factory=dict)  # by chunk id, a row
    # per `rag.sentences.sentence_spans` of its text


@dataclass(frozen=True)
class Written:
    version: str | None
    n_chunks: int


@dataclass
class Candidates:
    """One question's candidates, keyed by the store's own chunk key (a FAISS row, a row id)."""

    dense: dict[int, float] = field(default_factory=dict)  # cosine, from the vector search
    lexical: dict[int, float] = field(default_factory=dict)  # BM25 / full-text rank
    cosine: dict[int, float] = field(default_factory=dict)  # every candidate, given a vector
    sentence: dict[int, float] = field(default_factory=dict)  # its best sentence's cosine, same
    chunks: dict[int, Chunk] = field(default_factory=dict)
    collections: dict[int, str] = field(default_factory=dict)  # each chunk's document's
    vectors: dict[int, NDArray[np.float32]] = field(default_factory=dict)  # when asked


@dataclass(frozen=True)
class CandidateQuery:
    """What retrieval asks a corpus for one question."""

    text: str
    vector: NDArray[np.float32] | None  # the question's embedding (None: lexical only)
    pool: int  # candidates per side
    dense: bool = True
    lexical: bool = True
    with_vectors: bool = False  # the candidates' stored vectors too (MMR)
    filter: Filter | None = None  # only chunks of the documents it admits, on both sides


class Corpus(Protocol):
    """A searchable view of the index."""

    @property
    def manifest(self) -> IndexInfo:
        """Model, dimension, chunk settings and files (a database reads them when asked)."""
        ...

    def candidates(self, query: CandidateQuery) -> Candidates:
        """Up to `query.pool` chunks from the lexical side, and on the dense side the `pool`
        nearest chunks and those holding the `2 x pool` nearest sentences; the cosines of all of
        them (chunk and best sentence) when a vector is given; their stored vectors when
        asked."""
        ...


class IndexWriter(Protocol):
    """A store's side of one ingest, under its write lock (see `Store.writing`)."""

    index_types: tuple[IndexType, ...]  # the vector index types it can build

    def previous(self) -> IndexInfo | None:
        """The index as it stands (None: nothing ingested yet); `IndexError_` when it cannot
        be used, and ingestion then builds it anew."""
        ...

    def write(self, change: Change) -> Written:
        """Make `change` the index: readers see the old or the new, never a mix of one file."""
        ...


class Store(Protocol):
    """Where the index lives."""

    @property
    def where(self) -> str:
        """The folder or database, for messages (never a password)."""
        ...

    def version(self) -> str | None:
        """A cheap token that changes when a reader must open the index again (None: nothing
        ingested yet); raises `IndexError_` when the store cannot be reached."""
        ...

    def open(self) -> Corpus: ...

    def writing(self) -> AbstractContextManager[IndexWriter]:
        """The one writer's right to change the index; `IndexLocked` if another holds it."""
        ...

    def close(self) -> None:
        """Let go of connections (a server stopping)."""
        ...

    def conversations(self) -> ConversationStore:
        """The conversations kept beside this index."""
        ...

    def shared_answers(self) -> SharedAnswers | None:
        """Where every server process can replay an answer another produced (None: only the
        producing process keeps it)."""
        ...


Numbered = tuple[int, str, Any]  # an answer's event: its number, kind and JSON body


class SharedAnswers(Protocol):
    """Kept answers' events where every worker of every server reads them, so a reconnect may
    land anywhere (`rag/server/answer_log.py` keeps them in memory and mirrors them here)."""

    def record(self, answer_id: str, events: Sequence[Numbered], ended: bool) -> bool:
        """Add events (numbers continue the answer's), mark it ended; True when a cancel of it
        was asked meanwhile."""
        ...

    def read(self, answer_id: str, after: int) -> tuple[list[Numbered], bool] | None:
        """The events after number `after` and whether the answer ended (None: no such
        answer); the reader counts as present, for the producer's grace period."""
        ...

    def cancel(self, answer_id: str) -> bool | None:
        """Ask the producer to cancel; False when it already ended, None when unknown."""
        ...

    def read_within(self, answer_id: str, seconds: float) -> bool:
        """Someone read the answer in the last `seconds`."""
        ...

    def prune(self, ttl_s: float, keep: int) -> None:
        """Drop ended answers older than `ttl_s`, then the oldest ended past `keep`."""
        ...
