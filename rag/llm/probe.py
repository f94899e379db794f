"""Does llama.cpp run here? One short generation in a child process, so that a build for
another CPU (an illegal instruction) or a GGUF the engine cannot read (a segfault) becomes one
sentence with the cause and the fix, instead of the end of the process that asked.

A success is remembered under ~/.cache/rag/engine-ok/, keyed by the llama.cpp libraries, the
model file and the CPU's flags: a copied home or venv on another CPU is probed again. The
parent never imports llama_cpp before its child has run it.

    python -m rag.llm.probe [--model PATH]    what `make install` runs after building the wheel
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag import cpu
from rag.errors import EngineCrashed, RagError, UsageError

PROMPT = "The capital of France is"
REBUILD = "make install LLAMA_CPU=portable"
EXIT_LOAD_FAILED = 3  # the child's status when llama.cpp refused the model (no crash)


@dataclass(frozen=True)
class Outcome:
    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str
    seconds: float

    @property
    def built_with(self) -> list[str]:
        """The instruction sets the library was compiled with, from llama_print_system_info()
        (the child prints it first): e.g. ['AVX', 'AVX2', 'AVX512']."""
        for line in self.stdout.splitlines():
            if line.startswith("system_info "):
                pairs = (p.partition("=") for p in line[12:].split("|"))  # "CPU : AVX = 1 |"
                names = (name.split(":")[-1].strip() for name, _, v in pairs if v.strip() == "1")
                return [name for name in names if name in cpu.FEATURES]
        return []


def child_command(model_path: Path, threads: int = 0) -> list[str]:
    return [sys.executable, "-m", "rag.llm.probe", "--child", str(model_path), str(threads)]


def run(command: Sequence[str], timeout_s: float = 300) -> Outcome:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise EngineCrashed(
            f"llama.cpp did not finish a 2-token generation in {timeout_s:.0f} s"
        ) from None
    return Outcome(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def death(returncode: int) -> str:
    """How a process ended, in words.

    >>> death(-9), death(1)
    ('SIGKILL (killed)', 'exit status 1')
    """
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
    return f"{name} ({(signal.strsignal(-returncode) or name).lower()})"


def explain(outcome: Outcome, model_path: Path, flags: frozenset[str], built_with: str = "") -> str:
    """One line: what happened, what the build and the CPU have, and how to fix it."""
    number = -outcome.returncode
    stage = "generating" if "loaded" in outcome.stdout.split() else "loading"
    features = outcome.built_with
    built = ", ".join(features) if features else built_with or "unknown options"
    lacking = cpu.missing_flags(features, flags)
    line = (
        f"llama.cpp died with {death(outcome.returncode)} {stage} {model_path.name}: "
        f"built with {built}; "
        f"this CPU has {' '.join(cpu.relevant_flags(flags)) or 'none of the known flags'}"
    )
    if lacking:
        line += f" and lacks {' '.join(lacking)}"
    if number == signal.SIGILL:
        line += "; the build uses instructions this CPU does not run"
    elif number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
        line += "; the model file may be damaged, or the build may not suit this machine"
    return f"{line}. Rebuild llama-cpp-python with at most AVX2: {REBUILD}"


def check(
    model_path: Path,
    *,
    threads: int = 0,
    flags: frozenset[str] | None = None,
    built_with: str = "",
) -> Outcome:
    """Run the engine once in a child; raise EngineCrashed (died by a signal) or UsageError
    (llama.cpp refused the model) with one line."""
    flags = cpu.read_cpu_flags() if flags is None else flags
    outcome = run(child_command(model_path, threads))
    if outcome.returncode < 0:
        raise EngineCrashed(explain(outcome, model_path, flags, built_with))
    if outcome.returncode != 0:
        last = (outcome.stderr.strip().splitlines() or ["no message"])[-1]
        if outcome.returncode == EXIT_LOAD_FAILED:
            raise UsageError(f"llama.cpp cannot load {model_path}: {last}")
        raise EngineCrashed(
            f"llama.cpp's check exited with status {outcome.returncode} on {model_path.name}: "
            f"{last}"
        )
    return outcome


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag" / "engine-ok"


def fingerprint(model_path: Path, flags: frozenset[str]) -> str:
    """What a successful check depends on: the llama.cpp libraries, the model, the CPU."""
    parts = [sys.executable, str(model_path.resolve())]
    spec = importlib.util.find_spec("llama_cpp")  # finds the package without running it
    if spec is not None and spec.origin is not None:
        package = Path(spec.origin).parent
        for path in sorted([Path(spec.origin), *package.glob("lib/*")]):
            stat = path.stat()
            parts.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
    stat = model_path.stat()
    parts += [f"{stat.st_size}:{stat.st_mtime_ns}", " ".join(sorted(flags))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def ensure_runs(
    model_path: Path, threads: int = 0, *, again: bool = False, built_with: str = ""
) -> Outcome | None:
    """`check` once per (libraries, model, CPU): later calls cost a stat of each file and
    return None. `again` checks even when a success is remembered."""
    if not model_path.is_file():
        raise UsageError(f"no GGUF model file at {model_path}")
    flags = cpu.read_cpu_flags()
    stamp = cache_dir() / fingerprint(model_path, flags)
    if stamp.exists() and not again:
        return None
    outcome = check(model_path, threads=threads, flags=flags, built_with=built_with)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"{model_path}\n", encoding="utf-8")
    except OSError:
        pass  # a read-only home: the check runs again next time
    return outcome


def _child(model_path: str, threads: int) -> int:
    """In the child: load llama.cpp, report how it was built, generate 2 tokens."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info()
    print("system_info", info.decode() if isinstance(info, bytes) else info, flush=True)
    try:
        llama = llama_cpp.Llama(
            model_path=model_path,
            n_ctx=256,
            n_threads=threads or os.cpu_count() or 1,
            verbose=False,
        )
    except (ValueError, RuntimeError) as err:
        print(err, file=sys.stderr)
        return EXIT_LOAD_FAILED
    print("loaded", flush=True)
    out: Any = llama.create_completion(PROMPT, max_tokens=2, temperature=0.0)
    print("generated", repr(out["choices"][0]["text"]), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rag.llm.probe",
        description="check that llama.cpp runs on this CPU: one short generation in a child "
        "process (what `make install` runs after building llama-cpp-python)",
    )
    parser.add_argument("--model", type=Path, help="a GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--built-with", default="", help="the build's options, for messages")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child[0], int(args.child[1]))
    from rag.llm.gguf import default_model_path

    try:
        model = args.model or default_model_path()
        outcome = ensure_runs(model, again=True, built_with=args.built_with)
    except RagError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    assert outcome is not None
    built = ", ".join(outcome.built_with) or "no x86 extensions"
    print(f"llama.cpp runs on this CPU: {model.name} answered in {outcome.seconds:.1f} s ({built})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
