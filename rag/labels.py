"""What an ingest says of the files it finds besides their content: the collection each
belongs to and user tags (`rag ingest --collection NAME --tag key=value`, or the upload's
fields). Given, they replace a file's own; not given, a file keeps what it had (a new one gets
the `default` collection and no tags)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rag.catalog import DEFAULT_COLLECTION, FileEntry
from rag.errors import UsageError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")  # a collection or a tag key


@dataclass(frozen=True)
class Labels:
    collection: str | None = None
    tags: Mapping[str, str] | None = None
    only: frozenset[str] | None = None  # the files (absolute paths) they label; None: all found

    def __post_init__(self) -> None:
        if self.collection is not None and not NAME.fullmatch(self.collection):
            raise UsageError(f"collection name {self.collection!r}: {_RULE}")
        for key, value in (self.tags or {}).items():
            if not NAME.fullmatch(key):
                raise UsageError(f"tag key {key!r}: {_RULE}")
            if len(value) > 200 or any(ord(c) < 32 for c in value):
                raise UsageError(f"tag {key}: a value of at most 200 printable characters")

    def apply(self, entry: FileEntry, prior: FileEntry | None) -> FileEntry:
        """`entry` labelled: by these labels where given, else as `prior` was."""
        if self.only is not None and entry.path not in self.only:
            return UNLABELLED.apply(entry, prior)
        collection = self.collection or (prior.collection if prior else DEFAULT_COLLECTION)
        tags = self.tags if self.tags is not None else (prior.tags if prior else {})
        return dataclasses.replace(entry, collection=collection, tags=dict(tags))


UNLABELLED = Labels()  # every file keeps its own labels
_RULE = "1-100 letters, digits and _ . : - (starting with a letter or digit)"


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    """`--tag` arguments as a mapping.

    >>> parse_tags(["team=infra", "year=2026"])
    {'team': 'infra', 'year': '2026'}
    """
    tags = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise UsageError(f"--tag {pair!r}: write key=value")
        tags[key.strip()] = value.strip()
    return tags
