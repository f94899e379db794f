"""Documents -> `Chunk`s: LangChain's recursive splitter, sized in tokens of the embedding model.

The embedder supplies the token counter, so a chunk never exceeds what the encoder reads (MiniLM
silently cuts text after 256 word pieces). Offsets are character positions in the document text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.documents import Document

# Paragraphs first, then lines, sentences, words; the sentence separators stay with their sentence.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]


@dataclass(frozen=True)
class Chunk:
    id: str  # "<source>#<chunk_no>"
    source: str
    title: str
    chunk_no: int
    start: int  # text == document.text[start:end]
    end: int
    text: str
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Chunk:
        return cls(**row)


class Chunker:
    def __init__(
        self, count_tokens: Callable[[str], int], chunk_size_tokens: int, chunk_overlap_tokens: int
    ) -> None:
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size_tokens,
            chunk_overlap=chunk_overlap_tokens,
            length_function=count_tokens,
            separators=SEPARATORS,
            keep_separator="end",
            strip_whitespace=True,
        )

    def split(self, document: Document) -> list[Chunk]:
        chunks: list[Chunk] = []
        search_from = 0
        for piece in self._splitter.split_text(document.text):
            # Chunks come in document order, each starting after the previous one's start, so the
            # first occurrence from there is the right one even when text repeats.
            start = document.text.find(piece, search_from)
            if start < 0:  # cannot happen with strip-only edits; keep the chunk rather than lose it
                start = document.text.find(piece)
            end = start + len(piece)
            number = len(chunks)
            chunks.append(
                Chunk(
                    id=f"{document.source}#{number}",
                    source=document.source,
                    title=document.title,
                    chunk_no=number,
                    start=start,
                    end=end,
                    text=piece,
                    sha256=hashlib.sha256(piece.encode()).hexdigest(),
                )
            )
            search_from = start + 1
        return chunks
