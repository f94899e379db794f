"""Paths -> the index, incrementally, the same for every store: only new or changed files are
read, chunked and embedded; unchanged files keep what the index holds; files gone from a walked
folder are pruned. A store supplies `previous()` and `write()` under its lock (`IndexWriter`).

A change of embedding model or chunk settings rebuilds everything (never a mixed index); the
index keeps its own chunk settings and index type unless others are given explicitly.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from rag.catalog import FileEntry
from rag.chunk_vectors import embed_chunks
from rag.chunks import Chunk, Chunker
from rag.corpus import Change, IndexInfo, IndexWriter, IngestReport, Store
from rag.documents import (
    NO_SUCH_FILE,
    Candidate,
    Skipped,
    content_hash,
    discover,
    parse_document,
)
from rag.embeddings import Embedder
from rag.errors import DocumentError, IndexError_, IndexNotFound, UsageError
from rag.formats import Ocr
from rag.formats.ocr import find_ocr
from rag.labels import UNLABELLED, Labels
from rag.names import identify
from rag.settings import Settings


@dataclass
class Plan:
    """What the new index holds: per source, its file entry and either new chunks to embed or
    what the index already holds of it (`reused`)."""

    entries: dict[str, FileEntry] = field(default_factory=dict)
    new_chunks: dict[str, list[Chunk]] = field(default_factory=dict)
    reused: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Steps:
    """How a new or changed file is read and cut: pages without text by `ocr` (if any), text
    into chunks by `chunker`; `progress` draws bars for long work; the files found are
    labelled by `labels`."""

    chunker: Chunker
    ocr: Ocr | None
    progress: bool
    labels: Labels = UNLABELLED


def ingest(
    paths: Sequence[Path],
    settings: Settings,
    embedder: Embedder,
    *,
    store: Store | None = None,
    prune: bool = True,
    progress: bool = False,
    remove: Sequence[str] = (),
    labels: Labels = UNLABELLED,
) -> IngestReport:
    """Bring the index of `settings` (or of `store`, one already open) up to date with the
    files under `paths` (labelled by `labels`), and drop the documents named in `remove`."""
    if store is None:
        from rag.stores import make_store

        store = make_store(settings)
    started = time.perf_counter()
    make_chunker(settings, embedder)  # a bad chunk size is refused before anything is read
    report = IngestReport(index=store.where)
    with store.writing() as writer:
        previous, settings = _previous(writer, settings, embedder, report)
        old_files = previous.files if previous else {}
        reusable = previous is not None and report.rebuild_reason is None
        chunker = make_chunker(settings, embedder)
        ocr = find_ocr()
        steps = Steps(chunker, ocr, progress, labels)
        plan = plan_files(paths, old_files, reusable, steps, prune, report, remove)
        restructure = previous is not None and previous.index_type != settings.index_type
        moved = tuple(  # unchanged documents whose place or labels changed
            s for s in plan.reused if s in old_files and old_files[s] != plan.entries[s]
        )
        nothing_new = not (report.added or report.changed or report.removed or restructure or moved)
        typo = previous is None and not any(Path(p).exists() for p in paths)
        if typo or (previous is not None and reusable and nothing_new):
            report.version = store.version() if previous is not None else None
            report.n_chunks = previous.n_chunks if previous is not None else 0
            report.seconds = time.perf_counter() - started
            return report  # nothing to write (nor an empty index for a mistyped path)
        fresh = [chunk for chunks in plan.new_chunks.values() for chunk in chunks]
        vectors = embed_chunks(fresh, embedder, progress)
        report.n_embedded = len(fresh)
        written = writer.write(
            Change(
                info=_index_info(embedder, settings, plan),
                fresh=plan.new_chunks,
                vectors={c.id: v.chunk for c, v in zip(fresh, vectors, strict=True)},
                removed=tuple(report.removed),
                rebuild=not reusable,
                moved=moved,
                sentences={c.id: v.sentences for c, v in zip(fresh, vectors, strict=True)},
            )
        )
        report.version, report.n_chunks, report.wrote = written.version, written.n_chunks, True
    report.seconds = time.perf_counter() - started
    return report


def _index_info(embedder: Embedder, settings: Settings, plan: Plan) -> IndexInfo:
    """What the index holds after this ingest."""
    return IndexInfo(
        embedding_model=embedder.name,
        dimension=embedder.dimension,
        chunk_size_tokens=settings.chunk_size_tokens,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        index_type=settings.index_type,
        files=dict(sorted(plan.entries.items())),
        n_chunks=sum(entry.n_chunks for entry in plan.entries.values()),
        sentence_vectors=True,
    )


def _previous(
    writer: IndexWriter, settings: Settings, embedder: Embedder, report: IngestReport
) -> tuple[IndexInfo | None, Settings]:
    """The index as it stands, and the settings to ingest with: the index's own where none
    were given, and an index type the store can build."""
    try:
        previous = writer.previous()
    except IndexNotFound:
        previous = None
    except IndexError_ as err:
        report.rebuild_reason = f"the previous index is unusable ({err}); building a new one"
        previous = None
    if previous is not None:
        settings = settings.for_index(previous)
    if settings.index_type not in writer.index_types:
        settings = dataclasses.replace(settings, index_type=writer.index_types[0])
    if previous is None:
        return None, settings
    report.rebuild_reason = rebuild_reason(previous, settings, embedder)
    if previous.index_type != settings.index_type:
        report.notes.append(
            f"index type changed from {previous.index_type} to {settings.index_type}: "
            "the vector index is rebuilt from the stored vectors (nothing is re-embedded)"
        )
    return previous, settings


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
    steps: Steps,
    prune: bool,
    report: IngestReport,
    remove: Sequence[str] = (),
) -> Plan:
    """What the index holds after this ingest: files found under `paths` (new or changed ones
    read and chunked, unchanged ones reused when `reusable`), files of the index not found
    again (kept; or pruned when they lie under a folder walked again, or were named directly
    and are gone; read again when not `reusable`), minus the documents named in `remove`.
    Fills the report's added, changed, removed, unchanged and skipped lists."""
    found = discover(paths)
    report.ignored = found.ignored
    plan = Plan()
    found.candidates = identify(found.candidates, old_files)
    for candidate in tqdm(
        found.candidates, desc="reading", unit="file", disable=not steps.progress
    ):
        prior = old_files.get(candidate.source)
        _plan_file(candidate, old_files if reusable else {}, steps, plan, report, prior)
    seen = {c.source for c in found.candidates}
    gone = {Path(s.path).resolve() for s in found.skipped if s.reason == NO_SUCH_FILE}
    indexed_paths = {Path(entry.path) for entry in old_files.values()}
    report.skipped = [
        s
        for s in found.skipped
        if not (prune and s.reason == NO_SUCH_FILE and Path(s.path).resolve() in indexed_paths)
    ] + report.skipped
    unwanted = _to_remove(remove, old_files, report)
    for source, entry in old_files.items():
        if source in seen:
            continue
        path = Path(entry.path)
        if source in unwanted or (prune and (_walked(path, found.folders) or path in gone)):
            report.removed.append(source)
        elif reusable:
            plan.entries[source] = entry
            plan.reused.add(source)
        else:  # rebuilding: read it again from where it was found
            candidate = Candidate(path, source, Path(entry.root), entry.from_folder)
            unlabelled = dataclasses.replace(steps, labels=UNLABELLED)  # not found: keeps its own
            _plan_file(candidate, {}, unlabelled, plan, report, entry)
    report.n_files = len(plan.entries)
    return plan


def _walked(path: Path, folders: list[Path]) -> bool:
    """Whether walking one of `folders` would have met `path` (hidden entries are not met)."""
    return any(
        path.is_relative_to(folder)
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        for folder in folders
    )


def _to_remove(
    remove: Sequence[str], old_files: dict[str, FileEntry], report: IngestReport
) -> set[str]:
    """The documents named in `remove` (by their name in the index, or their file's path)."""
    by_path = {entry.path: source for source, entry in old_files.items()}
    chosen = set()
    for name in remove:
        source = name if name in old_files else by_path.get(str(Path(name).resolve()))
        if source is None:
            report.skipped.append(Skipped(name, "not in the index: nothing to remove"))
        else:
            chosen.add(source)
    return chosen


def rebuild_reason(manifest: IndexInfo, settings: Settings, embedder: Embedder) -> str | None:
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
    if not m.sentence_vectors:
        return (
            "the index predates sentence vectors (retrieval now also scores each chunk by its "
            "best sentence): re-embedding every file once"
        )
    return None


def _plan_file(
    candidate: Candidate,
    old_files: dict[str, FileEntry],
    steps: Steps,
    plan: Plan,
    report: IngestReport,
    prior: FileEntry | None,
) -> None:
    """Plan one file found: reused when unchanged (`old_files` holds it with the same hash),
    else read and chunked; labelled by `steps.labels` over what `prior` (its entry, if the
    index held it) had."""
    old = old_files.get(candidate.source)
    try:
        data = candidate.path.read_bytes()
    except OSError as err:
        _skip(candidate, f"cannot read ({err.strerror or err})", old, plan, report)
        return
    digest = content_hash(data)
    if old is not None and old.sha256 == digest:  # its place or labels may have changed
        placed = dataclasses.replace(
            old,
            path=str(candidate.path),
            root=str(candidate.root),
            from_folder=candidate.from_folder,
        )
        plan.entries[candidate.source] = steps.labels.apply(placed, prior)
        plan.reused.add(candidate.source)
        report.unchanged.append(candidate.source)
        return
    try:
        document = parse_document(
            data, candidate.path, candidate.source, ocr=steps.ocr, progress=steps.progress
        )
    except DocumentError as err:
        _skip(candidate, str(err), old, plan, report)
        return
    report.ocr_pages += document.ocr_pages
    if document.encoding is not None:
        report.encodings[candidate.source] = document.encoding
    chunks = steps.chunker.split(document)
    plan.new_chunks[candidate.source] = chunks
    entry = FileEntry(
        path=str(candidate.path),
        root=str(candidate.root),
        from_folder=candidate.from_folder,
        sha256=digest,
        size=len(data),
        title=document.title,
        n_chunks=len(chunks),
        file_type=candidate.path.suffix.lower().lstrip("."),
        modified=_modified(candidate.path),
    )
    plan.entries[candidate.source] = steps.labels.apply(entry, prior)
    (report.changed if old is not None else report.added).append(candidate.source)


def _skip(
    candidate: Candidate, reason: str, old: FileEntry | None, plan: Plan, report: IngestReport
) -> None:
    if old is not None:  # loses nothing: the version ingested before stays searchable
        plan.entries[candidate.source] = old
        plan.reused.add(candidate.source)
        reason += "; its previously ingested version is kept"
    report.skipped.append(Skipped(str(candidate.path), reason))


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def default_progress() -> bool:
    """Progress bars only for a person watching a terminal."""
    return sys.stderr.isatty()
