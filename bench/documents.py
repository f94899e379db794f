"""The articles of a SQuAD file as the files people have: text, HTML, a PDF with a text layer,
a scanned PDF (page pictures only), .docx, .odt, .pptx, .xlsx, .csv and .epub, each made by the
library that writes that kind, holding the article's paragraphs (and its questions and answers
as a table where the kind has tables)."""

from __future__ import annotations

import csv
import html
import io
import textwrap
from collections.abc import Callable
from pathlib import Path

from rag.squad import Article

LINES_PER_PAGE, CHARS_PER_LINE = 48, 90


def paragraphs(article: Article) -> list[str]:
    return [p.strip() for p in article.text.split("\n\n") if p.strip()]


def qa_rows(article: Article) -> list[tuple[str, str]]:
    return [(q.text, q.answers[0]) for q in article.questions if q.answers]


def as_txt(article: Article) -> bytes:
    return article.text.encode()


def as_html(article: Article) -> bytes:
    body = "".join(f"<p>{html.escape(p)}</p>\n" for p in paragraphs(article))
    title = html.escape(article.title)
    return (
        f"<!doctype html><html><head><title>{title}</title><style>p{{margin:1em}}</style>"
        f"</head><body><h1>{title}</h1>\n{body}</body></html>"
    ).encode()


def as_pdf(article: Article) -> bytes:
    """Letter pages of Helvetica lines, the PDF operators written here (no PDF writer is a
    dependency): objects 1 catalog, 2 page tree, 3 font, then each page's content and page."""
    lines = _lines(article)
    pages = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)]
    kids = [5 + 2 * n for n in range(len(pages))]
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % kid for kid in kids), len(kids)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for kid, page in zip(kids, pages, strict=True):
        ops = ["BT", "/F1 10 Tf", "50 750 Td", "14 TL"]
        for line in page:
            text = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({text}) Tj T*")
        stream = "\n".join([*ops, "ET"]).encode("latin-1", errors="replace")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % (kid - 1)
        )
    return pdf_objects(objects)


def pdf_objects(objects: list[bytes], info: int | None = None) -> bytes:
    """A PDF file of `objects` (numbered from 1; object 1 the catalog, `info` the document
    information dictionary's number) with its cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    size, extra = len(objects) + 1, b" /Info %d 0 R" % info if info else b""
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (size, extra, xref)
    )
    return out.getvalue()


def as_scanned_pdf(article: Article, n_pages: int) -> bytes:
    """The first `n_pages` pages of `as_pdf`'s layout as 200 dpi pictures, no text layer."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=28)
    lines = _lines(article)
    images = []
    for start in range(0, min(len(lines), n_pages * LINES_PER_PAGE), LINES_PER_PAGE):
        image = Image.new("L", (1700, 2200), 255)
        draw = ImageDraw.Draw(image)
        for number, line in enumerate(lines[start : start + LINES_PER_PAGE]):
            draw.text((120, 120 + 40 * number), line, fill=0, font=font)
        images.append(image)
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=200)
    return out.getvalue()


def scanned_text(article: Article, n_pages: int) -> str:
    return "\n".join(_lines(article)[: n_pages * LINES_PER_PAGE])


def as_docx(article: Article) -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = article.title
    document.add_heading(article.title, level=1)
    for paragraph in paragraphs(article):
        document.add_paragraph(paragraph)
    rows = qa_rows(article)
    table = document.add_table(rows=len(rows), cols=2)
    for row, (question, answer) in zip(table.rows, rows, strict=True):
        row.cells[0].text, row.cells[1].text = question, answer
    return _saved(document)


def as_odt(article: Article) -> bytes:
    import odfdo

    document = odfdo.Document("text")
    document.meta.title = article.title
    document.body.append(odfdo.Header(1, article.title))
    for paragraph in paragraphs(article):
        document.body.append(odfdo.Paragraph(paragraph))
    rows = qa_rows(article)
    table = odfdo.Table("Questions", width=2, height=len(rows))
    table.set_values([list(row) for row in rows])
    document.body.append(table)
    return _saved(document)


def as_pptx(article: Article) -> bytes:
    import pptx

    presentation = pptx.Presentation()
    questions = qa_rows(article)
    for number, paragraph in enumerate(paragraphs(article)):
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = f"{article.title}, part {number + 1}"
        slide.placeholders[1].text = paragraph
        if number < len(questions):
            slide.notes_slide.notes_text_frame.text = " ".join(questions[number])
    return _saved(presentation)


def as_xlsx(article: Article) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Questions"
    sheet.append(["Question", "Answer"])
    for row in qa_rows(article):
        sheet.append(list(row))
    text = book.create_sheet("Paragraphs")
    text.append(["Number", "Paragraph"])
    for number, paragraph in enumerate(paragraphs(article), start=1):
        text.append([number, paragraph])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def as_csv(article: Article) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Question", "Answer", "Article"])
    for question, answer in qa_rows(article):
        writer.writerow([question, answer, article.title])
    return out.getvalue().encode()


def as_epub(article: Article) -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier(article.slug)
    book.set_title(article.title)
    book.set_language("en")
    chapters = []
    for number, paragraph in enumerate(paragraphs(article), start=1):
        chapter = epub.EpubHtml(title=f"Part {number}", file_name=f"p{number}.xhtml", lang="en")
        chapter.content = f"<h1>Part {number}</h1><p>{html.escape(paragraph)}</p>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = chapters
    out = io.BytesIO()
    epub.write_epub(out, book)
    return out.getvalue()


WRITERS: dict[str, Callable[[Article], bytes]] = {
    ".txt": as_txt,
    ".html": as_html,
    ".pdf": as_pdf,
    ".docx": as_docx,
    ".odt": as_odt,
    ".pptx": as_pptx,
    ".xlsx": as_xlsx,
    ".csv": as_csv,
    ".epub": as_epub,
}


def expected_text(article: Article, suffix: str) -> str:
    """The text a file of kind `suffix` made from `article` holds."""
    if suffix in {".xlsx", ".csv"}:
        rows = [" ".join(row) for row in qa_rows(article)]
        return "\n".join(rows + ([] if suffix == ".csv" else paragraphs(article)))
    return article.text


def write_all(article: Article, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for suffix, writer in WRITERS.items():
        path = folder / f"{article.slug}{suffix}"
        path.write_bytes(writer(article))
        written[suffix] = path
    return written


def _lines(article: Article) -> list[str]:
    lines: list[str] = []
    for paragraph in paragraphs(article):
        lines += [*textwrap.wrap(paragraph, CHARS_PER_LINE), ""]
    return lines


def _saved(document: object) -> bytes:
    out = io.BytesIO()
    document.save(out)  # type: ignore[attr-defined]
    return out.getvalue()
