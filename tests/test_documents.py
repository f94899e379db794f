from __future__ import annotations

from pathlib import Path

import pytest

from rag.documents import discover, parse_document
from rag.errors import DocumentError
from tests.conftest import write_corpus
from tests.pdfs import encrypted_pdf, text_pdf


def parse(data: bytes, name: str) -> str:
    return parse_document(data, Path(name), name).text


def test_markdown_title_comes_from_first_heading() -> None:
    doc = parse_document(b"intro\n# The Title\n\nbody", Path("x.md"), "x.md")
    assert doc.title == "The Title"


def test_txt_title_comes_from_file_name() -> None:
    doc = parse_document(b"some text", Path("black_death.txt"), "black_death.txt")
    assert doc.title == "black death"


def test_html_keeps_text_and_drops_scripts_and_styles() -> None:
    html = (
        b"<html><head><title>T</title><style>.x{color:red}</style></head><body>"
        b"<p>Visible  words</p><script>var hidden = 1;</script>"
        b"<noscript>nojs</noscript></body></html>"
    )
    doc = parse_document(html, Path("p.html"), "p.html")
    assert doc.title == "T"
    assert "Visible words" in doc.text
    assert "hidden" not in doc.text and "color" not in doc.text and "nojs" not in doc.text


def test_pdf_text_and_title() -> None:
    doc = parse_document(
        text_pdf(["Hello (world)", "line two"], title="Report"), Path("r.pdf"), "r.pdf"
    )
    assert doc.title == "Report"
    assert doc.text == "Hello (world)\nline two"


def test_crlf_is_normalised() -> None:
    assert parse(b"a\r\nb\rc", "x.txt") == "a\nb\nc"


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"", "empty.txt", "empty file"),
        (b"  \n\t ", "blank.md", "empty file"),
        (b"\x00\x01\x02binary\xff\x00", "junk.txt", "binary content"),
        (b"\xef\xbb\xbf\xff\xfe broken after a UTF-8 mark", "bom.md", "not valid UTF-8-SIG"),
        (b"<html><body><script>x()</script></body></html>", "empty.html", "no text content"),
        (b"%PDF-1.4 this is not really a pdf", "broken.pdf", "unreadable PDF"),
        (text_pdf(["x"])[:150], "truncated.pdf", "unreadable PDF"),
        (encrypted_pdf(["secret"]), "locked.pdf", "encrypted PDF"),
        (text_pdf([]), "scanned.pdf", "no extractable text"),
        (b"data", "table.xyz", "unsupported file type '.xyz'"),
    ],
)
def test_unreadable_files_raise_with_a_reason(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(DocumentError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_document(data, Path(name), name)


def test_discover_walks_folders_names_sources_and_reports_problems(tmp_path: Path) -> None:
    docs = write_corpus(
        tmp_path / "docs",
        {
            "a.md": "a",
            "sub/b.txt": "b",
            "c.png": b"\x89PNG\r\n\x1a\n\x00\x00",
            ".hidden/d.md": "d",
            ".e.md": "e",
            "README": "read me first",
            "tool": b"\x7fELF\x02\x01\x01\x00\x00\x00",
        },
    )
    single = write_corpus(tmp_path / "other", {"f.html": "<p>f</p>", "g.xyz": "g"})
    found = discover([docs, single / "f.html", single / "g.xyz", tmp_path / "missing.md"])
    assert [c.source for c in found.candidates] == [
        "docs/README",  # no extension, text inside
        "docs/a.md",
        "docs/sub/b.txt",
        "f.html",
    ]
    assert [c.from_folder for c in found.candidates] == [True, True, True, False]
    assert found.folders == [docs.resolve()]
    assert [(Path(s.path).name, s.reason.split(" (")[0]) for s in found.skipped] == [
        ("g.xyz", "unsupported file type '.xyz'"),
        ("missing.md", "no such file or directory"),
    ]
    assert [(Path(s.path).name, s.reason.split(" (")[0]) for s in found.ignored] == [
        ("c.png", "unsupported file type '.png'"),
        ("tool", "no extension and not text"),
    ]


def test_the_same_file_given_twice_is_read_once(corpus: Path) -> None:
    found = discover([corpus / "oxygen.txt", corpus / "oxygen.txt"])
    assert len(found.candidates) == 1


@pytest.mark.parametrize(
    ("data", "name", "text", "encoding"),
    [
        # what a document declares: the XML declaration, <meta charset>, <meta http-equiv>
        (
            b'<?xml version="1.0" encoding="ISO-8859-1"?>\n'
            b"<html><body><p>Gr\xfc\xdfe \x93quoted\x94</p></body></html>",
            "declared.html",
            "Grüße “quoted”",  # ISO-8859-1 is read as windows-1252, as browsers do
            "cp1252",
        ),
        (b'<meta charset="koi8-r"><p>\xf0\xd2\xc9\xd7\xc5\xd4</p>', "koi.html", "Привет", "koi8-r"),
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-15">'
            b"<p>co\xfbt 5 \xa4</p>",
            "euro.htm",
            "coût 5 €",
            "iso8859-15",
        ),
        # valid UTF-8 is UTF-8, whatever a page declares (a template's stale <meta> is common)
        (
            '<meta charset="windows-1252"><p>naïve — ok</p>'.encode(),
            "wrong.html",
            "naïve — ok",
            None,
        ),
        # a byte-order mark wins
        (
            "\ufeffwide text, ünïcode".encode("utf-16-le"),
            "wide.txt",
            "wide text, ünïcode",
            "utf-16",
        ),
        ("\ufeffutf-8 with a mark".encode(), "marked.md", "utf-8 with a mark", None),
        # no declaration, not UTF-8: detected
        (
            "Le cœur a ses raisons … Pascal".encode("cp1252"),
            "pascal.txt",
            "Le cœur a ses raisons … Pascal",
            "cp1252",
        ),
        (b"caf\xe9 cr\xe8me", "latin.md", "café crème", "cp1252"),
        (
            "Съешь же ещё этих мягких французских булок".encode("cp1251"),
            "ru.txt",
            "Съешь же ещё этих мягких французских булок",
            "cp1251",
        ),
    ],
)
def test_text_is_read_in_the_encoding_declared_or_detected(
    data: bytes, name: str, text: str, encoding: str | None
) -> None:
    document = parse_document(data, Path(name), name)
    assert document.text == text
    assert document.encoding == encoding


def test_an_extensionless_text_file_is_read_as_plain_text() -> None:
    document = parse_document(b"Version 2.1 fixes the parser.", Path("NEWS"), "docs/NEWS")
    assert (document.title, document.text) == ("NEWS", "Version 2.1 fixes the parser.")
