"""Keeps the benchmark script alive: its quick mode runs every section on small inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.stores.pgvector_plan import iterative_scan
from tests.conftest import ROOT

DATASET = ROOT.parent / "shared/datasets/squad-dev-a/squad-dev-a.json"


@pytest.mark.slow
@pytest.mark.timeout(3000)  # 18 min alone on 2 cores (2026-12-03); busy, more
@pytest.mark.skipif(not DATASET.is_file(), reason="needs ../shared/datasets/squad-dev-a")
def test_quick_benchmark_writes_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=2900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    ingestion = results["ingestion"]
    assert ingestion["articles"] == 3
    ours, encode = ingestion["runs"]["ours"][0], ingestion["runs"]["encode"][0]
    assert ours["chunks"] == encode["chunks"] > 0  # the same chunk texts on both sides
    assert 0 < ingestion["ratios"]["ours_over_encode"][0] < 3
    flat, hnsw = results["scale"]["rows"]
    assert (flat["kind"], hnsw["kind"], flat["size"]) == ("flat", "hnsw", 10_000)
    assert flat["recall_at_10"] == 1.0 and 0.5 < hnsw["recall_at_10"] <= 1.0
    assert len(ingestion["runs"]["llamaindex"]) == 1  # the second peer ran (or the run failed)
    retrieval = results["retrieval"]["rows"]
    assert set(retrieval) >= {"ours, dense", "ours, bm25", "ours, hybrid"}
    before = results["retrieval"]["before"]  # the commit before sentence scores, run here too
    then = retrieval[f"before ({before['commit']}), hybrid"]
    assert then["chunks"] == retrieval["ours, hybrid"]["chunks"]  # the same articles, once each
    assert before["index_mb"]["now"] > before["index_mb"]["before"] > 0  # + sentence vectors
    for name, row in retrieval.items():  # the peers ran here, or say why not
        assert "recall" in row or name.startswith(("LangChain", "LlamaIndex")), (name, row)
        if "recall" in row:
            assert 0 < row["recall"]["1"] <= row["recall"]["5"] <= row["recall"]["10"] <= 1
    assert 0.5 < results["streaming"]["overhead"]["gap_p50_ratio"] < 2
    generation = results["generation"]
    assert 0.5 < generation["prefill_ratio"] < 2 and generation["rows"]["ours"]["decoded_tokens"]
    engine = results["engine"]
    for way, rows in engine["ways"].items():  # every way answered every question asked
        assert [(r["clients"], r["failed"]) for r in rows] == [(1, 0), (2, 0)], way
        assert all(r["answers"] >= 3 * r["clients"] and r["tokens"] > 0 for r in rows), way
    assert engine["compared"]["prompts"] == 8 and 0 <= engine["compared"]["same"] <= 8
    lone = engine["lone"]  # one client asking the in-process slot and the engine in turn
    assert len(lone) == 2 and all(
        r["questions"] >= 10 and r["decode_p50_ms"] > 0 for r in lone.values()
    )
    runtimes = results["runtime"]["rows"]
    assert set(runtimes) == {"torch", "onnx"}
    assert all(r["startup_s"] > 0 and r["retrieval_p50_ms"] > 0 for r in runtimes.values())
    for plot in [
        "recall_at_k.png",
        "scale_latency.png",
        "streaming_gaps.png",
        "engine_clients.png",
    ]:
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG", plot
    reliability = results["reliability"]
    assert reliability["soak"]["errors"] == 0 and reliability["disconnects"]["open_after"] == 0
    assert all(case["as_expected"] for case in reliability["hostile"]["cases"])
    assert all(f["ended_with"] == "error" for f in reliability["faults"].values())
    cost = results["metrics"]
    assert sum(run["failed"] for run in cost["runs"]["off"] + cost["runs"]["on"]) == 0
    assert all(run["scrapes"] >= 1 for run in cost["runs"]["on"])
    assert 0.5 < cost["median_ratio"]["requests_per_s"] < 2
    resume = results["resume"]
    assert 1000 < resume["kept_answer_bytes"] < 100_000
    assert "error" in resume["live"] or resume["live"]["log"]["gaps_ms"]["p50"] > 0
    postgres = results["postgres"]
    faiss, pgvector = (postgres["stores"]["rows"][s]["modes"] for s in ("faiss", "pgvector"))
    assert abs(faiss["dense"]["recall"]["5"] - pgvector["dense"]["recall"]["5"]) <= 0.01
    assert pgvector["hybrid"]["recall"]["5"] > 0.8
    for regime in postgres["workers"]["regimes"].values():
        one, two = regime["rows"]["1"], regime["rows"]["2"]
        assert one["completed"] == two["completed"] == one["requests"]
    assert postgres["hnsw"][0]["recall_at_10"] > 0.8
    assert set(postgres["startup"]) == {"1 x torch", "1 x onnx", "2 x torch", "2 x onnx"}
    page = (tmp_path / "RESULTS.md").read_text()
    assert "## Ingestion" in page and "## Scale" in page and "## Reliability" in page
    assert "## Reading each kind of file" in page and "## Filters" in page
    filtered = results["filters"]["rows"]
    pg_filters = ["none", "1%", "50%", "50%, exact"]
    if iterative_scan(results["filters"]["pgvector"]):  # and the plan for an older pgvector
        pg_filters += ["1%, as before 0.8", "50%, as before 0.8"]
    assert {(r["store"], r["kind"], r["filter"]) for r in filtered} == {
        ("faiss", kind, share) for kind in ("flat", "hnsw") for share in ("none", "1%", "50%")
    } | {("pgvector", "hnsw", share) for share in pg_filters}
    assert all(r["always_10"] for r in filtered), filtered
    assert all(r["recall_at_10"] == 1.0 for r in filtered if r["kind"] == "flat"), filtered
    kinds = results["formats"]["kinds"]
    assert set(kinds) == {
        ".txt",
        ".html",
        ".pdf",
        ".docx",
        ".odt",
        ".pptx",
        ".xlsx",
        ".csv",
        ".epub",
    }
    assert all(row["recall"] > 0.95 and row["seconds"] > 0 for row in kinds.values()), kinds
    assert "## PostgreSQL + pgvector" in page
