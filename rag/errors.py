"""Domain errors, raised in the library and mapped once at the edges (CLI exit codes, HTTP status).

RagError                  anything this package reports to a user in one sentence
├── UsageError            bad settings or arguments (CLI exit status 2; HTTP 422)
│   ├── BadUpload         an upload refused for its name or type
│   │   ├── UploadTooLarge    over RAG_MAX_UPLOAD_BYTES (HTTP 413)
│   │   └── UploadConflict    an earlier upload's name without replace, or not an upload (409)
│   └── QuestionTooLong   longer than RAG_MAX_QUESTION_CHARS
├── DocumentError         one file cannot be ingested; carries the reason
├── DependencyMissing     an optional backend's package is not installed
├── EngineCrashed         llama.cpp died (a signal) or failed its check in a child process
├── LLMError              the LLM backend failed while generating (HTTP 502)
├── GenerationTimeout     a generation ran longer than RAG_GENERATION_TIMEOUT_S (HTTP 504)
├── Busy                  every generation slot and queue place is taken (HTTP 429)
├── NotReady              the server's index or LLM is not available (HTTP 503)
├── ConversationNotFound  no conversation of that id (HTTP 404)
├── AnswerNotFound        no kept answer of that id to replay or cancel (HTTP 404)
├── CollectionNotFound    no document in a collection of that name (HTTP 404)
├── RemoteError           `rag ask --url`: the server is unreachable, refused or failed
└── IndexError_           the index (a folder, or tables in PostgreSQL) cannot be used
    ├── IndexNotFound     nothing has been ingested into that folder yet
    ├── IndexCorrupt      files missing, truncated or inconsistent
    ├── IndexMismatch     built with another embedding model than the one selected
    ├── IndexLocked       another ingest is writing to the same folder
    └── StoreUnavailable  the database holding the index cannot be reached
"""


class RagError(Exception):
    """Base class: the message is one sentence a user can act on."""


class UsageError(RagError):
    """Invalid settings or command-line arguments."""


class DocumentError(RagError):
    """A file that cannot be ingested; `str(err)` is the reason."""


class DependencyMissing(RagError):
    """A backend was selected whose package is not installed."""


class EngineCrashed(RagError):
    """The local LLM engine cannot run here (e.g. built for instructions this CPU lacks)."""


class LLMError(RagError):
    """The backend failed while generating; the message says how."""


class IndexError_(RagError):
    """The on-disk index cannot be used."""


class IndexNotFound(IndexError_):
    """No index exists in the folder."""


class IndexCorrupt(IndexError_):
    """The index files are missing, truncated or inconsistent."""


class IndexMismatch(IndexError_):
    """The index was built with a different embedding model or dimension."""


class IndexLocked(IndexError_):
    """Another process is writing the index."""


class StoreUnavailable(IndexError_):
    """The database holding the index does not answer (down, unreachable, refusing)."""


class BadUpload(UsageError):
    """An upload refused for its name, type or size; the message says which."""


class UploadTooLarge(BadUpload):
    """A file larger than `Settings.max_upload_bytes` (answered 413)."""


class UploadConflict(BadUpload):
    """A name uploaded before, sent without `replace`; or a delete of a document that was not
    uploaded (answered 409)."""


class QuestionTooLong(UsageError):
    """Longer than `Settings.max_question_chars` (answered 422)."""


class GenerationTimeout(RagError):
    """A generation ran longer than the configured limit."""


class Busy(RagError):
    """Every slot is taken and the queue is full."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReady(RagError):
    """The index or the LLM is not available; the message says why and what to do."""


class ConversationNotFound(RagError):
    """No conversation has that id (never created, deleted, or dropped by the limits)."""


class CollectionNotFound(RagError):
    """No document of the index belongs to the named collection."""


class AnswerNotFound(RagError):
    """No kept answer has that id (never started here, ended too long ago, or dropped)."""


class RemoteError(RagError):
    """The server could not be reached, refused the request, or failed while answering."""
