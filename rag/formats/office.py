"""Word documents (.docx: paragraphs, headings and tables in order), OpenDocument texts (.odt:
the same), presentations (.pptx: slide titles, text, tables and speaker notes) and e-books
(.epub: chapters in reading order) -> text, by python-docx, odfdo, python-pptx and EbookLib.
Nothing in them is executed."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from rag.errors import DocumentError
from rag.formats.archive import BROKEN, broken, check_zip
from rag.formats.html import html_text
from rag.formats.reading import Extracted, Reading
from rag.formats.text import decode


def read_docx(data: bytes, reading: Reading) -> Extracted:
    check_zip(data, ".docx")
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks, heading = [], ""
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                blocks.append("\n".join(table_rows(block.rows)))
                continue
            text = block.text.strip()
            style = block.style.name if block.style is not None else ""
            if text and not heading and style in {"Title", "Heading 1"}:
                heading = text
            blocks.append(text)
        title = document.core_properties.title or heading
    except BROKEN as err:
        raise broken(".docx", err) from None
    return Extracted(_joined(blocks), title)


ODF_BLOCKS = {"text:p", "text:h"}  # a paragraph, a heading
ODF_CONTAINERS = {"text:list", "text:list-item", "text:list-header", "text:section"}


def read_odt(data: bytes, reading: Reading) -> Extracted:
    check_zip(data, ".odt")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = "META-INF/manifest.xml"
        if manifest in archive.namelist() and b"encryption-data" in archive.read(manifest):
            raise DocumentError("an encrypted .odt (password protected)")
    import odfdo
    from odfdo.security import SecurityError  # its own limits: compression ratio, XML depth

    try:
        document = odfdo.Document(io.BytesIO(data))
        if document.get_type() not in {"text", "text-template"}:
            raise DocumentError(f"not an OpenDocument text but a {document.get_type()}")
        blocks = list(_odf_blocks(document.body))
        headings = document.body.get_headers(outline_level="1")
        heading = " ".join(headings[0].text_recursive.split()) if headings else ""
        title = document.meta.title or heading
    except (*BROKEN, SecurityError) as err:
        raise broken(".odt", err) from None
    return Extracted(_joined(blocks), title or "")


def _odf_blocks(element: Any) -> Iterator[str]:
    """The text of each paragraph, heading and table row, in document order."""
    for child in element.children:
        if child.tag in ODF_BLOCKS:
            yield child.text_recursive.strip()
        elif child.tag == "table:table":
            rows = []
            for row in child.get_rows():
                cells = [
                    " ".join(cell.text_recursive.split())
                    for cell in row.get_cells()
                    if cell.tag == "table:table-cell"  # not one a merged cell covers
                ]
                if any(cells):
                    rows.append(" | ".join(cells))
            yield "\n".join(rows)
        elif child.tag in ODF_CONTAINERS:
            yield from _odf_blocks(child)


def read_pptx(data: bytes, reading: Reading) -> Extracted:
    check_zip(data, ".pptx")
    import pptx

    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        slides, first_title = [], ""
        for number, slide in enumerate(presentation.slides, start=1):
            title_shape = slide.shapes.title
            title = title_shape.text_frame.text.strip() if title_shape is not None else ""
            first_title = first_title or title
            lines = [f"Slide {number}: {title}" if title else f"Slide {number}"]
            for shape in _shapes(slide.shapes):
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                if shape.has_text_frame and shape.text_frame.text.strip():
                    lines.append(shape.text_frame.text.strip())
                if getattr(shape, "has_table", False):
                    lines += table_rows(shape.table.rows)
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = slide.notes_slide.notes_text_frame.text.strip()
                if notes:
                    lines.append(f"Notes: {notes}")
            slides.append("\n".join(lines))
        title = presentation.core_properties.title or first_title
    except BROKEN as err:
        raise broken(".pptx", err) from None
    return Extracted(_joined(slides), title)


def read_epub(data: bytes, reading: Reading) -> Extracted:
    check_zip(data, ".epub")
    from ebooklib import epub

    try:
        book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
        chapters = []
        for idref, _linear in book.spine:
            item = book.get_item_with_id(idref)
            if item is not None:
                chapters.append(html_text(decode(item.get_content(), markup=True).text)[1])
        titles = book.get_metadata("DC", "title")
    except (*BROKEN, epub.EpubException) as err:
        raise broken(".epub", err) from None
    return Extracted(_joined(chapters), str(titles[0][0]) if titles else "")


def table_rows(rows: Iterable[Any]) -> list[str]:
    """One line per row, cells joined by " | "; a merged cell once (python-docx repeats it for
    each column it spans, python-pptx marks the cells it covers as spanned)."""
    lines = []
    for row in rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous or getattr(cell, "is_spanned", False):
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append(" | ".join(cells))
    return lines


def _shapes(shapes: Iterable[Any]) -> Iterator[Any]:
    """Every shape, those inside groups too, in slide order."""
    for shape in shapes:
        if getattr(shape, "shapes", None) is not None:  # a group
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _joined(blocks: Iterable[str]) -> str:
    return "\n\n".join(block for block in blocks if block.strip())
