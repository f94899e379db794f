"""llama.cpp builds side by side (a section of `python -m bench`): each llama-cpp-python wheel is
installed into a folder of its own and measured in a child process of its own (that folder first
on PYTHONPATH) on the same prompts, alternating which build goes first; prefill and decode
tokens/s of Gemma 3 270M, and the ratio of each build to the first.

A runtime-dispatch wheel (GGML_BACKEND_DL=ON + GGML_CPU_ALL_VARIANTS=ON) ships one CPU backend
per x86 generation (in the wheel's top-level `bin/`, outside the package) and loads none by
itself; llama-cpp-python 0.3.36 does not call `ggml_backend_load_all`, so the child calls
`ggml_backend_load_all_from_path` on that folder first (through ctypes), as a backend for that
build would have to.

    python -m bench --only builds --build-wheel NAME=PATH[,without=VARIANT...] ...
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.report import table
from rag import cpu

CHILD = r"""
import ctypes, json, os, sys, time
from pathlib import Path
import llama_cpp
lib = Path(llama_cpp.__file__).parent / "lib"
found = Path(llama_cpp.__file__).parents[1] / "bin"  # where the wheel puts the CPU variants
variants = sorted(p.name for p in found.glob("libggml-cpu-*.so"))
if variants:
    ggml = ctypes.CDLL(str(lib / "libggml.so.0"))  # the name libllama links: one registry
    ggml.ggml_backend_load_all_from_path(str(found).encode())
quiet = llama_cpp.llama_log_callback(lambda *a: None)  # kept: llama.cpp calls it later
llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))
info = llama_cpp.llama_print_system_info().decode()
model, prompts, max_tokens = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
llm.create_completion("warm up", max_tokens=2, temperature=0.0)
rows = []
for text in prompts:
    n_prompt = len(llm.tokenize(text.encode(), add_bos=True))
    started = time.perf_counter(); first = last = 0.0; tokens = 0
    for part in llm.create_completion(text, max_tokens=max_tokens, temperature=0.0, stream=True):
        last = time.perf_counter()
        if tokens == 0:
            first = last
        tokens += 1
    rows.append([n_prompt, first - started, tokens, last - first])
print(json.dumps({"info": info, "variants": variants, "rows": rows}))
"""


def install(wheel: Path, into: Path, without: list[str]) -> Path:
    """The wheel unpacked into a folder of its own (a wheel is a zip of the package), minus the
    CPU variants named in `without` (e.g. sapphirerapids: the loader then picks the next best)."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
    for so in into.rglob("*.so*"):
        so.chmod(0o755)
    for variant in without:
        (into / "bin" / f"libggml-cpu-{variant}.so").unlink()
    return into


def measure(target: Path, model: Path, prompts: list[str], max_tokens: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), json.dumps(prompts), str(max_tokens)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode < 0:  # died by a signal: which, and in which CPU variant
        loaded = re.findall(r"libggml-cpu-(\w+)\.so", done.stderr)
        where = f" running its {loaded[-1]} variant" if loaded else ""
        return {"failed": f"died with {signal.Signals(-done.returncode).name}{where}"}
    if done.returncode != 0:
        return {"failed": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run(
    wheels: dict[str, tuple[Path, list[str]]], dataset: Path, n: int = 20, rounds: int = 3
) -> dict[str, Any]:
    """`wheels`: name -> (wheel file, CPU variants to leave out of a runtime-dispatch wheel)."""
    from bench.generation import prompts as service_prompts
    from rag.llm.gguf import default_model_path

    model = default_model_path()
    texts = service_prompts(dataset, n, lambda text: len(text) // 4)
    totals: dict[str, dict[str, float]] = {
        name: {"prompt": 0, "prefill_s": 0.0, "decoded": 0, "decode_s": 0.0} for name in wheels
    }
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        targets = {
            name: install(path, Path(tmp) / name, without)
            for name, (path, without) in wheels.items()
        }
        for round_no in range(rounds):  # alternate the order: the machine drifts
            order = list(wheels) if round_no % 2 == 0 else list(reversed(wheels))
            for name in order:
                started = time.perf_counter()
                result = measure(targets[name], model, texts, 48)
                if "failed" in result:
                    details[name] = {"failed": result["failed"]}
                    continue
                details[name] = {"info": result["info"], "variants": result["variants"]}
                for n_prompt, prefill_s, tokens, decode_s in result["rows"]:
                    totals[name]["prompt"] += n_prompt
                    totals[name]["prefill_s"] += prefill_s
                    totals[name]["decoded"] += max(0, tokens - 1)
                    totals[name]["decode_s"] += decode_s
                print(f"builds: {name} round {round_no + 1} {time.perf_counter() - started:.0f} s")
    rows = {}
    for name, t in totals.items():
        if "failed" in details.get(name, {}) or not t["prefill_s"]:
            rows[name] = {"failed": details.get(name, {}).get("failed", "no result")}
            continue
        info = details[name]["info"]
        features = [f.split("=")[0].strip() for f in info.split("|") if f.strip().endswith("= 1")]
        rows[name] = {
            "prefill_tokens_per_s": round(t["prompt"] / t["prefill_s"], 1),
            "decode_tokens_per_s": round(t["decoded"] / t["decode_s"], 1),
            "features": [f.split(":")[-1].strip() for f in features],
            "variants": details[name]["variants"],
            "without": wheels[name][1],
        }
    first = next((r for r in rows.values() if "failed" not in r), None)
    for r in rows.values():
        if first is not None and "failed" not in r:
            r["prefill_ratio"] = round(r["prefill_tokens_per_s"] / first["prefill_tokens_per_s"], 3)
            r["decode_ratio"] = round(r["decode_tokens_per_s"] / first["decode_tokens_per_s"], 3)
    return {
        "model": model.name,
        "threads": os.cpu_count(),
        "prompts": len(texts),
        "rounds": rounds,
        "cpu_flags": cpu.relevant_flags(cpu.read_cpu_flags()),
        "rows": rows,
    }


def render(r: dict[str, Any]) -> str:
    lines = [
        "## llama.cpp builds",
        "",
        f"{r['model']} on {r['threads']} threads, {r['prompts']} prompts as the service builds "
        f"them, {r['rounds']} rounds alternating the order, each build in its own process. "
        f"This CPU's flags: {' '.join(r['cpu_flags'])}.",
        "",
    ]
    rows = []
    for name, row in r["rows"].items():
        if "failed" in row:
            rows.append([name, "", f"failed: {row['failed']}", "", ""])
            continue
        built = ", ".join(row["features"])
        if row["variants"]:
            left_out = f" ({', '.join(row['without'])} left out)" if row["without"] else ""
            built = f"runtime dispatch, {len(row['variants'])} variants{left_out}; picked {built}"
        rows.append(
            [
                name,
                built,
                row["prefill_tokens_per_s"],
                row["decode_tokens_per_s"],
                f"{row['prefill_ratio']} / {row['decode_ratio']}",
            ]
        )
    header = ["build", "compiled for", "prefill tokens/s", "decode tokens/s"]
    lines += table([*header, "x first: prefill, decode"], "llrrr", rows)
    return "\n".join([*lines, ""])
