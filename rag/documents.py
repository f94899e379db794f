"""Files on disk -> `Document`s: finding files under the paths a user gives, and reading their text.

Supported: .txt, .md, .html, .pdf. A file that cannot be read raises `DocumentError` with a
one-line reason; deciding what to do with it (skip, report) is left to ingestion.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import DocumentError

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES


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
                if file.suffix.lower() not in SUPPORTED_SUFFIXES:
                    found.ignored.append(Skipped(str(file), _unsupported(file)))
                    continue
                if not file.resolve().is_relative_to(root):
                    found.skipped.append(Skipped(str(file), OUTSIDE))
                    continue
                seen.add(file)
                source = (Path(root.name) / relative).as_posix()
                found.candidates.append(Candidate(file, source, root, from_folder=True))
        elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
            found.skipped.append(Skipped(str(given), _unsupported(path)))
        elif path.resolve() not in seen:
            file = path.resolve()
            seen.add(file)
            found.candidates.append(Candidate(file, file.name, file.parent, from_folder=False))
    return found


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_document(data: bytes, path: Path, source: str) -> Document:
    """Extract the text and title of a file's bytes, or raise `DocumentError` saying why not."""
    suffix = path.suffix.lower()
    if not data.strip():
        raise DocumentError("empty file")
    if suffix in PDF_SUFFIXES:
        title, text = _read_pdf(data)
    elif suffix in HTML_SUFFIXES:
        title, text = _read_html(_decode(data))
    elif suffix in TEXT_SUFFIXES:
        text = _decode(data)
        title = _markdown_title(text) if suffix != ".txt" else ""
    else:
        raise DocumentError(_unsupported(path))
    text = _normalise(text)
    if not text.strip():
        raise DocumentError("no text content")
    return Document(source=source, title=title or _title_from_name(path), text=text)


def _unsupported(path: Path) -> str:
    kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
    return f"unsupported file type {path.suffix or '(no extension)'!r} (supported: {kinds})"


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentError("binary content, not text (NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DocumentError(f"not valid UTF-8 (byte {err.start})") from None


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _markdown_title(text: str) -> str:
    for line in text.splitlines()[:50]:
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def _title_from_name(path: Path) -> str:
    return path.stem.replace("_", " ").strip() or path.name


def _read_html(html: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title") or soup.find("h1")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    for tag in soup(["head", "script", "style", "noscript", "template"]):
        tag.decompose()
    body = soup.get_text("\n")
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in body.splitlines())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return title, text


def _read_pdf(data: bytes) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    # pypdf logs its repairs of damaged files; the one-line reason we raise is what users need
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError("encrypted PDF (password protected)")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except DocumentError:
        raise
    except LimitReachedError:
        raise DocumentError(
            "a compressed stream in the PDF inflates past pypdf's safety limit (a zip bomb?)"
        ) from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as err:
        raise DocumentError(f"unreadable PDF ({type(err).__name__}: {err})") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise DocumentError("PDF has no extractable text (scanned images?)")
    return str(meta_title or ""), text
