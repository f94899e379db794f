"""Collections and tags given at ingest: kept with each document on both stores, changed
without re-embedding, kept when a later ingest gives none."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.embeddings import HashingEmbedder
from rag.errors import UsageError
from rag.ingestion import ingest
from rag.labels import Labels, parse_tags
from rag.settings import Settings
from rag.stores import make_store
from tests.conftest import write_corpus


def entries(settings: Settings) -> dict[str, tuple[str, str, dict[str, str]]]:
    files = make_store(settings).open().manifest.files
    return {s: (e.collection, e.file_type, e.tags) for s, e in files.items()}


def test_labels_are_kept_changed_without_embedding_and_kept_when_not_given(
    tmp_path: Path, stored: Settings
) -> None:
    manuals = write_corpus(tmp_path / "manuals", {"pump.md": "# Pump\n\nPrime it first."})
    notes = write_corpus(tmp_path / "notes", {"todo.txt": "Buy valves."})
    store = make_store(stored)
    labels = Labels("manuals", {"team": "infra"})
    ingest([manuals], stored, HashingEmbedder(), store=store, labels=labels)
    ingest([notes], stored, HashingEmbedder(), store=store)
    assert entries(stored) == {
        "manuals/pump.md": ("manuals", "md", {"team": "infra"}),
        "notes/todo.txt": ("default", "txt", {}),
    }
    again = ingest([manuals, notes], stored, HashingEmbedder(), store=store)
    assert again.n_embedded == 0 and not again.wrote  # nothing given: each keeps its own
    moved = ingest([notes], stored, HashingEmbedder(), store=store, labels=Labels("personal"))
    assert moved.n_embedded == 0 and moved.wrote
    assert entries(stored)["notes/todo.txt"] == ("personal", "txt", {})
    assert entries(stored)["manuals/pump.md"] == ("manuals", "md", {"team": "infra"})
    modified = make_store(stored).open().manifest.files["notes/todo.txt"].modified
    assert modified == pytest.approx((notes / "todo.txt").stat().st_mtime)


@pytest.mark.parametrize(
    ("collection", "tags", "message"),
    [
        ("", None, "collection name ''"),
        ("../x", None, "collection name '../x'"),
        ("a" * 101, None, "collection name"),
        ("ok", {"bad key": "v"}, "tag key 'bad key'"),
        ("ok", {"k": "line\nbreak"}, "tag k: a value of at most 200 printable characters"),
    ],
)
def test_bad_labels_are_refused(collection: str, tags: dict[str, str] | None, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        Labels(collection, tags)


def test_tags_are_parsed_from_key_value_pairs() -> None:
    assert parse_tags(["team=infra", "year = 2026"]) == {"team": "infra", "year": "2026"}
    with pytest.raises(UsageError, match="write key=value"):
        parse_tags(["team"])
