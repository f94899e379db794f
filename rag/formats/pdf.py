"""PDF -> text: each page's text layer (pypdf); a page without one is rendered (pypdfium2)
and read by OCR when an OCR engine is given, so scanned documents are read too."""

from __future__ import annotations

import io
import logging

from tqdm import tqdm

from rag.errors import DocumentError
from rag.formats.reading import Extracted, Ocr, Reading

OCR_DPI = 300  # Tesseract reads body text best at about 300 dpi
MAX_PAGE_PIXELS = 40_000_000  # a page of absurd size is rendered smaller, not into GBs
NO_OCR = (
    "PDF has no extractable text (scanned images?); install Tesseract to read it by OCR "
    "(Debian/Ubuntu: apt-get install tesseract-ocr)"
)


def read_pdf(data: bytes, reading: Reading) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    # pypdf logs its repairs of damaged files; the one-line reason we raise is what users need
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError("encrypted PDF (password protected)")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except DocumentError:
        raise
    except LimitReachedError:
        raise DocumentError(
            "a compressed stream in the PDF inflates past pypdf's safety limit (a zip bomb?)"
        ) from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as err:
        raise DocumentError(f"unreadable PDF ({type(err).__name__}: {err})") from None
    blank = [number for number, text in enumerate(pages) if not text]
    ocr_pages = 0
    if blank and reading.ocr is not None:
        label = f"OCR {reading.path.name}"
        for number, text in _ocr(data, blank, reading.ocr, label, reading.progress):
            pages[number] = text
        ocr_pages = len(blank)
    text = "\n\n".join(page for page in pages if page)
    if not text:
        raise DocumentError(NO_OCR if reading.ocr is None else "PDF has no text, even by OCR")
    return Extracted(text, str(meta_title or ""), ocr_pages=ocr_pages)


def _ocr(
    data: bytes, numbers: list[int], ocr: Ocr, label: str, progress: bool
) -> list[tuple[int, str]]:
    """The OCR text of the pages `numbers` (0-based), rendered at OCR_DPI."""
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as err:
        raise DocumentError(f"cannot render the PDF's pages for OCR ({err})") from None
    read = []
    try:
        for number in tqdm(numbers, desc=label, unit="page", disable=not progress, leave=False):
            page = document[number]
            width, height = page.get_size()  # points, 72 per inch
            scale = min(OCR_DPI / 72, (MAX_PAGE_PIXELS / max(width * height, 1.0)) ** 0.5)
            image = page.render(scale=scale, grayscale=True).to_pil()
            png = io.BytesIO()
            image.save(png, format="PNG")
            read.append((number, ocr.read_image(png.getvalue()).strip()))
    finally:
        document.close()
    return read
