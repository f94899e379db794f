"""The ZIP container of .docx, .pptx, .xlsx and .epub files, checked before a library opens it:
what its parts inflate to (declared sizes; Python's zipfile never inflates a part past its
declared size), so a zip bomb is refused having used no more memory than the file itself."""

from __future__ import annotations

import io
import zipfile

from rag.errors import DocumentError

MAX_INFLATED_BYTES = 512 * 1024 * 1024
MAX_PARTS = 50_000
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a Compound File: password-protected Office files
# What the libraries raise on a damaged file: one line of reason, never a traceback
BROKEN = (
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    TypeError,
    SyntaxError,  # lxml's XMLSyntaxError is one
    OSError,
    NotImplementedError,
    zipfile.BadZipFile,
)


def check_zip(data: bytes, kind: str) -> None:
    """`DocumentError` unless `data` is a ZIP archive whose parts inflate to a sane size."""
    if data.startswith(OLE_MAGIC):
        raise DocumentError(
            f"a password-protected (encrypted) or old binary Office file, not a {kind} "
            "(a ZIP archive): save it again without a password, in the current format"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DocumentError(
            f"unreadable {kind}: not a ZIP archive (damaged or misnamed?)"
        ) from None
    inflated = sum(part.file_size for part in parts)
    if inflated > MAX_INFLATED_BYTES:
        raise DocumentError(
            f"its parts inflate to {inflated / 2**20:,.0f} MiB, past the "
            f"{MAX_INFLATED_BYTES / 2**20:.0f} MiB limit (a zip bomb?)"
        )
    if len(parts) > MAX_PARTS:
        raise DocumentError(f"{len(parts):,} parts in one {kind}, past the {MAX_PARTS:,} limit")
    if any(part.flag_bits & 0x1 for part in parts):
        raise DocumentError(f"an encrypted {kind} (password protected)")


def broken(kind: str, err: Exception) -> DocumentError:
    return DocumentError(f"unreadable {kind} ({type(err).__name__}: {err})")
