"""The stores behind the `rag.corpus` seam, one module each, imported only when chosen:
`folder` (FAISS + BM25 files, the default) and `pgvector` (PostgreSQL, shared by workers)."""

from __future__ import annotations

from rag.corpus import Store
from rag.errors import DependencyMissing
from rag.settings import Settings


def make_store(settings: Settings) -> Store:
    match settings.store:
        case "faiss":
            from rag.stores.folder import FolderStore

            return FolderStore(settings)
        case "pgvector":
            try:
                from rag.stores.pgvector import PostgresStore
            except ImportError as err:
                raise DependencyMissing(
                    f"RAG_STORE=pgvector needs psycopg, psycopg-pool and pgvector ({err.name} is "
                    "missing): pip install -r requirements.txt"
                ) from None
            return PostgresStore(settings)
