"""Chunks -> their vectors: every sentence of every chunk is embedded (one encoder pass), and
a chunk's own vector is the unit mean of its sentences' vectors.

Retrieval scores a chunk by its best sentence as well as by the whole (`rag.retrieval`): a
chunk holding the one sentence that answers is no longer outranked by one that is vaguely about
the question throughout. Embedding the sentences instead of the chunks costs about the same
encoder time (the same words, in shorter pieces), so the chunk vector is derived from them
rather than paid for twice; measured on squad-dev-a (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from rag.chunks import Chunk
from rag.embeddings import Embedder, Vectors
from rag.sentences import sentence_spans

# Texts per call to the embedder: large enough that length-sorted batches pad little, small
# enough for a lively progress bar.
EMBED_SLICE = 512


@dataclass(frozen=True)
class ChunkVectors:
    chunk: NDArray[np.float32]  # (dimension,): unit mean of the sentences' vectors
    sentences: NDArray[np.float32]  # (sentences, dimension), in `sentence_spans` order


def embed_chunks(
    chunks: Sequence[Chunk], embedder: Embedder, progress: bool = False
) -> list[ChunkVectors]:
    """Each chunk's vector and its sentences' vectors, in the order of `chunks`."""
    spans = [sentence_spans(chunk.text) for chunk in chunks]
    texts = [
        chunk.text[a:b] for chunk, pieces in zip(chunks, spans, strict=True) for a, b in pieces
    ]
    vectors = embed_all(texts, embedder, progress, unit="sentence")
    out, row = [], 0
    for pieces in spans:
        mine = vectors[row : row + len(pieces)]
        row += len(pieces)
        out.append(ChunkVectors(unit_mean(mine), mine))
    return out


def unit_mean(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """The mean direction of some unit vectors, itself of unit length."""
    total = vectors.sum(axis=0)
    mean: NDArray[np.float32] = (total / max(float(np.linalg.norm(total)), 1e-12)).astype(
        np.float32
    )
    return mean


def embed_all(
    texts: list[str], embedder: Embedder, progress: bool = False, unit: str = "text"
) -> Vectors:
    """Embed in slices of similar length (less padding), in the original order."""
    out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    with tqdm(total=len(texts), desc="embedding", unit=unit, disable=not progress) as bar:
        for start in range(0, len(order), EMBED_SLICE):
            rows = order[start : start + EMBED_SLICE]
            out[rows] = embedder.embed([texts[i] for i in rows])
            bar.update(len(rows))
    return out
