"""The index seam: where the chunks live (`Store`: ingest into it, open it) and what retrieval
reads from it (`Corpus`: the candidates of one question, dense and lexical, with their chunks).

Two stores: FAISS + BM25 files in a folder (the embedded default, `rag.store`) and PostgreSQL
with pgvector and full-text search (`rag.postgres`, for several workers sharing one index).
Fusion, minimum score and MMR stay in `rag.retrieval`, the same for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from rag.chunks import Chunk
from rag.errors import DependencyMissing
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.embeddings import Embedder
    from rag.ingestion import IngestReport
    from rag.store import Manifest


@dataclass
class Candidates:
    """One question's candidates, keyed by the store's own chunk key (a FAISS row, a row id)."""

    dense: dict[int, float] = field(default_factory=dict)  # cosine, from the vector search
    lexical: dict[int, float] = field(default_factory=dict)  # BM25 / full-text rank
    cosine: dict[int, float] = field(default_factory=dict)  # every candidate, given a vector
    chunks: dict[int, Chunk] = field(default_factory=dict)
    vectors: dict[int, NDArray[np.float32]] = field(default_factory=dict)  # when asked


class Corpus(Protocol):
    """A searchable view of the index."""

    @property
    def manifest(self) -> Manifest:
        """Model, dimension, chunk settings and files (a database reads them when asked)."""
        ...

    def candidates(
        self,
        query: str,
        vector: NDArray[np.float32] | None,
        pool: int,
        *,
        dense: bool,
        lexical: bool,
        with_vectors: bool = False,
    ) -> Candidates:
        """Up to `pool` chunks from each side asked for; cosines of all of them when `vector`
        is given; their stored vectors when `with_vectors`."""
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

    def ingest(
        self,
        paths: Sequence[Path],
        embedder: Embedder,
        *,
        prune: bool = True,
        progress: bool,
        remove: Sequence[str] = (),
    ) -> IngestReport:
        """Bring the index up to date with the files under `paths` (pruning vanished files of
        walked folders when `prune`), and drop the documents named in `remove`."""
        ...

    def close(self) -> None:
        """Let go of connections (a server stopping)."""
        ...


def make_store(settings: Settings) -> Store:
    match settings.store:
        case "faiss":
            from rag.ingestion import FolderStore

            return FolderStore(settings)
        case "pgvector":
            try:
                from rag.postgres import PostgresStore
            except ImportError as err:
                raise DependencyMissing(
                    f"RAG_STORE=pgvector needs psycopg, psycopg-pool and pgvector ({err.name} is "
                    "missing): pip install -r requirements.txt"
                ) from None
            return PostgresStore(settings)
