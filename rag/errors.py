"""Domain errors, raised in the library and mapped once at the edges (CLI exit codes, HTTP status).

RagError                  anything this package reports to a user in one sentence
├── UsageError            bad settings or arguments (CLI exit status 2)
├── DocumentError         one file cannot be ingested; carries the reason
├── DependencyMissing     an optional backend's package is not installed
├── EngineCrashed         llama.cpp died (a signal) or failed its check in a child process
├── LLMError              the LLM backend failed while generating
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
