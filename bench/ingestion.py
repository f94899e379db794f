"""Ingestion benchmark (a section of `python -m bench`): on the articles of a SQuAD file written
out as .md files, our full ingest (which embeds each chunk's sentences) vs the bare
`SentenceTransformer.encode` of the same chunk texts (what whole-chunk vectors cost) vs a plain
LangChain pipeline (RecursiveCharacterTextSplitter + HuggingFaceEmbeddings +
FAISS.from_documents) vs LlamaIndex (VectorStoreIndex + HuggingFaceEmbedding), all with the same
MiniLM model, batch size and threads; then our re-ingest with nothing changed and with one file
changed (the peers have no incremental path: they redo the full run). Each contender runs in its
own process, so peak RSS is its own; the model is loaded and warmed up before the clock starts,
for all of them. Repeats alternate the order; medians are reported with min and max.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.report import spread, table

BATCH_SIZE = 64
QUICK_ARTICLES = 3
LANGCHAIN_CHUNK_CHARS, LANGCHAIN_OVERLAP_CHARS = 800, 150  # about our 200/32 tokens


# --- workers: each runs in a fresh process and prints one JSON object -------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tokens(texts: list[str]) -> int:
    """Word pieces the encoder reads (it cuts each text at its maximum)."""
    from rag.embeddings import make_embedder
    from rag.settings import Settings

    embedder = make_embedder(Settings())
    return sum(min(embedder.count_tokens(t), embedder.max_tokens) for t in texts)


def _our_chunk_texts(corpus: Path) -> list[str]:
    from rag.chunks import Chunker
    from rag.documents import discover, parse_document
    from rag.embeddings import make_embedder
    from rag.settings import Settings

    settings = Settings()
    chunker = Chunker(
        make_embedder(settings).count_tokens,
        settings.chunk_size_tokens,
        settings.chunk_overlap_tokens,
    )
    texts = []
    for candidate in discover([corpus]).candidates:
        document = parse_document(candidate.path.read_bytes(), candidate.path, candidate.source)
        texts += [chunk.text for chunk in chunker.split(document)]
    return texts


def worker_encode(corpus: Path) -> dict[str, Any]:
    from rag.embeddings import SentenceTransformerEmbedder, make_embedder
    from rag.settings import Settings

    texts = _our_chunk_texts(corpus)
    embedder = make_embedder(Settings())
    assert isinstance(embedder, SentenceTransformerEmbedder)
    model = embedder._load()
    model.encode(["warm up"], batch_size=BATCH_SIZE)
    started = time.perf_counter()
    model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True, show_progress_bar=False)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "chunks": len(texts),
        "tokens": _tokens(texts),
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_ours(corpus: Path) -> dict[str, Any]:
    from rag.embeddings import make_embedder
    from rag.ingestion import ingest
    from rag.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(index_dir=Path(tmp) / "index", embed_batch_size=BATCH_SIZE)
        embedder = make_embedder(settings)
        embedder.embed(["warm up"])
        started = time.perf_counter()
        full = ingest([corpus], settings, embedder)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = ingest([corpus], settings, embedder)
        unchanged_s = time.perf_counter() - started
        assert not again.wrote
        changed_file = sorted(corpus.glob("*.md"))[0]
        original = changed_file.read_text()
        try:
            changed_file.write_text(original + "\n\nA new closing paragraph about the topic.")
            started = time.perf_counter()
            one = ingest([corpus], settings, embedder)
            one_changed_s = time.perf_counter() - started
        finally:
            changed_file.write_text(original)
    return {
        "seconds": seconds,
        "chunks": full.n_chunks,
        "peak_rss_mb": _peak_rss_mb(),
        "tokens": _tokens(_our_chunk_texts(corpus)),
        "unchanged_s": unchanged_s,
        "one_changed_s": one_changed_s,
        "one_changed_embedded": one.n_embedded,
    }


def minilm_path() -> Path:
    """The folder of the MiniLM model every contender loads."""
    from rag.embeddings import SentenceTransformerEmbedder, make_embedder
    from rag.settings import Settings

    embedder = make_embedder(Settings())
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder.path


def langchain_parts(add_start_index: bool = False) -> tuple[Any, Any]:
    """The plain LangChain pipeline's embeddings and splitter (the same for every section)."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = HuggingFaceEmbeddings(
        model_name=str(minilm_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True, "batch_size": BATCH_SIZE},
    )
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=LANGCHAIN_CHUNK_CHARS,
        chunk_overlap=LANGCHAIN_OVERLAP_CHARS,
        add_start_index=add_start_index,
    )
    return embeddings, splitter


def configure_llamaindex() -> None:
    """LlamaIndex with the same MiniLM. Its default SentenceSplitter counts tokens with
    tiktoken, whose vocabulary is downloaded on first use (impossible offline): it counts
    MiniLM tokens instead, same chunk size."""
    from llama_index.core import Settings as LlamaSettings
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from transformers import AutoTokenizer

    path = minilm_path()
    LlamaSettings.tokenizer = AutoTokenizer.from_pretrained(str(path)).encode
    LlamaSettings.embed_model = HuggingFaceEmbedding(
        model_name=str(path), device="cpu", embed_batch_size=BATCH_SIZE
    )


def worker_langchain(corpus: Path) -> dict[str, Any]:
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document

    embeddings, splitter = langchain_parts()
    embeddings.embed_documents(["warm up"])
    started = time.perf_counter()
    docs = [
        Document(page_content=p.read_text(), metadata={"source": str(p)})
        for p in sorted(corpus.rglob("*.md"))
    ]
    chunks = splitter.split_documents(docs)
    FAISS.from_documents(chunks, embeddings)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "chunks": len(chunks),
        "peak_rss_mb": _peak_rss_mb(),
        "tokens": _tokens([c.page_content for c in chunks]),
    }


def worker_llamaindex(corpus: Path) -> dict[str, Any]:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core import Settings as LlamaSettings

    configure_llamaindex()
    LlamaSettings.embed_model.get_text_embedding("warm up")
    started = time.perf_counter()
    docs = [
        Document(text=p.read_text(), metadata={"file_name": p.name})
        for p in sorted(corpus.rglob("*.md"))
    ]
    index = VectorStoreIndex.from_documents(docs)
    seconds = time.perf_counter() - started
    nodes = list(index.docstore.docs.values())
    return {
        "seconds": seconds,
        "chunks": len(nodes),
        "peak_rss_mb": _peak_rss_mb(),
        "tokens": _tokens([n.get_content() for n in nodes]),
    }


def worker_cli(corpus: Path) -> dict[str, Any]:
    """What a user waits for: `python -m rag ingest` as a new process, first full, then again."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "rag", "ingest", str(corpus), "--index", tmp, "--quiet"]
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
            timings.append(time.perf_counter() - started)
    return {"seconds": timings[0], "unchanged_s": timings[1]}


WORKERS = {
    "encode": worker_encode,
    "ours": worker_ours,
    "langchain": worker_langchain,
    "llamaindex": worker_llamaindex,
    "cli": worker_cli,
}


# --- the driver ------------------------------------------------------------------------------


def run_worker(name: str, corpus: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.ingestion", name, str(corpus)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark worker {name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(dataset: Path, n_articles: int | None, repeats: int) -> dict[str, Any]:
    from rag.squad import load_articles, write_articles

    articles = load_articles(dataset)[:n_articles]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in WORKERS}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "squad"
        write_articles(articles, corpus)
        for repeat in range(repeats):
            order = list(WORKERS) if repeat % 2 == 0 else list(reversed(WORKERS))
            for name in order:
                runs[name].append(run_worker(name, corpus))
                print(
                    f"repeat {repeat + 1}/{repeats} {name}: {runs[name][-1]['seconds']:.1f} s",
                    file=sys.stderr,
                )
        shutil.rmtree(corpus)
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "dataset": dataset.name,
        "articles": len(articles),
        "repeats": repeats,
        "batch_size": BATCH_SIZE,
        "runs": runs,
        "ratios": {
            "ours_over_encode": [
                o["seconds"] / e["seconds"]
                for o, e in zip(runs["ours"], runs["encode"], strict=True)
            ],
            "langchain_over_encode": [
                lc["seconds"] / e["seconds"]
                for lc, e in zip(runs["langchain"], runs["encode"], strict=True)
            ],
            "llamaindex_over_encode": [
                li["seconds"] / e["seconds"]
                for li, e in zip(runs["llamaindex"], runs["encode"], strict=True)
            ],
            "unchanged_over_full": [o["unchanged_s"] / o["seconds"] for o in runs["ours"]],
            "one_changed_over_full": [o["one_changed_s"] / o["seconds"] for o in runs["ours"]],
            "cli_unchanged_over_full": [c["unchanged_s"] / c["seconds"] for c in runs["cli"]],
        },
    }


def render(results: dict[str, Any]) -> str:
    runs, ratios, machine = results["runs"], results["ratios"], results["machine"]
    lines = [
        "## Ingestion",
        "",
        f"Measured {machine['date']} on {machine['cpus']} CPU cores. Medians of "
        f"{results['repeats']} repeat(s), min-max in brackets; every ratio is taken within one "
        "repeat.",
        "",
        f"{results['articles']} articles of `{results['dataset']}` as .md files, all-MiniLM-L6-v2 "
        f"on the CPU, batch size {results['batch_size']}, model loaded and warmed up before "
        "timing.",
        "",
    ]
    names = {
        "encode": "bare `SentenceTransformer.encode` of our chunk texts (whole-chunk vectors)",
        "ours": "ours: `rag ingest` (load, chunk, embed, FAISS, write)",
        "langchain": "LangChain: splitter + HuggingFaceEmbeddings + FAISS.from_documents",
        "llamaindex": "LlamaIndex: VectorStoreIndex.from_documents + HuggingFaceEmbedding",
    }
    encode_s = [r["seconds"] for r in runs["encode"]]
    rows: list[list[object]] = []
    for name, label in names.items():  # "cli" is reported with the re-ingest
        seconds = [r["seconds"] for r in runs[name]]
        per_s = [r["chunks"] / r["seconds"] for r in runs[name]]
        tokens_s = [r["tokens"] / r["seconds"] for r in runs[name]]
        ratio = [s / e for s, e in zip(seconds, encode_s, strict=True)]
        rows.append(
            [
                label,
                runs[name][0]["chunks"],
                runs[name][0]["tokens"],
                spread(seconds, "{:.1f}"),
                spread(per_s, "{:.0f}"),
                spread(tokens_s, "{:.0f}"),
                spread(ratio),
                f"{statistics.median(r['peak_rss_mb'] for r in runs[name]):.0f}",
            ]
        )
    header = ["pipeline", "chunks", "tokens", "seconds", "chunks/s", "tokens/s"]
    lines += table([*header, "x bare encode", "peak RSS (MB)"], "lrrrrrrr", rows)
    ours, cli = runs["ours"], runs["cli"]

    def share(key: str) -> str:
        return f"{spread([100 * r for r in ratios[key]], '{:.1f}')} %"

    lines += [
        "",
        "Re-ingesting (ours; the peers have no incremental path and redo the full run):",
        "",
        *table(
            ["case", "seconds", "share of the full ingest"],
            "lrr",
            [
                [
                    "nothing changed",
                    spread([o["unchanged_s"] for o in ours], "{:.3f}"),
                    share("unchanged_over_full"),
                ],
                [
                    f"one file changed ({ours[0]['one_changed_embedded']} chunks re-embedded)",
                    spread([o["one_changed_s"] for o in ours], "{:.2f}"),
                    share("one_changed_over_full"),
                ],
                [
                    "as a user runs it: `python -m rag ingest` in a new process, nothing changed",
                    spread([c["unchanged_s"] for c in cli], "{:.2f}"),
                    f"{share('cli_unchanged_over_full')} of the same command's first run "
                    f"({spread([c['seconds'] for c in cli], '{:.1f}')} s, model load included)",
                ],
            ],
        ),
        "",
        "The LangChain pipeline splits by characters (chunk 800, overlap 150, about our 200/32 "
        "tokens), so its chunk count differs; compare chunks/s as well as seconds. LlamaIndex "
        "keeps its default splitter (1,024 tokens, overlap 200, counted with the MiniLM "
        "tokenizer because its default, tiktoken, downloads a vocabulary at first use): its "
        "chunks are four times ours, and MiniLM reads only the first 256 tokens of each, so it "
        "embeds fewer tokens than its chunks hold.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # a worker: python ingestion.py NAME CORPUS
    print(json.dumps(WORKERS[sys.argv[1]](Path(sys.argv[2]))))
