"""Paths -> the on-disk index, incrementally: only new or changed files are read, chunked and
embedded; vectors of unchanged files are reused; files gone from a re-ingested folder are pruned.

A change of embedding model or chunk settings rebuilds everything (never a mixed index). The new
version is written beside the old one and swapped in atomically by `store.save`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rag import store
from rag.chunks import Chunk, Chunker
from rag.corpus import Corpus
from rag.documents import Candidate, Skipped, content_hash, discover, parse_document
from rag.embeddings import Embedder, Vectors
from rag.errors import DocumentError, IndexError_, IndexNotFound, UsageError
from rag.index import FaissIndex
from rag.lexical import LexicalIndex
from rag.settings import Settings
from rag.store import FileEntry, Manifest, StoredIndex

# Texts per call to the embedder: large enough that length-sorted batches pad little, small
# enough for a lively progress bar.
EMBED_SLICE = 512


@dataclass
class IngestReport:
    index_dir: str
    version: str | None = None
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[Skipped] = field(default_factory=list)
    rebuild_reason: str | None = None
    n_files: int = 0
    n_chunks: int = 0
    n_embedded: int = 0
    seconds: float = 0.0
    wrote: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FolderStore:
    """FAISS + BM25 files in `settings.index_dir`, versioned and swapped atomically."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def where(self) -> str:
        return f"{self.settings.index_dir}/"

    def version(self) -> str | None:
        return store.current_version(self.settings.index_dir)

    def open(self) -> Corpus:
        return store.load(self.settings.index_dir)

    def ingest(
        self, paths: Sequence[Path], embedder: Embedder, *, prune: bool = True, progress: bool
    ) -> IngestReport:
        return ingest(paths, self.settings, embedder, prune=prune, progress=progress)

    def close(self) -> None:
        pass  # files are opened per read


@dataclass
class _Plan:
    """What the new version holds: per source, its file entry and either new chunks to embed or
    the rows of the previous version to reuse."""

    entries: dict[str, FileEntry] = field(default_factory=dict)
    new_chunks: dict[str, list[Chunk]] = field(default_factory=dict)
    reused: set[str] = field(default_factory=set)


def ingest(
    paths: Sequence[Path],
    settings: Settings,
    embedder: Embedder,
    *,
    prune: bool = True,
    progress: bool = False,
) -> IngestReport:
    """Bring the index in `settings.index_dir` up to date with the files under `paths`."""
    started = time.perf_counter()
    chunker = make_chunker(settings, embedder)
    report = IngestReport(index_dir=str(settings.index_dir))
    with store.lock(settings.index_dir):
        previous = _load_previous(settings, embedder, report)
        reusable = previous if report.rebuild_reason is None else None
        old_files = previous.manifest.files if previous else {}
        plan = plan_files(paths, old_files, reusable is not None, chunker, prune, progress, report)

        if previous is None and not any(Path(p).exists() for p in paths):  # a typo: no index
            report.seconds = time.perf_counter() - started
            return report
        restructure = previous is not None and previous.manifest.index_type != settings.index_type
        if previous is not None and not (
            report.added or report.changed or report.removed or report.rebuild_reason or restructure
        ):
            report.version, report.n_chunks = previous.version, previous.manifest.n_chunks
            report.seconds = time.perf_counter() - started
            return report

        chunks, vectors = _assemble(plan, reusable, embedder, progress, report)
        index = FaissIndex.build(vectors, embedder.dimension, settings.index_type)
        lexical = LexicalIndex.build(chunks)
        manifest = Manifest(
            embedding_model=embedder.name,
            dimension=embedder.dimension,
            chunk_size_tokens=settings.chunk_size_tokens,
            chunk_overlap_tokens=settings.chunk_overlap_tokens,
            index_type=settings.index_type,
            files=dict(sorted(plan.entries.items())),
            n_chunks=len(chunks),
        )
        report.version = store.save(settings.index_dir, manifest, chunks, index, lexical)
        report.n_chunks, report.wrote = len(chunks), True
    report.seconds = time.perf_counter() - started
    return report


def make_chunker(settings: Settings, embedder: Embedder) -> Chunker:
    if settings.chunk_size_tokens > embedder.max_tokens:
        raise UsageError(
            f"chunk size {settings.chunk_size_tokens} tokens exceeds what {embedder.name} reads "
            f"({embedder.max_tokens} tokens): the rest of each chunk would be silently ignored"
        )
    return Chunker(embedder.count_tokens, settings.chunk_size_tokens, settings.chunk_overlap_tokens)


def plan_files(
    paths: Sequence[Path],
    old_files: dict[str, FileEntry],
    reusable: bool,
    chunker: Chunker,
    prune: bool,
    progress: bool,
    report: IngestReport,
) -> _Plan:
    """What the index holds after this ingest: files found under `paths` (new or changed ones
    read and chunked, unchanged ones reused when `reusable`), files of the index not found
    again (kept, or pruned when their folder was walked again; read again when not
    `reusable`). Fills the report's added, changed, removed, unchanged and skipped lists."""
    found = discover(paths)
    report.skipped, report.ignored = found.skipped, found.ignored
    plan = _Plan()
    found.candidates = _keep_known_names(found.candidates, old_files)
    for candidate in tqdm(found.candidates, desc="reading", unit="file", disable=not progress):
        _plan_file(candidate, old_files if reusable else {}, chunker, plan, report)
    seen = {c.source for c in found.candidates}
    for source, entry in old_files.items():
        if source in seen:
            continue
        if prune and entry.from_folder and Path(entry.root) in found.folders:
            report.removed.append(source)
        elif reusable:
            plan.entries[source] = entry
            plan.reused.add(source)
        else:  # rebuilding: read it again from where it was found
            candidate = Candidate(Path(entry.path), source, Path(entry.root), entry.from_folder)
            _plan_file(candidate, {}, chunker, plan, report)
    report.n_files = len(plan.entries)
    return plan


def _load_previous(
    settings: Settings, embedder: Embedder, report: IngestReport
) -> StoredIndex | None:
    try:
        previous = store.load(settings.index_dir)
    except IndexNotFound:
        return None
    except IndexError_ as err:
        report.rebuild_reason = f"the previous index is unusable ({err}); building a new one"
        return None
    report.rebuild_reason = rebuild_reason(previous.manifest, settings, embedder)
    return previous


def rebuild_reason(manifest: Manifest, settings: Settings, embedder: Embedder) -> str | None:
    """Why every file must be chunked and embedded again, if it must."""
    m = manifest
    if (m.embedding_model, m.dimension) != (embedder.name, embedder.dimension):
        return (
            f"embedding model changed from {m.embedding_model} ({m.dimension}d) to "
            f"{embedder.name} ({embedder.dimension}d): re-embedding every file"
        )
    if (m.chunk_size_tokens, m.chunk_overlap_tokens) != (
        settings.chunk_size_tokens,
        settings.chunk_overlap_tokens,
    ):
        return (
            f"chunk settings changed from {m.chunk_size_tokens}/{m.chunk_overlap_tokens} to "
            f"{settings.chunk_size_tokens}/{settings.chunk_overlap_tokens} tokens (size/overlap): "
            "re-chunking and re-embedding every file"
        )
    return None


def _keep_known_names(
    candidates: list[Candidate], old_files: dict[str, FileEntry]
) -> list[Candidate]:
    """A file named directly that the index already holds (say, from its folder) keeps its name,
    so one file never appears twice."""
    known = {entry.path: (source, entry) for source, entry in old_files.items()}
    renamed = []
    for candidate in candidates:
        if not candidate.from_folder and str(candidate.path) in known:
            source, entry = known[str(candidate.path)]
            candidate = Candidate(candidate.path, source, Path(entry.root), entry.from_folder)
        renamed.append(candidate)
    return renamed


def _plan_file(
    candidate: Candidate,
    old_files: dict[str, FileEntry],
    chunker: Chunker,
    plan: _Plan,
    report: IngestReport,
) -> None:
    old = old_files.get(candidate.source)
    try:
        data = candidate.path.read_bytes()
    except OSError as err:
        _skip(candidate, f"cannot read ({err.strerror or err})", old, plan, report)
        return
    digest = content_hash(data)
    if old is not None and old.sha256 == digest:
        plan.entries[candidate.source] = old
        plan.reused.add(candidate.source)
        report.unchanged.append(candidate.source)
        return
    try:
        document = parse_document(data, candidate.path, candidate.source)
    except DocumentError as err:
        _skip(candidate, str(err), old, plan, report)
        return
    chunks = chunker.split(document)
    plan.new_chunks[candidate.source] = chunks
    plan.entries[candidate.source] = FileEntry(
        path=str(candidate.path),
        root=str(candidate.root),
        from_folder=candidate.from_folder,
        sha256=digest,
        size=len(data),
        title=document.title,
        n_chunks=len(chunks),
    )
    (report.changed if old is not None else report.added).append(candidate.source)


def _skip(
    candidate: Candidate, reason: str, old: FileEntry | None, plan: _Plan, report: IngestReport
) -> None:
    if old is not None:  # loses nothing: the version ingested before stays searchable
        plan.entries[candidate.source] = old
        plan.reused.add(candidate.source)
        reason += "; its previously ingested version is kept"
    report.skipped.append(Skipped(str(candidate.path), reason))


def _assemble(
    plan: _Plan,
    previous: StoredIndex | None,
    embedder: Embedder,
    progress: bool,
    report: IngestReport,
) -> tuple[list[Chunk], Vectors]:
    """All chunks of the new version in (source, chunk number) order, with their vectors."""
    fresh = [chunk for chunks in plan.new_chunks.values() for chunk in chunks]
    fresh_vectors = embed_all([c.text for c in fresh], embedder, progress)
    report.n_embedded = len(fresh)
    rows: dict[str, tuple[Chunk, Vectors]] = {}
    for chunk, vector in zip(fresh, fresh_vectors, strict=True):
        rows[chunk.id] = (chunk, vector)
    if plan.reused and previous is not None:
        old_vectors = previous.vectors.vectors()
        for row, chunk in enumerate(previous.chunks):
            if chunk.source in plan.reused:
                rows[chunk.id] = (chunk, old_vectors[row])
    ordered = sorted(rows.values(), key=lambda cv: (cv[0].source, cv[0].chunk_no))
    chunks = [chunk for chunk, _ in ordered]
    if not ordered:
        return chunks, np.zeros((0, embedder.dimension), dtype=np.float32)
    return chunks, np.stack([vector for _, vector in ordered]).astype(np.float32)


def embed_all(texts: list[str], embedder: Embedder, progress: bool = False) -> Vectors:
    """Embed in slices of similar length (less padding), in the original order."""
    out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    with tqdm(total=len(texts), desc="embedding", unit="chunk", disable=not progress) as bar:
        for start in range(0, len(order), EMBED_SLICE):
            rows = order[start : start + EMBED_SLICE]
            out[rows] = embedder.embed([texts[i] for i in rows])
            bar.update(len(rows))
    return out


def default_progress() -> bool:
    """Progress bars only for a person watching a terminal."""
    return sys.stderr.isatty()
