"""`rag serve` in its own process, as users run it, for the benchmarks and the test suite: the
measuring threads must not share the server's interpreter (and its GIL)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench import ROOT


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`python -m rag serve` with `env` over this process's environment and more `args` (e.g.
    `--workers 2`), run in `cwd` (another checkout's `rag` is imported from there), entered
    once `/readyz` answers 200; exit stops it."""

    def __init__(
        self, env: dict[str, str], *args: str, timeout_s: float = 120, cwd: Path = ROOT
    ) -> None:
        self.env, self.args, self.timeout_s, self.cwd = env, args, timeout_s, cwd

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self) -> ServerProcess:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "rag", "serve", "--port", str(port)]
        self.process = subprocess.Popen(
            [*command, "--log-level", "warning", *self.args],
            cwd=self.cwd,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self.process.poll() is not None:
                error = self.process.stderr.read() if self.process.stderr else ""
                raise RuntimeError(f"the server exited: {error[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the server did not become ready in {self.timeout_s:.0f} s")
            time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
