"""Each kind of file read into the text it holds: Office files, spreadsheets, e-books, scanned
PDFs (by a scripted OCR engine and by the real Tesseract), and the refusals a hostile or broken
container gets."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.chunks import Chunker
from rag.documents import Document, parse_document
from rag.embeddings import HashingEmbedder
from rag.errors import DocumentError
from rag.formats.archive import OLE_MAGIC
from rag.formats.ocr import find_ocr
from rag.settings import Settings
from tests.conftest import NEEDS_TESSERACT, indexed_retriever, write_corpus
from tests.fakes import ScriptedOcr
from tests.office_files import (
    docx_file,
    entity_bomb,
    epub_file,
    odt_file,
    pptx_file,
    scanned_pdf,
    xlsx_file,
    zip_bomb,
)
from tests.pdfs import text_pdf

SCANNED = [
    "The harbour master counted forty ships in March.\nEach paid a toll of three silver coins.",
    "Storms closed the harbour for nine days in winter.",
]


def parse(data: bytes, name: str, **options: object) -> Document:
    return parse_document(data, Path(name), name, **options)  # type: ignore[arg-type]


def test_docx_paragraphs_headings_and_tables_in_order() -> None:
    document = parse(docx_file(title="Harbour report"), "keepers.docx")
    assert document.title == "Harbour report"
    assert document.text == (
        "Lighthouse keepers\n\n"
        "The north lighthouse was built in 1874 from granite.\n\n"
        "Its lamp burned whale oil until 1902.\n\n"
        "Keeper | From | To\nAda Brennan | 1874 | 1890\nTomas Ek | 1890 | 1911\n\n"
        "Spans two columns | alone\n\n"  # the merged cell once
        "The keepers logged every ship that passed."
    )


def test_docx_without_a_title_property_takes_its_first_heading() -> None:
    assert parse(docx_file(title=""), "keepers.docx").title == "Lighthouse keepers"


def test_odt_paragraphs_headings_lists_and_tables_in_order() -> None:
    document = parse(odt_file(title="Mill ledger"), "mills.odt")
    assert document.title == "Mill ledger"
    assert document.text == (
        "Windmills\n\n"
        "The old mill ground rye for the village until 1931.\n\n"
        "Sails of canvas\n\nA cap that turned to the wind\n\n"
        "Miller | From | To\nJan Visser | 1880 | 1903\n"
        "Spans two columns | alone\n\n"  # the merged cell once
        "A storm broke two sails in 1921."
    )
    assert parse(odt_file(title=""), "mills.odt").title == "Windmills"  # its first heading


def test_a_password_protected_odt_is_refused_with_a_reason() -> None:
    with pytest.raises(DocumentError, match=r"an encrypted \.odt \(password protected\)"):
        parse(odt_file(encrypted=True), "locked.odt")


def test_pptx_slide_titles_text_tables_and_speaker_notes() -> None:
    document = parse(pptx_file(), "harvest.pptx")
    assert document.title == "Quarterly harvest"
    assert document.text == (
        "Slide 1: Quarterly harvest\nApples rose 12 percent\nPears fell after the frost\n"
        "Notes: Mention the frost of April 3rd.\n\n"
        "Slide 2: Orchards\nOrchard | Trees\nHillside | 340"
    )


def test_xlsx_sheets_named_and_each_row_names_its_columns() -> None:
    document = parse(xlsx_file(), "places.xlsx")
    assert document.title == "Finnish places"
    assert document.text == (
        "Sheet: Cities\nCity | Population | Founded\n"
        "City: Tampere; Population: 244223; Founded: 1779-10-01\n"
        "City: Oulu; Population: 214633\n\n"
        "Sheet: Rivers\nRiver | Length km\nRiver: Kemijoki; Length km: 550"
    )


def test_csv_quoted_commas_line_breaks_and_another_delimiter() -> None:
    data = b'name,motto\n"Smith, John","Work hard,\nplay hard"\nDoe,"say ""hi"""\n'
    assert parse(data, "people.csv").text == (
        'name | motto\nname: Smith, John; motto: Work hard, play hard\nname: Doe; motto: say "hi"'
    )
    semicolons = "Stadt;Einwohner\nKöln;1084831\nMünchen;1512491\n".encode("cp1252")
    document = parse(semicolons, "städte.csv")
    assert document.text.splitlines()[1:] == [
        "Stadt: Köln; Einwohner: 1084831",
        "Stadt: München; Einwohner: 1512491",
    ]
    assert document.encoding == "cp1252"


def test_a_long_sheet_is_chunked_between_rows(embedder: HashingEmbedder) -> None:
    rows = "id,city,note\n" + "".join(f"{n},city {n},a note about row {n}\n" for n in range(2000))
    document = parse(rows.encode(), "rows.csv")
    chunks = Chunker(embedder.count_tokens, 64, 16).split(document)
    assert len(chunks) > 20
    for chunk in chunks:
        assert chunk.text == document.text[chunk.start : chunk.end]
        assert chunk.start == 0 or document.text[chunk.start - 1] == "\n"
        assert chunk.end == len(document.text) or document.text[chunk.end] == "\n"


def test_epub_chapters_in_spine_order() -> None:
    document = parse(epub_file(), "salt.epub")
    assert document.title == "The Salt Road"
    assert document.text == (
        "Chapter two\n\nSalt was traded for gold in the south.\n\n"
        "Chapter one\n\nThe caravan left Timbuktu at dawn."
    )


def test_scanned_pages_are_rendered_and_read_by_the_ocr_engine() -> None:
    from PIL import Image

    ocr = ScriptedOcr(SCANNED)
    document = parse(scanned_pdf(SCANNED), "scan.pdf", ocr=ocr)
    assert document.text == "\n\n".join(SCANNED)
    assert document.ocr_pages == 2
    pictures = [Image.open(io.BytesIO(png)) for png in ocr.images]
    for picture in pictures:  # a letter page at 300 dpi (PDFium rounds up a pixel)
        assert abs(picture.size[0] - 2550) <= 1 and abs(picture.size[1] - 3300) <= 1


def test_only_pages_without_a_text_layer_go_to_ocr() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for data in (text_pdf(["A page with its own text."]), scanned_pdf(SCANNED[:1])):
        writer.append(PdfReader(io.BytesIO(data)))
    out = io.BytesIO()
    writer.write(out)
    ocr = ScriptedOcr(SCANNED[1:])
    document = parse(out.getvalue(), "mixed.pdf", ocr=ocr)
    assert document.text == "A page with its own text.\n\n" + SCANNED[1]
    assert (document.ocr_pages, len(ocr.images)) == (1, 1)


def test_without_an_ocr_engine_a_scanned_pdf_is_skipped_saying_how_to_read_it() -> None:
    with pytest.raises(DocumentError, match="apt-get install tesseract-ocr"):
        parse(scanned_pdf(SCANNED), "scan.pdf", ocr=None)


@NEEDS_TESSERACT
def test_tesseract_reads_nine_in_ten_words_of_a_scanned_page() -> None:
    document = parse(scanned_pdf(SCANNED), "scan.pdf", ocr=find_ocr())
    expected = " ".join(SCANNED).split()
    read = set(document.text.split())
    assert sum(word in read for word in expected) >= 0.9 * len(expected), document.text
    assert document.ocr_pages == 2


@pytest.mark.parametrize("name", ["bomb.docx", "bomb.odt", "bomb.pptx", "bomb.xlsx", "bomb.epub"])
def test_a_zip_bomb_posing_as_a_document_is_refused_in_bounded_memory(
    name: str, bomb: bytes
) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(DocumentError, match=r"inflate to 1,024 MiB.*zip bomb"):
            parse(bomb, name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(bomb), (
        f"{peak / 2**20:.1f} MiB to refuse a {len(bomb) / 2**20:.1f} MiB file"
    )


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return zip_bomb("word/document.xml", inflated_mb=1024)


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (OLE_MAGIC + b"\x00" * 512, "locked.docx", "password-protected (encrypted) or old binary"),
        (b"PK\x03\x04 not really", "broken.xlsx", "not a ZIP archive"),
        (docx_file()[:-200], "truncated.docx", "not a ZIP archive"),
        (zip_bomb("x.xml", inflated_mb=1), "empty.docx", "unreadable .docx"),
        (zip_bomb("x.xml", inflated_mb=1), "empty.epub", "unreadable .epub"),
        (zip_bomb("x.xml", inflated_mb=1), "empty.odt", "unreadable .odt"),
        (b"a,b\n", "header-only.csv", None),
    ],
)
def test_broken_containers_are_refused_with_a_reason(
    data: bytes, name: str, reason: str | None
) -> None:
    if reason is None:
        assert parse(data, name).text == "a | b"
        return
    with pytest.raises(DocumentError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse(data, name)


def test_a_question_about_each_kind_finds_its_file(tmp_path: Path, settings: Settings) -> None:
    docs = write_corpus(
        tmp_path / "work",
        {
            "keepers.docx": docx_file(),
            "harvest.pptx": pptx_file(),
            "places.xlsx": xlsx_file(),
            "salt.epub": epub_file(),
            "mills.odt": odt_file(),
            "people.csv": b"name,motto\nGrete Lund,measure twice cut once\n",
            "notes.md": "# Notes\n\nNothing about the other files here.",
        },
    )
    retriever = indexed_retriever(docs, settings)
    for question, source in [
        ("Who was keeper from 1874 to 1890?", "work/keepers.docx"),
        ("How much did apples rise in the quarterly harvest?", "work/harvest.pptx"),
        ("What is the length of the Kemijoki river?", "work/places.xlsx"),
        ("When did the caravan leave Timbuktu?", "work/salt.epub"),
        ("Until when did the old mill grind rye?", "work/mills.odt"),
        ("Whose motto is measure twice cut once?", "work/people.csv"),
    ]:
        assert retriever.search(question, k=1)[0].chunk.source == source, question


@pytest.mark.parametrize(
    ("make", "name", "part", "word"),
    [
        (docx_file, "laughs.docx", "word/document.xml", b"Lighthouse keepers"),
        (pptx_file, "laughs.pptx", "ppt/slides/slide1.xml", b"Quarterly harvest"),
        (xlsx_file, "laughs.xlsx", "xl/worksheets/sheet1.xml", b"Tampere"),
        (epub_file, "laughs.epub", "EPUB/one.xhtml", b"Timbuktu"),
        (odt_file, "laughs.odt", "content.xml", b"Windmills"),
    ],
)
def test_an_xml_entity_bomb_inside_a_document_is_not_expanded(
    make: Callable[[], bytes], name: str, part: str, word: bytes
) -> None:
    tracemalloc.start()
    try:
        try:
            text = parse(entity_bomb(make(), part, word), name).text
        except DocumentError as err:  # refused by the XML parser's amplification limit
            text = str(err)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "lollol" not in text and len(text) < 10_000, text[:200]
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB"
