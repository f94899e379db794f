"""Office files, spreadsheets, e-books and scanned PDFs made in the test by the libraries that
write them, so no binary fixtures are committed and the text each holds is known."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence


def docx_file(title: str = "Harbour report") -> bytes:
    """A .docx: a heading, two paragraphs, a table with a merged cell, a closing paragraph."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading("Lighthouse keepers", level=1)
    document.add_paragraph("The north lighthouse was built in 1874 from granite.")
    document.add_paragraph("Its lamp burned whale oil until 1902.")
    table = document.add_table(rows=3, cols=3)
    for row, cells in zip(
        table.rows,
        [("Keeper", "From", "To"), ("Ada Brennan", "1874", "1890"), ("Tomas Ek", "1890", "1911")],
        strict=True,
    ):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    merged = document.add_table(rows=1, cols=3)
    merged.rows[0].cells[0].merge(merged.rows[0].cells[1]).text = "Spans two columns"
    merged.rows[0].cells[2].text = "alone"
    document.add_paragraph("The keepers logged every ship that passed.")
    return _saved(document)


def odt_file(title: str = "Mill ledger", encrypted: bool = False) -> bytes:
    """An .odt: a heading, a paragraph, a bulleted list, a table with a merged cell, a closing
    paragraph; `encrypted` marks its content encrypted in the manifest, as a password does."""
    import odfdo

    document = odfdo.Document("text")
    document.meta.title = title
    body = document.body
    body.append(odfdo.Header(1, "Windmills"))
    body.append(odfdo.Paragraph("The old mill ground rye for the village until 1931."))
    body.append(odfdo.List(["Sails of canvas", "A cap that turned to the wind"]))
    table = odfdo.Table("Millers", width=3, height=3)
    table.set_values([["Miller", "From", "To"], ["Jan Visser", "1880", "1903"], ["", "", ""]])
    table.set_values([["Spans two columns", "", "alone"]], coord="A3")
    table.set_span("A3:B3", merge=True)
    body.append(table)
    body.append(odfdo.Paragraph("A storm broke two sails in 1921."))
    data = _saved(document)
    if not encrypted:
        return data
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            part = source.read(item)
            if item.filename == "META-INF/manifest.xml":
                part = re.sub(
                    rb'(full-path="content.xml"[^>]*?)/>',
                    rb'\1><manifest:encryption-data manifest:checksum-type="SHA1/1K" '
                    rb'manifest:checksum="x"/></manifest:file-entry>',
                    part,
                )
                assert b"encryption-data" in part
            elif item.filename == "content.xml":
                part = bytes(b ^ 0x5A for b in part)
            target.writestr(item, part)
    return out.getvalue()


def pptx_file() -> bytes:
    """A .pptx of two slides: titles, a bullet body, speaker notes, a table."""
    import pptx
    from pptx.util import Inches

    presentation = pptx.Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    first.shapes.title.text = "Quarterly harvest"
    first.placeholders[1].text = "Apples rose 12 percent\nPears fell after the frost"
    first.notes_slide.notes_text_frame.text = "Mention the frost of April 3rd."
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Orchards"
    rows = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(1)).table
    for r, cells in enumerate([("Orchard", "Trees"), ("Hillside", "340")]):
        for c, text in enumerate(cells):
            rows.cell(r, c).text = text
    return _saved(presentation)


def xlsx_file() -> bytes:
    """A .xlsx of two sheets: a table with a header row, a formula and a date."""
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    cities = book.active
    cities.title = "Cities"
    cities.append(["City", "Population", "Founded"])
    cities.append(["Tampere", 244223, dt.datetime(1779, 10, 1)])
    cities.append(["Oulu", 214633.0, None])
    rivers = book.create_sheet("Rivers")
    rivers.append(["River", "Length km"])
    rivers.append(["Kemijoki", 550])
    book.properties.title = "Finnish places"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def epub_file() -> bytes:
    """An .epub of two chapters, whose spine puts the second file first."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("test-book")
    book.set_title("The Salt Road")
    book.set_language("en")
    one = epub.EpubHtml(title="One", file_name="one.xhtml", lang="en")
    one.content = "<h1>Chapter one</h1><p>The caravan left Timbuktu at dawn.</p>"
    two = epub.EpubHtml(title="Two", file_name="two.xhtml", lang="en")
    two.content = "<h1>Chapter two</h1><p>Salt was traded for gold in the south.</p>"
    book.add_item(one)
    book.add_item(two)
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [two, one]
    out = io.BytesIO()
    epub.write_epub(out, book)
    return out.getvalue()


def scanned_pdf(pages: Sequence[str]) -> bytes:
    """A PDF made only of page pictures (no text layer), each showing one page's lines."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=40)
    images = []
    for text in pages:
        image = Image.new("L", (1700, 2200), 255)  # a letter page at 200 dpi
        draw = ImageDraw.Draw(image)
        for number, line in enumerate(text.splitlines()):
            draw.text((150, 200 + 70 * number), line, fill=0, font=font)
        images.append(image)
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=200)
    return out.getvalue()


def zip_bomb(name: str, inflated_mb: int = 1024) -> bytes:
    """A ZIP (posing as an Office file or e-book) holding one part that inflates to
    `inflated_mb` MB of blanks, about 1 MB on disk."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open(name, "w", force_zip64=True) as part:
            block = b" " * (1 << 20)
            for _ in range(inflated_mb):
                part.write(block)
    return out.getvalue()


def _saved(document: object) -> bytes:
    out = io.BytesIO()
    document.save(out)  # type: ignore[attr-defined]
    return out.getvalue()


LAUGHS = "".join(
    [
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol0 "lol">\n',
        *(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">\n' for n in range(1, 10)),  # 10^9 "lol"s
        "]>\n",
    ]
).encode()


def entity_bomb(data: bytes, part: str, word: bytes) -> bytes:
    """`data` (a ZIP) with its XML `part` behind a "billion laughs" DTD and `word` replaced by
    the entity that would expand to 3 GB of text."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == part:
                body = content.split(b"?>", 1)[1] if content.startswith(b"<?xml") else content
                assert word in body, (part, word)
                content = LAUGHS + body.replace(word, b"&lol9;", 1)
            archive.writestr(info, content)
    return out.getvalue()
