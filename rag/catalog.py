"""What the index knows of each document besides its chunks: the file it came from and what
a filter may ask about it (`FileEntry`). Stores keep one per document; filters read them."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_COLLECTION = "default"


@dataclass(frozen=True)
class FileEntry:
    """One document of the index: the file it was read from, what it became, and the metadata
    a filter may ask about (its collection, kind of file, modification time and tags)."""

    path: str  # absolute, to re-read the file when a settings change forces a rebuild
    root: str  # the folder argument it came from (pruning) or its own folder
    from_folder: bool
    sha256: str
    size: int
    title: str
    n_chunks: int
    collection: str = DEFAULT_COLLECTION
    file_type: str = ""  # its extension without the dot ("pdf", "docx"), "" for none
    modified: float = 0.0  # the file's modification time when read, seconds since the epoch
    tags: dict[str, str] = field(default_factory=dict)  # `--tag key=value` at ingest
