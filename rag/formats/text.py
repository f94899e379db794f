"""Bytes -> text in the encoding a file uses: a byte-order mark first; then UTF-8 if the bytes
are valid UTF-8 (legacy text almost never is, while pages that declare a legacy charset but hold
UTF-8 are common); then what a markup document declares (`<?xml encoding=...?>`, `<meta
charset>`); then the encoding charset-normalizer detects. Also plain text and Markdown files.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from rag.errors import DocumentError
from rag.formats.reading import Extracted, Reading

BOMS = (  # UTF-32 before UTF-16: the UTF-32-LE mark begins with the UTF-16-LE one
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
DECLARED = re.compile(
    rb"""<\?xml[^>]*?encoding\s*=\s*["']?([A-Za-z0-9._:-]+)"""  # the XML declaration
    rb"""|<meta[^>]*?charset\s*=\s*["']?([A-Za-z0-9._:-]+)""",  # <meta charset> or http-equiv
    re.IGNORECASE,
)
# The WHATWG Encoding Standard reads these labels as windows-1252 (browsers do, and documents
# that say ISO-8859-1 often hold its curly quotes in 0x80-0x9F).
AS_WINDOWS_1252 = frozenset({"iso8859-1", "ascii", "cp1252"})
SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str | None  # None for UTF-8 (with or without a BOM); else the codec read with


def decode(data: bytes, *, markup: bool = False) -> Decoded:
    """The text of `data`, or `DocumentError` when it is not text.

    >>> decode("café".encode("cp1252")).encoding
    'cp1252'
    """
    for bom, codec in BOMS:
        if data.startswith(bom):
            return _strict(data, codec, None if codec == "utf-8-sig" else codec)
    if b"\x00" in data[:SNIFF_BYTES]:
        raise DocumentError("binary content, not text (NUL bytes)")
    try:
        return Decoded(data.decode("utf-8"), None)
    except UnicodeDecodeError as err:
        utf8_error = err
    declared = _declared(data) if markup else None
    if declared is not None and declared != "utf-8":
        try:
            return Decoded(data.decode(declared), declared)
        except UnicodeDecodeError:
            pass  # the declaration is wrong: detect as if there were none
    return _detected(data, utf8_error)


def looks_like_text(head: bytes) -> bool:
    """Whether a file that begins with `head` (its first bytes) is text: no NUL bytes (unless
    a UTF-16/32 mark says so) and readable as UTF-8 or a detected encoding."""
    if any(head.startswith(bom) for bom, _ in BOMS):
        return True
    if b"\x00" in head or not head.strip():
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return True
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        return from_bytes(head).best() is not None


def read_text(data: bytes, reading: Reading) -> Extracted:
    decoded = decode(data)
    return Extracted(decoded.text, encoding=decoded.encoding)


def read_markdown(data: bytes, reading: Reading) -> Extracted:
    decoded = decode(data)
    return Extracted(decoded.text, markdown_title(decoded.text), decoded.encoding)


def markdown_title(text: str) -> str:
    for line in text.splitlines()[:50]:
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def _strict(data: bytes, codec: str, name: str | None) -> Decoded:
    try:
        return Decoded(data.decode(codec), name)
    except UnicodeDecodeError as err:
        raise DocumentError(f"not valid {codec.upper()} after its byte-order mark") from err


def _declared(data: bytes) -> str | None:
    """The codec a markup document names in its first 1,024 bytes (where browsers look)."""
    found = DECLARED.search(data[:1024])
    if found is None:
        return None
    label = (found.group(1) or found.group(2)).decode("ascii").lower()
    try:
        codec = codecs.lookup(label).name
    except LookupError:
        return None
    if codec.startswith(("utf-16", "utf-32")):  # without a BOM that is a lie (WHATWG: UTF-8)
        return "utf-8"
    return "cp1252" if codec in AS_WINDOWS_1252 else codec


def _detected(data: bytes, utf8_error: UnicodeDecodeError) -> Decoded:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise DocumentError(
            f"not valid UTF-8 (byte {utf8_error.start}) and no other text encoding fits"
        )
    best = matches[0]
    # On a few accented words several single-byte codecs read as cleanly; charset-normalizer
    # then picks by table order (cp1250, even cp1006 for "caf\xe9"). Among those as clean as
    # its pick, prefer windows-1252, the most common legacy encoding of Western text.
    western = [
        m
        for m in matches
        if "cp1252" in m.could_be_from_charset
        and m.chaos <= best.chaos + 0.01
        and m.coherence >= best.coherence - 0.1
    ]
    chosen = western[0] if western else best
    codec = "cp1252" if western else codecs.lookup(chosen.encoding).name
    return Decoded(data.decode(codec), codec)
