"""File formats -> text: one reader per kind of file, picked by `reader_for(suffix)` and imported
only when a file of its kind is read. A reader returns the text and what it learned on the way
(title, encoding, pages read by OCR) or raises `DocumentError` with a one-line reason.

Kinds: .txt/.md (and text files without an extension), .html, .pdf (OCR for pages without a
text layer), .docx, .odt, .pptx, .xlsx, .csv, .epub.
"""

from __future__ import annotations

from rag.errors import DocumentError
from rag.formats.reading import Extracted, Ocr, Reader, Reading

__all__ = ["KINDS", "SUPPORTED_SUFFIXES", "Extracted", "Ocr", "Reader", "Reading", "reader_for"]

KINDS = {
    ".txt": "text",
    "": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".odt": "odt",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".csv": "csv",
    ".epub": "epub",
}
SUPPORTED_SUFFIXES = frozenset(suffix for suffix in KINDS if suffix)


def reader_for(suffix: str) -> Reader:
    """The reader of files ending in `suffix` ("" for no extension); `DocumentError` if none."""
    match KINDS.get(suffix.lower()):
        case "text":
            from rag.formats.text import read_text

            return read_text
        case "markdown":
            from rag.formats.text import read_markdown

            return read_markdown
        case "html":
            from rag.formats.html import read_html

            return read_html
        case "pdf":
            from rag.formats.pdf import read_pdf

            return read_pdf
        case "docx" | "odt" | "pptx" | "epub" as kind:
            from rag.formats import office

            return {
                "docx": office.read_docx,
                "odt": office.read_odt,
                "pptx": office.read_pptx,
                "epub": office.read_epub,
            }[kind]
        case "xlsx" | "csv" as kind:
            from rag.formats import sheets

            return sheets.read_xlsx if kind == "xlsx" else sheets.read_csv
    kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
    named = suffix or "(no extension)"
    raise DocumentError(f"unsupported file type {named!r} (supported: {kinds})")
