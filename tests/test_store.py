from __future__ import annotations

import json
import pickletools
import re
from pathlib import Path

import pytest

from rag import store
from rag.embeddings import HashingEmbedder
from rag.errors import IndexCorrupt, IndexNotFound
from rag.ingestion import ingest
from rag.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def built(corpus: Path, settings: Settings) -> Path:
    report = ingest([corpus], settings, HashingEmbedder())
    return settings.index_dir / str(report.version)


def test_missing_index_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound, match="rag ingest"):
        store.load(tmp_path / "nothing")


def test_files_on_disk_are_json_and_faiss_never_pickle(corpus: Path, settings: Settings) -> None:
    version = built(corpus, settings)
    names = sorted(p.name for p in version.iterdir())
    assert names == ["bm25", "chunks.jsonl", "manifest.json", "vectors.faiss"]
    assert (
        sorted(p.suffix for p in (version / "bm25").iterdir()) == [".json", ".json"] + [".npy"] * 3
    )
    json.loads((version / "manifest.json").read_text())
    for line in (version / "chunks.jsonl").read_text().splitlines():
        json.loads(line)
    assert (version / "vectors.faiss").read_bytes()[:4] == b"IxFI"  # faiss.write_index's own format
    for path in settings.index_dir.rglob("*"):
        if path.is_file():
            head = path.read_bytes()[:2]
            assert not (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"), path
    with pytest.raises(Exception):  # noqa: B017 - any failure: it must not parse as a pickle
        list(pickletools.genops((version / "vectors.faiss").read_bytes()))


def test_no_module_of_the_package_uses_pickle() -> None:
    for path in (ROOT / "rag").rglob("*.py"):
        source = path.read_text()
        assert not re.search(
            r"\b(import pickle|from pickle|load_local|allow_pickle=True)", source
        ), path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda v: (v / "vectors.faiss").write_bytes((v / "vectors.faiss").read_bytes()[:100]),
            "damaged",
        ),
        (lambda v: (v / "chunks.jsonl").write_text("{}\n"), "damaged"),
        (lambda v: (v / "chunks.jsonl").unlink(), "missing"),
        (lambda v: (v / "manifest.json").write_text("{not json"), "unreadable manifest"),
        (lambda v: (v.parent / "CURRENT").write_text("v0\n"), "missing version"),
    ],
)
def test_damaged_index_refuses_to_load_with_a_reason(
    corpus: Path, settings: Settings, damage: object, message: str
) -> None:
    version = built(corpus, settings)
    damage(version)  # type: ignore[operator]
    with pytest.raises(IndexCorrupt, match=message):
        store.load(settings.index_dir)


def test_other_format_version_is_refused(corpus: Path, settings: Settings) -> None:
    version = built(corpus, settings)
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["format_version"] = 99
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match="format 99"):
        store.load(settings.index_dir)
