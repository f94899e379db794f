"""A file's name in the index (its document identity): decided once per ingest, kept while the
file stays where it is, taken over when a folder is moved, never shared by two files."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from rag.catalog import FileEntry
from rag.documents import Candidate


def identify(candidates: list[Candidate], old_files: dict[str, FileEntry]) -> list[Candidate]:
    """Each file's name in the index (its document identity), decided once:

    - a file the index already holds (the same resolved path) keeps its name and origin,
      whichever path, folder or subfolder reached it this time;
    - a new file takes its usual name (`docs/a.md` under a folder `docs/`, `a.md` given
      directly) unless another file holds it, in the index or earlier in this run; then the
      shortest name made longer by its own parent folders: `d2/readme.md`, `b/docs/a.md`;
    - a document of the index whose file is gone holds its name no more: a file that wants it
      takes it over (a folder moved or renamed keeps its documents, re-embedding none).
    Two files that exist never share a name, so neither replaces the other.
    """
    known = {entry.path: (source, entry) for source, entry in old_files.items()}
    taken = {s: e.path for s, e in old_files.items() if os.path.lexists(e.path)}
    named = []
    for candidate in candidates:
        if str(candidate.path) in known:
            source, entry = known[str(candidate.path)]
            candidate = Candidate(candidate.path, source, Path(entry.root), entry.from_folder)
        elif taken.get(candidate.source, str(candidate.path)) != str(candidate.path):
            candidate = dataclasses.replace(candidate, source=_free_name(candidate, taken))
        taken[candidate.source] = str(candidate.path)
        named.append(candidate)
    return named


def _free_name(candidate: Candidate, taken: dict[str, str]) -> str:
    """`a/b/docs/x.md` wanted `docs/x.md`, which is taken: `b/docs/x.md`, then `a/b/docs/x.md`."""
    parts = candidate.path.parts
    for length in range(len(Path(candidate.source).parts) + 1, len(parts)):
        name = "/".join(parts[-length:])
        if name not in taken:
            return name
    return candidate.path.as_posix()  # every shorter name is taken: the whole path is not
