"""Tesseract as the OCR engine: the `tesseract` program (Debian's `tesseract-ocr`), given a page
picture on stdin; found on PATH or not at all (then scanned PDFs are skipped, saying so)."""

from __future__ import annotations

import os
import shutil
import subprocess

from rag.errors import DocumentError

TIMEOUT_S = 300  # one page; a dense 300 dpi page takes a few seconds on one core
# Tesseract's OpenMP threads spin against each other and anything else on the CPU: one dense
# page took 26.0 s (9.8 s of CPU) with its default threads and 5.2 s (3.0 s) with one, on 2
# busy cores (2026-12-03). Ingest already keeps the other cores busy embedding.
ONE_THREAD = {"OMP_THREAD_LIMIT": "1"}


class Tesseract:
    def __init__(self, program: str, languages: str = "eng") -> None:
        self.program = program
        self.languages = languages

    def read_image(self, png: bytes) -> str:
        try:
            done = subprocess.run(
                [self.program, "stdin", "stdout", "-l", self.languages],
                input=png,
                capture_output=True,
                timeout=TIMEOUT_S,
                env={**os.environ, **ONE_THREAD},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DocumentError(f"OCR of a page took longer than {TIMEOUT_S} s") from None
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise DocumentError(f"OCR failed: {message[-1] if message else done.returncode}")
        return done.stdout.decode("utf-8", errors="replace")


def find_ocr() -> Tesseract | None:
    """Tesseract if it is installed, else None."""
    program = shutil.which("tesseract")
    return Tesseract(program) if program else None
