"""The command line as a user runs it: in a subprocess, reading exit status, stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import NEEDS_TESSERACT, ROOT, write_corpus
from tests.metrics import samples
from tests.office_files import scanned_pdf


def rag(
    *args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None, script: bool = False
) -> subprocess.CompletedProcess[str]:
    command = (
        [sys.executable, str(ROOT / "scripts/ingest.py")]
        if script
        else [sys.executable, "-m", "rag"]
    )
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "RAG_EMBEDDING_MODEL": "hashing",
            **(env or {}),
        },
    )


def test_ingest_then_search_json(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    done = rag("ingest", corpus, "--index", index, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["n_files"] == 3 and summary["wrote"] and summary["skipped"] == []
    found = rag("search", "Broncos Super Bowl", "--index", index, "--k", "2", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 2
    assert {"text", "source", "score", "title", "start", "end"} <= hits[0].keys()
    assert hits[0]["source"] == "docs/football.md"


def test_scripts_ingest_is_the_same_command(corpus: Path, tmp_path: Path) -> None:
    done = rag(corpus, "--index", tmp_path / "idx", script=True)
    assert done.returncode == 0, done.stderr
    assert "3 files" in done.stdout


def test_index_dir_comes_from_the_environment(corpus: Path, tmp_path: Path) -> None:
    done = rag("ingest", corpus, "--quiet", env={"RAG_INDEX_DIR": str(tmp_path / "envidx")})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "envidx" / "CURRENT").is_file()


def test_skipped_files_exit_1_with_one_line_reasons(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs", {"ok.md": "fine", "bad.txt": b"\x00\x01"})
    done = rag(
        "ingest", docs, tmp_path / "missing", tmp_path / "docs/ok.md", "--index", tmp_path / "i"
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"skipped {docs / 'bad.txt'}: binary content" in done.stderr
    assert f"skipped {tmp_path / 'missing'}: no such file or directory" in done.stderr
    assert "2 file(s) skipped" in done.stdout


def test_ingest_writes_its_metrics_for_a_textfile_collector(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs", {"ok.md": "fine", "bad.txt": b"\x00\x01"})
    prom = tmp_path / "rag_ingest.prom"
    done = rag("ingest", docs, "--index", tmp_path / "i", "--metrics-file", prom, "--quiet")
    assert done.returncode == 1, done.stderr
    got = samples(prom.read_text())
    assert got["rag_ingest_files_total", (("result", "added"), ("source", "cli"))] == 1
    assert got["rag_ingest_skipped_files_total", (("reason", "binary"), ("source", "cli"))] == 1
    assert got["rag_ingest_chunks_embedded_total", (("source", "cli"),)] == 1
    assert abs(got["rag_ingest_last_end_timestamp_seconds", ()] - time.time()) < 300
    nowhere = rag("ingest", docs, "--index", tmp_path / "i", "--metrics-file", "/no/such/x.prom")
    assert nowhere.returncode == 2
    assert nowhere.stderr.strip() == "error: --metrics-file: no folder /no/such"


@pytest.mark.parametrize(
    "args",
    [
        ["ingest"],
        ["ingest", "x", "--chunk-size", "10"],
        ["ingest", "x", "--chunk-size", "50", "--chunk-overlap", "50"],
        ["ingest", "x", "--index-type", "ivf"],
        ["search"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    done = rag(*args, "--index", tmp_path / "i") if args[0] != "nonsense" else rag(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.strip()


def test_bad_environment_value_is_a_usage_error(tmp_path: Path) -> None:
    done = rag("search", "q", env={"RAG_CHUNK_SIZE_TOKENS": "big"})
    assert done.returncode == 2
    assert done.stderr.strip() == "error: RAG_CHUNK_SIZE_TOKENS must be a whole number, got 'big'"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RAG_MAX_QUEUE", "-1", "RAG_MAX_QUEUE must be at least 0, got -1"),
        ("RAG_MAX_GENERATIONS", "0", "RAG_MAX_GENERATIONS must be at least 1, got 0"),
    ],
)
def test_a_limit_out_of_range_names_the_variable_set(
    variable: str, value: str, message: str
) -> None:
    done = rag("search", "q", env={variable: value})
    assert (done.returncode, done.stderr.strip()) == (2, f"error: {message}")


def test_search_without_an_index_explains(tmp_path: Path) -> None:
    done = rag("search", "anything", "--index", tmp_path / "none")
    assert done.returncode == 1
    assert done.stderr.startswith("error: no index in") and "Traceback" not in done.stderr


def test_search_with_another_model_than_the_index_explains(corpus: Path, tmp_path: Path) -> None:
    rag("ingest", corpus, "--index", tmp_path / "i")
    done = rag(
        "search", "q", "--index", tmp_path / "i", env={"RAG_EMBEDDING_MODEL": "all-MiniLM-L6-v2"}
    )
    assert done.returncode == 1
    assert "was built with hashing-384" in done.stderr and "Traceback" not in done.stderr


def test_help_lists_the_commands() -> None:
    done = rag("--help")
    assert done.returncode == 0 and "ingest" in done.stdout and "search" in done.stdout


@pytest.mark.slow
def test_real_minilm_answers_the_readme_question(tmp_path: Path) -> None:
    env = {"RAG_EMBEDDING_MODEL": "all-MiniLM-L6-v2", "HF_HUB_OFFLINE": "1"}
    done = rag("ingest", ROOT / "data", "--index", tmp_path / "i", env=env)
    assert done.returncode == 0, done.stderr
    question = "Which team won Super Bowl 50?"
    found = rag("search", question, "--index", tmp_path / "i", "--json", env=env)
    hits = json.loads(found.stdout)
    assert {hit["source"] for hit in hits} == {"data/Super_Bowl_50.md"}
    assert any("Denver Broncos defeated" in hit["text"] for hit in hits)
    dense = rag(
        "search",
        question,
        "--index",
        tmp_path / "i",
        "--json",
        "--k",
        "1",
        "--retrieval",
        "dense",
        env=env,
    )
    assert "Denver Broncos defeated" in json.loads(dense.stdout)[0]["text"]
    again = rag("ingest", ROOT / "data", "--index", tmp_path / "i", "--json", env=env)
    assert json.loads(again.stdout)["wrote"] is False


def test_ask_streams_an_answer_with_sources_and_timings(corpus: Path, tmp_path: Path) -> None:
    rag("ingest", corpus, "--index", tmp_path / "i")
    env = {"RAG_MOCK_TOKEN_DELAY_MS": "0", "RAG_MIN_SCORE": "0"}
    done = rag(
        "ask",
        "Who won Super Bowl 50, the Broncos?",
        "--index",
        tmp_path / "i",
        "--llm",
        "mock",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    answer, first_source = done.stdout.splitlines()[:2]
    assert answer.startswith("According to [1], # Super Bowl 50")
    assert first_source.startswith("[1] docs/football.md (Super Bowl 50, chars 0-")
    assert "first token" in done.stderr and "Traceback" not in done.stderr
    as_json = rag(
        "ask", "Broncos?", "--index", tmp_path / "i", "--llm", "extractive", "--json", env=env
    )
    result = json.loads(as_json.stdout)
    assert {"answer", "sources", "usage", "timings"} <= result.keys()
    assert result["answer"].endswith("[1]")


def test_ask_reports_a_failing_backend_in_one_line(corpus: Path, tmp_path: Path) -> None:
    rag("ingest", corpus, "--index", tmp_path / "i")
    env = {"RAG_MOCK_TOKEN_DELAY_MS": "0", "RAG_MIN_SCORE": "0", "RAG_MOCK_FAIL_AFTER": "2"}
    done = rag("ask", "Broncos?", "--index", tmp_path / "i", "--llm", "mock", env=env)
    assert done.returncode == 1
    assert done.stdout == "According to \n"
    assert done.stderr.strip().endswith("error: the mock LLM failed after 2 tokens, as configured")


def test_an_index_that_is_a_file_is_one_line(corpus: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not an index", encoding="utf-8")
    commands: list[list[str | Path]] = [
        ["ingest", corpus, "--index", a_file],
        ["search", "q", "--index", a_file],
    ]
    for command in commands:
        done = rag(*command)
        assert done.returncode == 2, done.stderr
        assert done.stderr == f"error: {a_file} is a file, not an index folder\n"


def test_an_index_folder_that_cannot_be_written_is_one_line(corpus: Path, tmp_path: Path) -> None:
    """Without write permission (as a user) or with the lock file unusable (here, as root, a
    folder in its place): the same refusal to open a file, one line, exit 1."""
    index = tmp_path / "idx"
    assert rag("ingest", corpus, "--index", index).returncode == 0
    if os.geteuid() == 0:
        (index / ".lock").unlink()
        (index / ".lock").mkdir()
    else:
        index.chmod(0o500)
    try:
        done = rag("ingest", corpus, "--index", index)
    finally:
        index.chmod(0o700)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot write the index folder {index}/: "), done.stderr
    assert "Traceback" not in done.stderr


def test_nothing_found_writes_no_index(tmp_path: Path) -> None:
    done = rag("ingest", tmp_path / "nonexistent", "--index", tmp_path / "new")
    assert done.returncode == 1
    assert "no such file or directory" in done.stderr
    assert "nothing to index" in done.stdout
    assert not list((tmp_path / "new").glob("v*"))
    assert not (tmp_path / "new" / "CURRENT").exists()


def test_remove_deletes_a_document_and_keeps_the_index_settings(
    corpus: Path, tmp_path: Path
) -> None:
    index = tmp_path / "idx"
    built = rag("ingest", corpus, "--index", index, "--chunk-size", "64", "--index-type", "hnsw")
    assert built.returncode == 0, built.stderr
    done = rag("remove", "docs/oxygen.txt", str(corpus / "football.md"), "--index", index)
    assert done.returncode == 0, done.stderr
    assert "1 files, " in done.stdout and "removed 2" in done.stdout
    assert "note:" not in done.stderr  # nothing rebuilt: the index kept 64 tokens and HNSW
    live = (index / "CURRENT").read_text().strip()
    manifest = json.loads((index / live / "manifest.json").read_text())
    assert (manifest["chunk_size_tokens"], manifest["index_type"]) == (64, "hnsw")
    assert list(manifest["files"]) == ["docs/nested/primes.html"]
    unknown = rag("remove", "docs/none.md", "--index", index)
    assert unknown.returncode == 1
    assert "skipped docs/none.md: not in the index: nothing to remove" in unknown.stderr


def test_remove_a_collection(tmp_path: Path) -> None:
    manuals = write_corpus(tmp_path / "manuals", {"pump.md": "Prime it.", "valve.md": "Turn."})
    notes = write_corpus(tmp_path / "notes", {"todo.md": "Buy valves."})
    index = tmp_path / "idx"
    assert rag("ingest", manuals, "--collection", "manuals", "--index", index).returncode == 0
    assert rag("ingest", notes, "--index", index).returncode == 0
    done = rag("remove", "--collection", "manuals", "--index", index, "--json")
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)["removed"]) == ["manuals/pump.md", "manuals/valve.md"]
    missing = rag("remove", "--collection", "manuals", "--index", index)
    assert missing.returncode == 1
    assert "skipped manuals: no collection of that name in the index" in missing.stderr
    assert rag("remove", "--index", index).returncode == 2


def test_another_ingest_holding_the_index_exits_1_with_one_line(
    corpus: Path, tmp_path: Path
) -> None:
    from rag.stores import folder

    index = tmp_path / "idx"
    with folder.lock(index):  # as an ingest running in another process holds it
        done = rag("ingest", corpus, "--index", index)
    assert done.returncode == 1, done.stderr
    assert (
        done.stderr.strip() == f"error: another ingest is writing {index}/; try again when it ends"
    )
    assert rag("ingest", corpus, "--index", index).returncode == 0  # once it ends


def test_changed_chunk_settings_are_announced_and_rebuild(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    assert rag("ingest", corpus, "--index", index).returncode == 0
    done = rag("ingest", corpus, "--index", index, "--chunk-size", "60")
    assert done.returncode == 0, done.stderr
    (note,) = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    assert note.startswith("note: chunk settings changed from "), note
    assert " to 60/" in note and note.endswith("re-chunking and re-embedding every file"), note
    assert "3 files" in done.stdout


def in_a_terminal(*args: str | Path) -> tuple[int, str]:
    """`rag` with its stderr on a pseudo-terminal, as a person runs it: exit status and what
    the terminal showed."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    process = subprocess.Popen(
        [sys.executable, "-m", "rag", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**os.environ, "PYTHONPATH": str(ROOT), "RAG_EMBEDDING_MODEL": "hashing"},
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not data:
            break
        shown += data
    os.close(leader)
    return process.wait(timeout=60), shown.decode(errors="replace")


def test_progress_bars_show_on_a_terminal_and_quiet_turns_them_off(
    corpus: Path, tmp_path: Path
) -> None:
    status, shown = in_a_terminal("ingest", corpus, "--index", tmp_path / "a")
    assert status == 0 and "100%" in shown and "\r" in shown, shown  # a bar, redrawn
    status, shown = in_a_terminal("ingest", corpus, "--index", tmp_path / "b", "--quiet")
    assert status == 0 and shown == "", shown


@NEEDS_TESSERACT
def test_ingest_summary_names_other_encodings_and_counts_ocr_pages(tmp_path: Path) -> None:
    docs = write_corpus(
        tmp_path / "docs",
        {
            "latin.txt": "Crème brûlée at the café".encode("cp1252"),
            "scan.pdf": scanned_pdf(["The harbour closed for nine days.", "Ships waited."]),
            "plain.md": "# Plain\n\nUTF-8 text.",
        },
    )
    done = rag("ingest", docs, "--index", tmp_path / "i", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["encodings"] == {"docs/latin.txt": "cp1252"}
    assert summary["ocr_pages"] == 2
    assert sorted(summary["added"]) == ["docs/latin.txt", "docs/plain.md", "docs/scan.pdf"]
    found = rag("search", "How long was the harbour closed?", "--index", tmp_path / "i", "--json")
    assert json.loads(found.stdout)[0]["source"] == "docs/scan.pdf"
    (docs / "scan.pdf").write_bytes(scanned_pdf(["A third page."]))
    again = rag("ingest", docs, "--index", tmp_path / "i")
    assert "read 1 PDF page(s) without a text layer by OCR" in again.stdout


def test_without_tesseract_a_scanned_pdf_is_skipped_saying_how_to_read_it(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs", {"scan.pdf": scanned_pdf(["Ships waited."])})
    done = rag("ingest", docs, "--index", tmp_path / "i", env={"PATH": str(tmp_path / "empty")})
    assert done.returncode == 1
    assert (
        f"skipped {docs / 'scan.pdf'}: PDF has no extractable text (scanned images?); install "
        "Tesseract to read it by OCR (Debian/Ubuntu: apt-get install tesseract-ocr)"
    ) in done.stderr


@NEEDS_TESSERACT
def test_ocr_pages_are_counted_by_a_progress_bar(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs", {"scan.pdf": scanned_pdf(["One.", "Two.", "Three."])})
    status, shown = in_a_terminal("ingest", docs, "--index", tmp_path / "i")
    assert status == 0, shown
    assert "OCR scan.pdf" in shown and "3/3" in shown and "page" in shown, shown
