"""The plots of RESULTS.md (matplotlib, PNG), drawn from results.json: recall@k against k, query
latency against corpus size, inter-token gap against concurrent clients, and when the user
sees the first word and the whole answer per transport, and what the LLM engine serves to 1-8
clients each way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DPI = 110
COLORS = ["tab:blue", "tab:green", "tab:orange", "tab:red"]


def draw(results: dict[str, Any], out: Path) -> list[str]:
    """Every plot the results allow; returns the file names written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    makers = [
        ("retrieval", "recall_at_k.png", recall_at_k),
        ("scale", "scale_latency.png", scale_latency),
        ("streaming", "streaming_gaps.png", streaming_gaps),
        ("streaming", "transports.png", transports),
        ("engine", "engine_clients.png", engine_clients),
    ]
    for section, name, maker in makers:
        if section in results and maker(results[section], out / name):
            written.append(name)
    return written


def recall_at_k(r: dict[str, Any], path: Path) -> bool:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, row in r["rows"].items():
        if "recall" not in row:
            continue
        ks = sorted(int(k) for k in row["recall"])
        style = "-" if name.startswith("ours") else "--"
        ax.plot(ks, [row["recall"][str(k)] for k in ks], style, marker="o", ms=3, label=name)
    ax.set(xlabel="k (chunks retrieved)", ylabel="recall@k", title="Retrieval on squad-dev-a")
    ax.set_xticks(range(1, r["k"] + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def scale_latency(r: dict[str, Any], path: Path) -> bool:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for kind, color in zip(sorted({row["kind"] for row in r["rows"]}), COLORS, strict=False):
        rows = sorted((row for row in r["rows"] if row["kind"] == kind), key=lambda x: x["size"])
        sizes = [row["size"] for row in rows]
        p50 = [row["p50_ms"] for row in rows]
        ax.plot(sizes, p50, marker="o", color=color, label=f"{kind} p50")
        p95 = [row["p95_ms"] for row in rows]
        ax.plot(sizes, p95, ":", marker="o", color=color, label=f"{kind} p95")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="chunks in the index (synthetic 384-d unit vectors)",
        ylabel="FAISS query time (ms)",
        title="Query latency against corpus size",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def streaming_gaps(r: dict[str, Any], path: Path) -> bool:
    rows = r.get("concurrent", [])
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    clients = [row["clients"] for row in rows]
    ax.plot(clients, [row["gap_ms"]["p50"] for row in rows], marker="o", label="gap p50")
    ax.plot(clients, [row["gap_ms"]["p99"] for row in rows], marker="o", label="gap p99")
    ax.axhline(r["mock_delay_ms"], color="grey", ls=":", label="generator: one token per 20 ms")
    ax.set(
        xscale="log",
        xlabel="concurrent clients",
        ylabel="inter-token gap at the client (ms)",
        title="SSE inter-token gap against concurrency (mock LLM)",
    )
    ax.set_xticks(clients, [str(c) for c in clients])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def transports(r: dict[str, Any], path: Path) -> bool:
    t = r.get("transports")
    if not t:
        return False
    names = {"json": "REST (stream: false)", "sse": "SSE", "websocket": "WebSocket"}
    fig, ax = plt.subplots(figsize=(7, 3.9))
    labels = [names[k] for k in names if k in t]
    first = [t[k]["first_word_ms"]["p50"] for k in names if k in t]
    whole = [t[k]["whole_answer_ms"]["p50"] for k in names if k in t]
    y = range(len(labels))
    ax.barh([i + 0.2 for i in y], whole, height=0.38, color="#bbb", label="whole answer (p50)")
    ax.barh([i - 0.2 for i in y], first, height=0.38, color="#2a7", label="first word (p50)")
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set(xlabel="ms after sending the question", title="When the user sees the answer")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def engine_clients(r: dict[str, Any], path: Path) -> bool:
    ways = r.get("ways", {})
    if not ways:
        return False
    fig, (speed, first) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, rows in ways.items():
        clients = [row["clients"] for row in rows]
        speed.plot(clients, [row["tokens_per_s"] for row in rows], marker="o", label=name)
        first.plot(clients, [row["ttft_p95_ms"] for row in rows], marker="o", label=name)
    speed.set(xlabel="concurrent clients", ylabel="answer tokens/s (all clients)")
    first.set(xlabel="concurrent clients", ylabel="time to first token p95 (ms)")
    for ax in (speed, first):
        ax.set_xscale("log", base=2)
        ax.set_xticks(clients, [str(c) for c in clients])
        ax.grid(alpha=0.3)
    speed.legend(fontsize=8)
    fig.suptitle(f"Gemma 3 270M through `rag serve` on {r['cpus']} cores")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True
