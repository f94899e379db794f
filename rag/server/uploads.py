"""The upload folder: files sent to `/v1/documents` are written here under their own plain name
(no folder part, no `..`, no NUL, not hidden, a supported type), so nothing is ever written
outside it; each to a hidden temporary name first and renamed into place, so a crash never
leaves half a file where ingestion would read it. An earlier upload of the same name is replaced
only when the request says so; a symlink planted under that name is no earlier upload.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from rag.errors import BadUpload, UploadConflict, UploadTooLarge
from rag.formats import SUPPORTED_SUFFIXES

READ_SIZE = 1 << 20
MAX_NAME_CHARS = 200


@dataclass
class Uploaded:
    """What one upload request did: the files ingested (their document ids, and which replaced
    an earlier upload), those ingestion refused with the reason, the index version now served."""

    ids: list[str] = field(default_factory=list)
    replaced: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)
    version: str | None = None


def safe_name(name: str | None) -> str:
    """The upload's file name if it is a plain, supported one; else `BadUpload`.

    >>> safe_name("notes.md")
    'notes.md'
    >>> safe_name("../passwd.txt")
    Traceback (most recent call last):
    ...
    rag.errors.BadUpload: file name '../passwd.txt' has a folder part: send a plain name
    """
    if not name or not name.strip():
        raise BadUpload("a file has no name")
    if "\x00" in name:
        raise BadUpload(f"file name {name!r} contains a NUL character")
    if "/" in name or "\\" in name or name in {".", ".."}:
        raise BadUpload(f"file name {name!r} has a folder part: send a plain name")
    if name.startswith("."):
        raise BadUpload(f"file name {name!r} is hidden (starts with a dot)")
    if len(name) > MAX_NAME_CHARS:
        raise BadUpload(f"file name is longer than {MAX_NAME_CHARS} characters")
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise BadUpload(f"{name}: unsupported file type (supported: {kinds})")
    return name


def earlier_uploads(files: Sequence[UploadFile], folder: Path, replace: bool) -> set[str]:
    """The names among `files` uploaded before (refused unless `replace`); every name is checked
    before anything is written, so a refused request writes nothing."""
    names = [safe_name(f.filename) for f in files]
    if len(set(names)) != len(names):
        raise BadUpload("two uploaded files have the same name")
    # an earlier upload is a regular file (a symlink planted there is replaced, never followed)
    existing = [n for n in names if (folder / n).is_file() and not (folder / n).is_symlink()]
    if existing and not replace:
        prefix = folder.resolve().name
        raise UploadConflict(
            f"{', '.join(f'{prefix}/{n}' for n in existing)} "
            f"{'was' if len(existing) == 1 else 'were'} uploaded before: send replace=true "
            "(a form field) to replace it, or upload under another name"
        )
    return set(existing)


async def save(upload: UploadFile, folder: Path, limit_bytes: int) -> Path:
    """Write the upload under `folder` (temporary name, then rename); `BadUpload` past the limit."""
    name = safe_name(upload.filename)
    target = folder / name
    temporary = folder / f".upload-{os.getpid()}-{id(upload)}-{name}"
    size = 0
    try:
        with temporary.open("wb") as out:
            while block := await upload.read(READ_SIZE):
                size += len(block)
                if size > limit_bytes:
                    raise UploadTooLarge(
                        f"{name} is larger than the upload limit of {limit_bytes} bytes"
                    )
                await run_in_threadpool(out.write, block)  # disk writes off the event loop
        await run_in_threadpool(os.replace, temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target
