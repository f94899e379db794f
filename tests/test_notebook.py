"""notebooks/explore.ipynb runs top to bottom (mock LLM, hashing embedder), so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT


def test_the_notebook_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = nbformat.read(ROOT / "notebooks/explore.ipynb", as_version=4)  # type: ignore[no-untyped-call]
    assert all(cell.get("id") for cell in notebook.cells)  # nbformat 5.1+: ids, or a warning
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_EMBEDDING_MODEL", "hashing")
    monkeypatch.setenv("RAG_LLM", "mock")
    monkeypatch.setenv("RAG_MIN_SCORE", "0")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the plot
    where = {"metadata": {"path": str(ROOT / "notebooks")}}
    NotebookClient(notebook, timeout=300, resources=where).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "chunks from 8 files" in text
    assert "fused  dense" in text and "Super Bowl 50" in text
    assert "According to [1]" in text and "first token" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the projection plot
    assert "> Who was its quarterback?\nAccording to [1]" in text  # the two-turn conversation
