"""Tiny PDFs made in the test, so no binary fixtures are committed."""

from __future__ import annotations

import io
import zlib

from bench.documents import pdf_objects


def text_pdf(lines: list[str], title: str = "") -> bytes:
    """A valid one-page PDF whose text layer holds `lines` (Helvetica, one line each)."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    return _pdf("\n".join(ops).encode("latin-1"), b"", title)


def bomb_pdf(expanded_mb: int = 1000) -> bytes:
    """A PDF of about `expanded_mb / 1000` MB whose page content inflates to `expanded_mb` MB
    (a zip bomb in PDF form: one FlateDecode stream of blanks)."""
    squeeze = zlib.compressobj(9)
    block = b" " * (1 << 20)
    stream = b"".join(squeeze.compress(block) for _ in range(expanded_mb)) + squeeze.flush()
    return _pdf(stream, b" /Filter /FlateDecode", "bomb")


def _pdf(stream: bytes, stream_options: bytes, title: str) -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d%s >>\nstream\n" % (len(stream), stream_options) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title (%s) >>" % title.encode("latin-1"),
    ]
    return pdf_objects(objects, info=6)


def encrypted_pdf(lines: list[str]) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf(lines))))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
