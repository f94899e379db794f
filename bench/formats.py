"""Reading each kind of file (a section of `python -m bench`): the articles of a SQuAD file
written as text, HTML, PDF, .docx, .odt, .pptx, .xlsx, .csv and .epub (`bench.documents`), each read
by our reader (`parse_document`); per kind MB/s, extracted characters/s and word recall against
the text the file was made from, next to what embedding that much text with MiniLM costs (the
reference, measured in the same run: reading is worth optimising only where it rivals it).
Scanned pages are read by Tesseract (seconds per page, word recall). Where `markitdown` can be
imported, the same files are read by it too, as the peer a converter-based design would use.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.documents import WRITERS, as_scanned_pdf, expected_text, scanned_text
from bench.report import table
from rag.squad import Article, load_articles


def word_recall(expected: str, got: str) -> float:
    """The share of `expected`'s distinct words (lower case) found in `got`."""
    want = set(re.findall(r"\w+", expected.lower()))
    return len(want & set(re.findall(r"\w+", got.lower()))) / max(len(want), 1)


def _timed(read: Callable[[], str], repeats: int) -> tuple[float, str]:
    read()  # imports and caches warm
    times, text = [], ""
    for _ in range(repeats):
        started = time.perf_counter()
        text = read()
        times.append(time.perf_counter() - started)
    return statistics.median(times), text


def _ours(path: Path) -> str:
    from rag.documents import parse_document

    return parse_document(path.read_bytes(), path, path.name).text


def _markitdown() -> Callable[[Path], str] | None:
    try:
        from markitdown import MarkItDown  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    converter = MarkItDown()
    return lambda path: str(converter.convert(str(path)).text_content)


def read_kinds(articles: list[Article], repeats: int) -> dict[str, Any]:
    peer = _markitdown()
    kinds: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suffix, writer in WRITERS.items():
            row: dict[str, Any] = {"bytes": 0, "chars": 0, "seconds": 0.0, "recall": []}
            peer_row: dict[str, Any] | None = None if peer is None else {"seconds": 0, "recall": []}
            for article in articles:
                path = Path(tmp) / f"{article.slug}{suffix}"
                path.write_bytes(writer(article))
                seconds, text = _timed(lambda p=path: _ours(p), repeats)  # type: ignore[misc]
                row["bytes"] += path.stat().st_size
                row["chars"] += len(text)
                row["seconds"] += seconds
                row["recall"].append(word_recall(expected_text(article, suffix), text))
                if peer is not None and peer_row is not None:
                    try:
                        seconds, text = _timed(lambda p=path: peer(p), repeats)  # type: ignore[misc]
                    except Exception:  # a kind it cannot read as installed: no figure
                        peer_row = None
                        continue
                    peer_row["seconds"] += seconds
                    peer_row["recall"].append(word_recall(expected_text(article, suffix), text))
            row["recall"] = round(statistics.mean(row["recall"]), 4)
            kinds[suffix] = row
            if peer_row is not None:
                peer_row["recall"] = round(statistics.mean(peer_row["recall"]), 4)
                row["markitdown"] = peer_row
    return kinds


def read_scans(article: Article, n_pages: int) -> dict[str, Any]:
    from rag.documents import parse_document
    from rag.formats.ocr import find_ocr

    ocr = find_ocr()
    if ocr is None:
        return {"skipped": "tesseract is not installed"}
    data = as_scanned_pdf(article, n_pages)
    started = time.perf_counter()
    document = parse_document(data, Path("scan.pdf"), "scan.pdf", ocr=ocr)
    seconds = time.perf_counter() - started
    return {
        "pages": document.ocr_pages,
        "seconds": round(seconds, 2),
        "recall": round(word_recall(scanned_text(article, n_pages), document.text), 4),
    }


def embedding_chars_per_s(articles: list[Article]) -> float:
    """MiniLM's speed on the articles' chunks, in characters of text per second."""
    from rag.chunks import Chunker
    from rag.documents import Document
    from rag.embeddings import make_embedder
    from rag.settings import Settings

    settings = Settings()
    embedder = make_embedder(settings)
    chunker = Chunker(
        embedder.count_tokens, settings.chunk_size_tokens, settings.chunk_overlap_tokens
    )
    texts = [
        chunk.text
        for article in articles
        for chunk in chunker.split(Document(article.slug, article.title, article.text))
    ]
    embedder.embed(texts[:8])
    started = time.perf_counter()
    embedder.embed(texts)
    return sum(map(len, texts)) / (time.perf_counter() - started)


def run(dataset: Path, n_articles: int | None, ocr_pages: int, repeats: int) -> dict[str, Any]:
    articles = load_articles(dataset)[:n_articles]
    return {
        "articles": len(articles),
        "repeats": repeats,
        "kinds": read_kinds(articles, repeats),
        "ocr": read_scans(articles[0], ocr_pages),
        "embedding_chars_per_s": round(embedding_chars_per_s(articles)),
    }


def render(r: dict[str, Any]) -> str:
    embed = r["embedding_chars_per_s"]
    peer = any("markitdown" in row for row in r["kinds"].values())
    rows = []
    for suffix, row in r["kinds"].items():
        chars_per_s = row["chars"] / row["seconds"] if row["seconds"] else float("inf")
        cells = [
            suffix,
            f"{row['bytes'] / 1e6:.2f}",
            f"{row['bytes'] / 1e6 / row['seconds']:.1f}" if row["seconds"] else "-",
            f"{chars_per_s / 1e3:,.0f}",
            f"{embed / chars_per_s:.3f}",
            f"{row['recall']:.3f}",
        ]
        if peer:
            theirs = row.get("markitdown")
            cells += (
                [f"{theirs['seconds'] / row['seconds']:.2f}", f"{theirs['recall']:.3f}"]
                if theirs
                else ["-", "-"]
            )
        rows.append(cells)
    header = ["kind", "MB", "MB/s", "k chars/s", "reading / embedding", "word recall"]
    align = "lrrrrr"
    if peer:
        header += ["markitdown time x", "markitdown recall"]
        align += "rr"
    ocr = r["ocr"]
    ocr_line = (
        f"Scanned pages (rendered at 300 dpi by PDFium, read by Tesseract): {ocr['pages']} pages "
        f"in {ocr['seconds']:.1f} s ({ocr['seconds'] / ocr['pages']:.2f} s per page), word "
        f"recall {ocr['recall']:.3f} against the text drawn on them."
        if "pages" in ocr
        else f"Scanned pages: not measured ({ocr['skipped']})."
    )
    return "\n".join(
        [
            "## Reading each kind of file",
            "",
            f"{r['articles']} SQuAD articles written as each kind (`bench/documents.py`), read by "
            f"`parse_document` (median of {r['repeats']}); *reading / embedding* is the time to "
            "read a kind's text over the time MiniLM takes to embed that much text "
            f"({embed / 1e3:,.1f} k chars/s, same run): below 0.1, reading is not what an "
            "ingest waits for. *Word recall*: the share of the source text's distinct words in "
            "what was read (tables and sheets hold questions and answers)."
            + (" markitdown read the same files, time as a multiple of ours." if peer else ""),
            "",
            *table(header, align, rows),
            "",
            ocr_line,
            "",
        ]
    )
