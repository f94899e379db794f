"""The FAISS folder store: the index as versioned folders and an atomically swapped pointer,
one writer at a time (a lock file). No pickle anywhere.

    index/
      CURRENT              name of the live version (replaced atomically with os.replace)
      v<ns>/manifest.json  model, dimension, chunk settings, format version, per-file hashes
      v<ns>/chunks.jsonl   one chunk per line, in FAISS row order
      v<ns>/vectors.faiss  the FAISS index (faiss.write_index)
      v<ns>/bm25/          the BM25 index (bm25s' numpy arrays and JSON)
      v<ns>/sentences.faiss, sentence_starts.npy   the chunks' sentences (folder_sentences.py)
      .lock                held by the one process writing
      conversations.sqlite3  the conversations a server keeps (sqlite_conversations.py)

A new version is written under a temporary name, flushed to disk, renamed, and only then does
CURRENT point at it: a process killed at any moment leaves the previous version loadable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rag.chunks import Chunk
from rag.conversation import limits
from rag.corpus import Change, Corpus, IndexInfo, IndexWriter, Written
from rag.errors import IndexCorrupt, IndexError_, IndexLocked, IndexNotFound, UsageError
from rag.index import FaissIndex
from rag.lexical import LexicalIndex
from rag.settings import IndexType, Settings
from rag.stores.durable import flush, fsync_path, sha256_of
from rag.stores.folder_sentences import SentenceRows
from rag.stores.folder_version import FORMAT_VERSION, READABLE, Manifest, StoredIndex
from rag.stores.sqlite_conversations import SqliteConversations

POINTER = "CURRENT"
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
VECTORS = "vectors.faiss"
LEXICAL = "bm25"
TEMP_PREFIX = ".tmp-"


class FolderStore:
    """FAISS + BM25 files in `settings.index_dir`, versioned and swapped atomically."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def where(self) -> str:
        return f"{self.settings.index_dir}/"

    def version(self) -> str | None:
        return current_version(self.settings.index_dir)

    def open(self) -> Corpus:
        return load(self.settings.index_dir)

    @contextlib.contextmanager
    def writing(self) -> Iterator[IndexWriter]:
        with lock(self.settings.index_dir):
            yield FolderWriter(self.settings.index_dir)

    def close(self) -> None:
        pass  # files are opened per read

    def conversations(self) -> SqliteConversations:
        return SqliteConversations(self.settings.index_dir, limits(self.settings))

    def shared_answers(self) -> None:
        return None  # one machine: the answer stays in the memory of the process producing it


class FolderWriter:
    """A new version from the previous one: fresh chunks with their vectors, the others' rows
    copied from the previous version (never embedded again), written beside it and swapped in."""

    index_types: tuple[IndexType, ...] = ("flat", "hnsw")

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._previous: StoredIndex | None = None

    def previous(self) -> IndexInfo | None:
        self._previous = load(self.index_dir)
        return self._previous.manifest

    def write(self, change: Change) -> Written:
        info, kind = change.info, change.info.index_type
        chunks, vectors, sentences = self._rows(change)
        index = FaissIndex.build(vectors, info.dimension, kind)
        fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(IndexInfo)}
        manifest = Manifest(**{**fields, "n_chunks": len(chunks)})
        rows = SentenceRows.build(sentences, info.dimension, kind)
        version = save(self.index_dir, manifest, chunks, index, LexicalIndex.build(chunks), rows)
        return Written(version, len(chunks))

    def _rows(
        self, change: Change
    ) -> tuple[list[Chunk], NDArray[np.float32], list[NDArray[np.float32]]]:
        """All chunks of the new version in (source, chunk number) order, with their vectors
        and their sentences' vectors (a chunk without them: its own vector stands for its one
        sentence)."""
        rows = {
            chunk.id: (chunk, change.vectors[chunk.id], change.sentences.get(chunk.id))
            for chunks in change.fresh.values()
            for chunk in chunks
        }
        kept = set(change.info.files) - set(change.fresh)
        previous = self._previous
        if kept and previous is not None:
            old_vectors = previous.vectors.vectors()
            for row, chunk in enumerate(previous.chunks):
                if chunk.source in kept:
                    mine = previous.sentences.of_chunk(row) if previous.sentences else None
                    rows[chunk.id] = (chunk, old_vectors[row], mine)
        ordered = sorted(rows.values(), key=lambda row: (row[0].source, row[0].chunk_no))
        chunks = [chunk for chunk, _, _ in ordered]
        if not ordered:
            return chunks, np.zeros((0, change.info.dimension), dtype=np.float32), []
        vectors = np.stack([vector for _, vector, _ in ordered]).astype(np.float32)
        sentences = [v[None, :] if s is None else s for _, v, s in ordered]
        return chunks, vectors, sentences


def load(index_dir: Path) -> StoredIndex:
    """Load the live version, or raise IndexNotFound / IndexCorrupt with the reason."""
    refuse_a_file(index_dir)
    pointer = index_dir / POINTER
    if not pointer.is_file():
        raise IndexNotFound(f"no index in {index_dir}/: run `python -m rag ingest PATH` first")
    version = pointer.read_text().strip()
    folder = index_dir / version
    if not version or not folder.is_dir():
        raise IndexCorrupt(f"{pointer} names a missing version {version!r}")
    try:
        raw = json.loads((folder / MANIFEST).read_text())
        if raw.get("format_version") not in READABLE:
            raise IndexCorrupt(
                f"index format {raw.get('format_version')} in {folder} is not {FORMAT_VERSION}: "
                "re-ingest into a new folder"
            )
        manifest = Manifest.from_json(raw)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise IndexCorrupt(f"unreadable manifest in {folder}: {err}") from None
    for name, expected in manifest.checksums.items():
        if not (folder / name).is_file() or sha256_of(folder / name) != expected:
            raise IndexCorrupt(f"{folder / name} is missing or damaged (checksum mismatch)")
    try:
        with (folder / CHUNKS).open(encoding="utf-8") as lines:
            chunks = [Chunk.from_json(json.loads(line)) for line in lines]
        vectors = FaissIndex.load(folder / VECTORS, manifest.index_type)
        lexical = LexicalIndex.load(folder / LEXICAL, manifest.n_chunks)
        sentences = SentenceRows.load(folder, manifest.index_type)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as err:
        raise IndexCorrupt(f"cannot read the index in {folder}: {err}") from None
    if not len(chunks) == vectors.size == manifest.n_chunks:
        raise IndexCorrupt(
            f"index in {folder} is inconsistent: {len(chunks)} chunks, {vectors.size} vectors, "
            f"manifest says {manifest.n_chunks}"
        )
    if sentences is not None and sentences.n_chunks != manifest.n_chunks:
        raise IndexCorrupt(f"sentence vectors in {folder} do not match its chunks")
    if vectors.dimension != manifest.dimension:
        raise IndexCorrupt(
            f"vectors in {folder} have dimension {vectors.dimension}, not {manifest.dimension}"
        )
    return StoredIndex(version, manifest, chunks, vectors, lexical, sentences)


def save(
    index_dir: Path,
    manifest: Manifest,
    chunks: list[Chunk],
    vectors: FaissIndex,
    lexical: LexicalIndex,
    sentences: SentenceRows,
) -> str:
    """Write a new version and make it live atomically; returns its name. Hold `lock()` first.
    A failure to write (permissions, a full disk) leaves the live version as it was."""
    version = f"v{time.time_ns()}"
    temp = index_dir / f"{TEMP_PREFIX}{version}"
    try:
        return _write(index_dir, version, temp, manifest, chunks, vectors, lexical, sentences)
    except OSError as err:
        shutil.rmtree(temp, ignore_errors=True)
        raise cannot_write(index_dir, err) from None


def refuse_a_file(index_dir: Path) -> None:
    if index_dir.exists() and not index_dir.is_dir():
        raise UsageError(f"{index_dir} is a file, not an index folder")


def cannot_write(index_dir: Path, err: OSError) -> IndexError_:
    return IndexError_(f"cannot write the index folder {index_dir}/: {err.strerror or err}")


def _write(
    index_dir: Path,
    version: str,
    temp: Path,
    manifest: Manifest,
    chunks: list[Chunk],
    vectors: FaissIndex,
    lexical: LexicalIndex,
    sentences: SentenceRows,
) -> str:
    index_dir.mkdir(parents=True, exist_ok=True)
    temp.mkdir()
    with (temp / CHUNKS).open("w", encoding="utf-8") as out:
        for chunk in chunks:
            out.write(json.dumps(chunk.to_json(), ensure_ascii=False) + "\n")
        flush(out)
    vectors.save(temp / VECTORS)
    lexical.save(temp / LEXICAL)
    sentences.save(temp)
    written = sorted(p.relative_to(temp).as_posix() for p in temp.rglob("*") if p.is_file())
    for name in written:
        fsync_path(temp / name)
    checksums = {name: sha256_of(temp / name) for name in written}
    final = dataclasses.replace(
        manifest,
        checksums=checksums,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    with (temp / MANIFEST).open("w", encoding="utf-8") as out:
        json.dump(final.to_json(), out, indent=1, ensure_ascii=False)
        flush(out)
    if (temp / LEXICAL).is_dir():
        fsync_path(temp / LEXICAL)
    fsync_path(temp)
    os.rename(temp, index_dir / version)
    fsync_path(index_dir)
    previous = current_version(index_dir)
    pointer_temp = index_dir / f"{TEMP_PREFIX}{POINTER}"
    with pointer_temp.open("w") as out:
        out.write(version + "\n")
        flush(out)
    os.replace(pointer_temp, index_dir / POINTER)
    fsync_path(index_dir)
    _remove_stale(index_dir, keep={version, previous})
    return version


@contextlib.contextmanager
def lock(index_dir: Path) -> Iterator[None]:
    """Exclusive right to write `index_dir`; fails at once if another process holds it."""
    refuse_a_file(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        handle = (index_dir / ".lock").open("a")
    except OSError as err:
        raise cannot_write(index_dir, err) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexLocked(
                f"another ingest is writing {index_dir}/; try again when it ends"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_version(index_dir: Path) -> str | None:
    """The live version's name (a cheap read: servers poll it to notice a new ingest)."""
    pointer = index_dir / POINTER
    return pointer.read_text().strip() if pointer.is_file() else None


def _remove_stale(index_dir: Path, keep: set[str | None]) -> None:
    """Drop old versions (the previous one stays for readers still loading it) and the debris
    of interrupted writes."""
    for entry in index_dir.iterdir():
        stale_version = entry.name.startswith("v") and entry.is_dir() and entry.name not in keep
        if stale_version or entry.name.startswith(TEMP_PREFIX):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
