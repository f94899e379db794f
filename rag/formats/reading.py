"""What a reader of one kind of file is given and gives back (the seam `reader_for` picks
implementations of): the bytes and a `Reading`, then the `Extracted` text and what was learned
on the way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Extracted:
    text: str
    title: str = ""
    encoding: str | None = None  # the character encoding the text was read in, when not UTF-8
    ocr_pages: int = 0  # pages whose text came from OCR


class Ocr(Protocol):
    """Reads the text in a picture of a page (a PNG)."""

    def read_image(self, png: bytes) -> str: ...


@dataclass(frozen=True)
class Reading:
    """What a reader may use besides the bytes."""

    path: Path
    ocr: Ocr | None = None  # None: no OCR engine here, pages without text are not read
    progress: bool = False  # draw a progress bar for long work (OCR pages)


class Reader(Protocol):
    def __call__(self, data: bytes, reading: Reading) -> Extracted: ...
