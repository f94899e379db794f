"""Benchmarks, reported as ratios to a reference measured in the same run (machines are noisy).

    python -m bench [--quick] [--only SECTION] [--out DIR] [--render-only]

Sections: `ingestion` (ours vs the bare encoder vs a plain LangChain pipeline and LlamaIndex, and
re-ingest), `formats` (reading each kind of file: MB/s and word recall, against embedding the same
text; OCR seconds per page), `filters` (the cost of a filter: none, 1% and 50% of the rows
admitted, FAISS flat and HNSW, and the pgvector store's own query), `retrieval` (recall@k,
MRR@10 and latency: our three modes vs LangChain's and LlamaIndex's default retrievers), `scale`
(FAISS flat vs HNSW at 10k, 100k and 1M chunks),
`streaming` (a live server: time to sources and first token, inter-token gaps, concurrent clients,
llama.cpp, the overhead over a minimal StreamingResponse, REST vs SSE vs WebSocket), `generation`
(llama.cpp through our backend vs `llama_cpp.Llama` directly), `engine` (1-8 clients: the
single slot, the engine process with 1 and 4 slots and `llama_cpp.server`; batched answers
against answers alone), `runtime` (the query embedder on torch and on ONNX Runtime: start-up,
a question, `retrieval_ms`, ingest against the bare encoder), `builds` (llama.cpp wheels built
with other options, side by side: only with --build-wheel) and `reliability` (soak, burst, random
disconnects, the burst through `hey`, faults, hostile bodies), `metrics` (the soak with Prometheus
metrics on and scraped vs off), `resume` (what the kept answer log costs: memory per answer, per
event, and live against the commit before it). Writes DIR/results.json, DIR/RESULTS.md and PNG
plots (default: benchmarks/); with --only, the other sections already in results.json are kept.
--quick (a few minutes) runs 3 articles, 10k chunks, a short streaming run with the mock LLM and a
tenth of the reliability run, for the test suite."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench import (
    ROOT,
    builds,
    engine,
    filters,
    filters_pgvector,
    formats,
    generation,
    ingestion,
    metrics,
    plots,
    postgres,
    reliability,
    resume,
    retrieval,
    runtime,
    scale,
    streaming,
)
from rag.settings import IndexType

DEFAULT_DATASET = ROOT.parent / "shared/datasets/squad-dev-a/squad-dev-a.json"
SECTIONS = (
    "ingestion",
    "formats",
    "filters",
    "retrieval",
    "scale",
    "streaming",
    "generation",
    "engine",
    "runtime",
    "builds",
    "reliability",
    "metrics",
    "resume",
    "postgres",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks", metavar="DIR", help="default benchmarks/"
    )
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: redraw RESULTS.md and the plots from DIR/results.json",
    )
    parser.add_argument(
        "--build-wheel",
        action="append",
        default=[],
        metavar="NAME=PATH[,without=VARIANT]",
        help="a llama-cpp-python wheel for the builds section (repeat; the first is the "
        "reference; without= leaves a CPU variant out of a runtime-dispatch wheel); the section "
        "runs only when given",
    )
    args = parser.parse_args()
    wheels = {}
    for spec in args.build_wheel:
        name, _, rest = spec.partition("=")
        path, *options = rest.split(",")
        without = [o.removeprefix("without=") for o in options if o.startswith("without=")]
        if not path or not Path(path).is_file() or len(without) != len(options):
            parser.error(f"--build-wheel wants NAME=PATH[,without=VARIANT...], got {spec!r}")
        wheels[name] = (Path(path), without)
    stored = args.out / "results.json"
    if args.render_only:
        if not stored.is_file():
            parser.error(f"{stored} not found: run the benchmark first")
        write(json.loads(stored.read_text()), args.out)
        return
    if not args.dataset.is_file():
        parser.error(f"dataset {args.dataset} not found")
    wanted = args.only or list(SECTIONS)
    results: dict[str, Any] = (
        json.loads(stored.read_text()) if stored.is_file() and args.only else {}
    )
    if "ingestion" in wanted:
        results["ingestion"] = ingestion.run(
            args.dataset,
            ingestion.QUICK_ARTICLES if args.quick else None,
            args.repeats or (1 if args.quick else 3),
        )
    if "formats" in wanted:
        results["formats"] = formats.run(
            args.dataset,
            ingestion.QUICK_ARTICLES if args.quick else None,
            ocr_pages=1 if args.quick else 10,
            repeats=1 if args.quick else 3,
        )
    if "filters" in wanted:
        corpora: list[tuple[int, IndexType]] = [(10_000, "flat"), (10_000, "hnsw")]
        if not args.quick:
            corpora += [(100_000, "flat"), (100_000, "hnsw"), (1_000_000, "flat")]
        results["filters"] = filters.run(corpora)
        with postgres.postgres() as url:
            sizes = [10_000] if args.quick else [10_000, 100_000, 1_000_000]
            results["filters"]["pgvector"], rows = filters_pgvector.measure(url, sizes)
        results["filters"]["rows"] += rows
    if "retrieval" in wanted:
        results["retrieval"] = retrieval.run(
            args.dataset, ingestion.QUICK_ARTICLES if args.quick else None
        )
    if "scale" in wanted:
        from rag.squad import load_articles

        questions = [q.text for a in load_articles(args.dataset) for q in a.questions][::20]
        sizes = [10_000] if args.quick else [10_000, 100_000, 1_000_000]
        results["scale"] = scale.run(sizes, questions)
    if "streaming" in wanted:
        results["streaming"] = streaming.run(quick=args.quick)
    if "generation" in wanted:
        results["generation"] = generation.run(args.dataset, 4 if args.quick else 40)
    if "engine" in wanted:
        results["engine"] = engine.run(args.dataset, quick=args.quick)
    if "runtime" in wanted:
        results["runtime"] = runtime.run(args.dataset, quick=args.quick)
    if "builds" in wanted and wheels:
        results["builds"] = builds.run(wheels, args.dataset, 4 if args.quick else 20)
    if "reliability" in wanted:
        results["reliability"] = reliability.run(quick=args.quick)
    if "metrics" in wanted:
        results["metrics"] = metrics.run(quick=args.quick)
    if "resume" in wanted:
        results["resume"] = resume.run(quick=args.quick)
    if "postgres" in wanted:
        results["postgres"] = postgres.run(
            args.dataset,
            quick=args.quick,
            n_articles=ingestion.QUICK_ARTICLES if args.quick else None,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(results, indent=1) + "\n")
    write(results, args.out)


def write(results: dict[str, Any], out: Path) -> None:
    """RESULTS.md and the plots of `results` into `out`."""
    drawn = plots.draw(results, out)
    (out / "RESULTS.md").write_text(render(results, drawn))
    print((out / "RESULTS.md").read_text())


def render(results: dict[str, Any], plots: list[str] | None = None) -> str:
    parts = [
        "# Benchmark results",
        "",
        "Written by `python -m bench`; every figure comes from the run that wrote it.",
        "",
    ]
    plots = plots or []

    def plot(name: str, caption: str) -> None:
        if name in plots:
            parts.append(f"![{caption}]({name})\n")

    if "transports" in results.get("streaming", {}):  # the comparison that motivates streaming
        parts.append(streaming.render_transports(results["streaming"]["transports"]))
        plot("transports.png", "first word and whole answer per transport")
    if "ingestion" in results:
        parts.append(ingestion.render(results["ingestion"]))
    if "formats" in results:
        parts.append(formats.render(results["formats"]))
    if "filters" in results:
        parts.append(filters.render(results["filters"]))
    if "retrieval" in results:
        parts.append(retrieval.render(results["retrieval"]))
        plot("recall_at_k.png", "recall@k against k")
    if "scale" in results:
        parts.append(scale.render(results["scale"]))
        plot("scale_latency.png", "query latency against corpus size")
    if "streaming" in results:
        parts.append(streaming.render(results["streaming"]))
        plot("streaming_gaps.png", "inter-token gap against concurrent clients")
    if "generation" in results:
        parts.append(generation.render(results["generation"]))
    if "engine" in results:
        parts.append(engine.render(results["engine"]))
        plot("engine_clients.png", "answer tokens/s and first token p95 against clients")
    if "runtime" in results:
        parts.append(runtime.render(results["runtime"]))
    if "builds" in results:
        parts.append(builds.render(results["builds"]))
    if "reliability" in results:
        parts.append(reliability.render(results["reliability"]))
    if "metrics" in results:
        parts.append(metrics.render(results["metrics"]))
    if "resume" in results:
        parts.append(resume.render(results["resume"]))
    if "postgres" in results:
        parts.append(postgres.render(results["postgres"]))
    return "\n".join(parts)


if __name__ == "__main__":
    main()
