"""Files on disk -> `Document`s: finding files under the paths a user gives, and reading their
text with the reader of their kind (`rag.formats`; text files without an extension are read as
plain text). A file that cannot be read raises `DocumentError` with a one-line reason; deciding
what to do with it (skip, report) is left to ingestion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import DocumentError
from rag.formats import SUPPORTED_SUFFIXES, Ocr, Reading, reader_for
from rag.formats.text import looks_like_text

SNIFF_BYTES = 8192  # what is read of a file without an extension to tell text from binary


@dataclass(frozen=True)
class Candidate:
    """A file to ingest. `source` names it in the index: for a folder argument `docs/`, the file
    `docs/a/b.md` has source `docs/a/b.md`; a file argument is named by its file name."""

    path: Path
    source: str
    root: Path  # the folder argument it was found under, or the file's own folder
    from_folder: bool


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class Document:
    source: str
    title: str
    text: str
    encoding: str | None = None  # the character encoding read, when not UTF-8
    ocr_pages: int = 0  # pages read by OCR


@dataclass
class Discovery:
    candidates: list[Candidate]
    skipped: list[Skipped]  # named by the user but unusable: the ingest reports them, exit 1
    ignored: list[Skipped]  # met while walking a folder and not a supported type: reported only
    folders: list[Path]  # absolute folder arguments, whose vanished files are pruned


NO_SUCH_FILE = "no such file or directory"
OUTSIDE = (
    "a symbolic link to a file outside the folder: not followed (give the file itself to ingest it)"
)


def discover(paths: Iterable[Path]) -> Discovery:
    """Expand files and folders (recursively, hidden entries skipped) into candidates."""
    found = Discovery([], [], [], [])
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            found.skipped.append(Skipped(str(given), NO_SUCH_FILE))
        elif path.is_dir():
            root = path.resolve()
            found.folders.append(root)
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                relative = file.relative_to(root)
                if any(part.startswith(".") for part in relative.parts) or file in seen:
                    continue
                if not _readable_kind(file):
                    found.ignored.append(Skipped(str(file), _unsupported(file)))
                    continue
                if not file.resolve().is_relative_to(root):
                    found.skipped.append(Skipped(str(file), OUTSIDE))
                    continue
                seen.add(file)
                source = (Path(root.name) / relative).as_posix()
                found.candidates.append(Candidate(file, source, root, from_folder=True))
        elif not _readable_kind(path):
            found.skipped.append(Skipped(str(given), _unsupported(path)))
        elif path.resolve() not in seen:
            file = path.resolve()
            seen.add(file)
            found.candidates.append(Candidate(file, file.name, file.parent, from_folder=False))
    return found


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_document(
    data: bytes, path: Path, source: str, *, ocr: Ocr | None = None, progress: bool = False
) -> Document:
    """Extract the text and title of a file's bytes, or raise `DocumentError` saying why not.
    `ocr` reads PDF pages that have no text layer; `progress` draws a bar for long work."""
    if not data.strip():
        raise DocumentError("empty file")
    read = reader_for(path.suffix)
    extracted = read(data, Reading(path, ocr, progress))
    text = _normalise(extracted.text)
    if not text.strip():
        raise DocumentError("no text content")
    return Document(
        source=source,
        title=extracted.title.strip() or _title_from_name(path),
        text=text,
        encoding=extracted.encoding,
        ocr_pages=extracted.ocr_pages,
    )


def _readable_kind(path: Path) -> bool:
    """A supported extension, or none and text inside (README, NEWS, copyright)."""
    if path.suffix:
        return path.suffix.lower() in SUPPORTED_SUFFIXES
    try:
        with path.open("rb") as file:
            return looks_like_text(file.read(SNIFF_BYTES))
    except OSError:
        return False


def _unsupported(path: Path) -> str:
    if not path.suffix:
        return "no extension and not text"
    kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
    return f"unsupported file type {path.suffix!r} (supported: {kinds})"


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _title_from_name(path: Path) -> str:
    return path.stem.replace("_", " ").strip() or path.name
