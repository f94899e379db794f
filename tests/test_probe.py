"""The engine check: llama.cpp runs once in a child process, so that a build for another CPU
(SIGILL) or a crash on a model becomes one line with the cause and the fix. The engines here
are fake `llama_cpp` packages put first on PYTHONPATH: one dies by SIGILL as it is imported,
one after reporting an AVX-VNNI build, one refuses the model, one works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.live import free_port
from rag import cpu
from rag.errors import EngineCrashed, UsageError
from rag.llm import probe
from tests.conftest import write_corpus
from tests.test_cpu import ZEN4_EPYC, cpuinfo

ENGINES = {
    "dies-at-import": "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n",
    "dies-generating": """
import os, signal
def llama_print_system_info():
    return b"CPU : SSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | " \\
        b"AMX_INT8 = 0 |"
class Llama:
    def __init__(self, **kwargs): pass
    def create_completion(self, prompt, **kwargs):
        os.kill(os.getpid(), signal.SIGILL)
""",
    "refuses-the-model": """
def llama_print_system_info():
    return b"CPU : AVX2 = 1 |"
class Llama:
    def __init__(self, **kwargs):
        raise ValueError("Failed to load model from file: " + kwargs["model_path"])
""",
    "works": """
import os
def llama_print_system_info():
    return b"CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | FMA = 1 |"
class Llama:
    def __init__(self, **kwargs): pass
    def create_completion(self, prompt, **kwargs):
        runs = os.environ.get("FAKE_ENGINE_RUNS")
        if runs:
            with open(runs, "a") as f:
                f.write("run\\n")
        return {"choices": [{"text": " Paris"}]}
""",
}


def fake_engine(tmp_path: Path, kind: str) -> dict[str, str]:
    """An environment whose `llama_cpp` is the fake `kind`, with its own cache folder."""
    package = tmp_path / kind / "llama_cpp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(ENGINES[kind], encoding="utf-8")
    return {
        "PYTHONPATH": os.pathsep.join([str(package.parent), os.getcwd()]),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "FAKE_ENGINE_RUNS": str(tmp_path / "runs.txt"),
    }


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


def run_check(env: dict[str, str], model: Path) -> subprocess.CompletedProcess[str]:
    """`python -m rag.llm.probe`, what `make install` runs after the wheel is built."""
    return subprocess.run(
        [sys.executable, "-m", "rag.llm.probe", "--model", str(model), "--built-with", "AVX2"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_install_check_fails_in_one_line_when_the_engine_dies_by_sigill(
    tmp_path: Path, model: Path
) -> None:
    done = run_check(fake_engine(tmp_path, "dies-at-import"), model)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert "llama.cpp died with SIGILL (illegal instruction) loading tiny.gguf" in line
    assert "built with AVX2" in line  # the options the Makefile used, as the child said nothing
    assert "this CPU has " in line
    assert line.endswith(
        "Rebuild llama-cpp-python with at most AVX2: make install LLAMA_CPU=portable"
    )


def test_install_check_passes_and_is_remembered_when_the_engine_runs(
    tmp_path: Path, model: Path
) -> None:
    env = fake_engine(tmp_path, "works")
    done = run_check(env, model)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("llama.cpp runs on this CPU: tiny.gguf answered in ")
    assert done.stdout.rstrip().endswith("(SSE3, AVX, AVX2, FMA)")
    assert len(list((tmp_path / "cache" / "rag" / "engine-ok").iterdir())) == 1


def test_a_crash_while_generating_names_what_the_build_has_and_the_cpu_lacks(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in fake_engine(tmp_path, "dies-generating").items():
        monkeypatch.setenv(name, value)
    zen4 = cpu.cpu_flags(cpuinfo(ZEN4_EPYC))
    with pytest.raises(EngineCrashed) as caught:
        probe.check(model, flags=zen4)
    message = str(caught.value)
    assert "SIGILL (illegal instruction) generating tiny.gguf" in message
    assert "built with SSE3, AVX, AVX_VNNI, AVX2, F16C, FMA;" in message  # AMX_INT8 = 0: not
    assert "and lacks avx_vnni;" in message
    assert "\n" not in message


def test_a_model_the_engine_refuses_is_a_usage_error_not_a_crash(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in fake_engine(tmp_path, "refuses-the-model").items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match=r"cannot load .*tiny\.gguf: Failed to load model"):
        probe.check(model)


def test_a_success_is_checked_once_per_libraries_model_and_cpu(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fake_engine(tmp_path, "works")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(env["PYTHONPATH"].split(os.pathsep)[0])
    runs = Path(env["FAKE_ENGINE_RUNS"])
    assert probe.ensure_runs(model) is not None
    assert probe.ensure_runs(model) is None  # remembered
    assert runs.read_text().count("run") == 1
    model.write_bytes(b"GGUF" + bytes(61))  # another model file: checked again
    probe.ensure_runs(model)
    assert runs.read_text().count("run") == 2
    flags = cpu.read_cpu_flags()
    other_cpu = probe.fingerprint(model, flags | {"avx_vnni_int8"})
    assert other_cpu != probe.fingerprint(model, flags)  # a home moved to another CPU


def test_each_fatal_signal_is_named(model: Path) -> None:
    for number, words in [
        (signal.SIGILL, "the build uses instructions this CPU does not run"),
        (signal.SIGSEGV, "the model file may be damaged"),
        (signal.SIGKILL, "SIGKILL (killed)"),
    ]:
        outcome = probe.Outcome(-number, "system_info CPU : AVX2 = 1 |\nloaded\n", "", 0.1)
        message = probe.explain(outcome, model, frozenset({"avx", "avx2"}))
        assert f"died with {signal.Signals(number).name}" in message
        assert "generating tiny.gguf: built with AVX2; this CPU has avx avx2" in message
        assert words in message


@pytest.mark.slow
def test_serve_starts_and_says_why_when_the_engine_dies(tmp_path: Path, model: Path) -> None:
    """`rag serve` with an engine that dies by SIGILL: the server stays up (health, readiness
    with the reason) and its log says it in one line; it never imports the engine itself."""
    port = free_port()
    env = {
        **os.environ,
        **fake_engine(tmp_path, "dies-at-import"),
        "RAG_LLM": "llamacpp",
        "RAG_LLM_MODEL_PATH": str(model),
        "RAG_EMBEDDING_MODEL": "hashing",
        "RAG_INDEX_DIR": str(tmp_path / "index"),
    }
    docs = write_corpus(tmp_path / "docs")
    subprocess.run([sys.executable, "-m", "rag", "ingest", str(docs)], env=env, check=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                ready = httpx.get(f"{url}/readyz", timeout=2)
                if ready.status_code == 200 or "LLM not ready" in ready.text:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer"
            time.sleep(0.2)
        assert httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        assert ready.status_code == 503
        reason = ready.json()["error"]["message"]
        assert reason.startswith("LLM not ready: llama.cpp died with SIGILL (illegal instruction)")
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    sigill_lines = [line for line in log.splitlines() if "SIGILL" in line]
    assert len(sigill_lines) == 1, log
    assert "starting, but not ready: LLM not ready: llama.cpp died with SIGILL" in sigill_lines[0]
