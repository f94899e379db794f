"""An earlier commit of this project checked out beside this one (`git worktree`), so a section
measures "today" against it in the same run, on the same machine and environment: its own code
(PYTHONPATH and working folder) builds its own index and answers."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench import ROOT


@contextlib.contextmanager
def checkout(commit: str, folder: Path) -> Iterator[Path | None]:
    """`commit` checked out under `folder` for the block (None when git or the commit is not
    there), removed afterwards."""
    target = folder / f"baseline-{commit}"
    done = subprocess.run(
        ["git", "worktree", "add", "--detach", str(target), commit],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        yield None
        return
    try:
        yield target
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(target)], cwd=ROOT, check=False)


def environment(code: Path | None = None) -> dict[str, str]:
    """The environment for a process running this checkout's code (None) or `code`'s."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env


def ingest(corpus: Path, index: Path, code: Path | None = None) -> dict[str, object]:
    """`rag ingest --json` of `corpus` into `index` by this checkout or by `code`; its report."""
    done = subprocess.run(
        [sys.executable, "-m", "rag", "ingest", str(corpus), "--index", str(index), "--json"],
        cwd=code or ROOT,
        env=environment(code),
        check=True,
        capture_output=True,
        text=True,
    )
    report: dict[str, object] = json.loads(done.stdout)
    return report
