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
        (b"caf\xe9 latin-1", "latin.md", "not valid UTF-8 (byte 3)"),
        (b"<html><body><script>x()</script></body></html>", "empty.html", "no text content"),
        (b"%PDF-1.4 this is not really a pdf", "broken.pdf", "unreadable PDF"),
        (text_pdf(["x"])[:150], "truncated.pdf", "unreadable PDF"),
        (encrypted_pdf(["secret"]), "locked.pdf", "encrypted PDF"),
        (text_pdf([]), "scanned.pdf", "no extractable text"),
        (b"data", "table.csv", "unsupported file type '.csv'"),
    ],
)
def test_unreadable_files_raise_with_a_reason(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(DocumentError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_document(data, Path(name), name)


def test_discover_walks_folders_names_sources_and_reports_problems(tmp_path: Path) -> None:
    docs = write_corpus(
        tmp_path / "docs",
        {"a.md": "a", "sub/b.txt": "b", "c.csv": "c", ".hidden/d.md": "d", ".e.md": "e"},
    )
    single = write_corpus(tmp_path / "other", {"f.html": "<p>f</p>", "g.xyz": "g"})
    found = discover([docs, single / "f.html", single / "g.xyz", tmp_path / "missing.md"])
    assert [c.source for c in found.candidates] == ["docs/a.md", "docs/sub/b.txt", "f.html"]
    assert [c.from_folder for c in found.candidates] == [True, True, False]
    assert found.folders == [docs.resolve()]
    assert [(Path(s.path).name, s.reason.split(" (")[0]) for s in found.skipped] == [
        ("g.xyz", "unsupported file type '.xyz'"),
        ("missing.md", "no such file or directory"),
    ]
    assert [Path(s.path).name for s in found.ignored] == ["c.csv"]


def test_the_same_file_given_twice_is_read_once(corpus: Path) -> None:
    found = discover([corpus / "oxygen.txt", corpus / "oxygen.txt"])
    assert len(found.candidates) == 1
