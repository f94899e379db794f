"""HTML -> text: the visible text of the page (scripts, styles and the head dropped), one line
per block, in the encoding the page declares (or, without a declaration, UTF-8 or detected)."""

from __future__ import annotations

import re

from rag.formats.reading import Extracted, Reading
from rag.formats.text import decode

HIDDEN = ["head", "script", "style", "noscript", "template"]


def read_html(data: bytes, reading: Reading) -> Extracted:
    decoded = decode(data, markup=True)
    title, text = html_text(decoded.text)
    return Extracted(text, title, decoded.encoding)


def html_text(html: str) -> tuple[str, str]:
    """(title, text) of a page: the title from <title> or the first <h1>."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title") or soup.find("h1")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    for tag in soup(HIDDEN):
        tag.decompose()
    body = soup.get_text("\n")
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in body.splitlines())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return title, text
