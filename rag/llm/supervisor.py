"""The local LLM as an engine beside the API: `EngineLLM` starts `python -m rag.llm.engine`,
streams each answer's pieces from it, and when it dies (any signal, or an exit) ends the answers
it was producing with an `LLMError` that says how it died, reports the reason as its `problem()`
(the server's /readyz is 503 meanwhile), and starts it again after a growing pause.

One reading thread per engine process routes its messages to the answers by id; an answer whose
consumer stops (cancel event or generator closed) sends `cancel`, and the engine frees its
sequence before its next step.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

from rag.errors import EngineCrashed, LLMError, NotReady, UsageError
from rag.llm.probe import death
from rag.llm.wire import EXIT_LOAD_FAILED, Sender
from rag.prompt import HEAD, STOP, Prompt
from rag.settings import Settings

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # pauses before each restart in a row
STEADY_S = 60.0  # an engine up this long starts the next restarts from the first pause


class _Engine:
    """One engine process and the thread reading its messages."""

    def __init__(self, command: Sequence[str], routes: dict[int, queue.Queue[dict[str, Any]]]):
        self.process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
            # its own session: a Ctrl-C or a SIGTERM to the server's process group reaches
            # the server, which ends the engine by closing its input (no stray restart)
            start_new_session=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.send = Sender(self.process.stdin)
        self.routes = routes
        self.ready = threading.Event()
        self.ended = threading.Event()  # the process has exited and its output was read
        self.info: dict[str, Any] = {}
        self.started = time.monotonic()

    def read(self, stdout: IO[str]) -> None:
        for line in stdout:
            message = json.loads(line)
            if "ready" in message:
                self.info = message["ready"]
                self.ready.set()
            elif (route := self.routes.get(message.get("id", -1))) is not None:
                route.put(message)

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # the engine ends when its input does
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class EngineLLM:
    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str,
        context_tokens: int,
        temperature: float = 0.0,
        max_tokens: int = 48,
        start_timeout_s: float = 300.0,
        backoff_s: Sequence[float] = BACKOFF_S,
    ) -> None:
        self.command = list(command)
        self.name = name
        self.context_tokens = context_tokens
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.start_timeout_s = start_timeout_s
        self.backoff_s = tuple(backoff_s)
        self.restarts = 0
        self._routes: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._problem: str | None = "the LLM engine is starting"
        self._closed = False
        self._engine = self._start()  # the first start's failure is the caller's error
        self._problem = None

    def problem(self) -> str | None:
        """Why answers cannot be generated now (None: they can)."""
        return self._problem

    def close(self) -> None:
        self._closed = True
        self._engine.stop()

    def _start(self) -> _Engine:
        engine = _Engine(self.command, self._routes)
        assert engine.process.stdout is not None
        reader = threading.Thread(
            target=self._watch, args=(engine,), name="engine-watch", daemon=True
        )
        reader.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not engine.ready.wait(0.05):
            if engine.ended.is_set() or time.monotonic() > deadline:
                died = engine.ended.is_set()
                engine.stop()
                reader.join(5)
                code = engine.process.returncode
                if code == EXIT_LOAD_FAILED:
                    raise UsageError(f"the LLM engine cannot load the model ({self.name})")
                raise EngineCrashed(
                    f"the LLM engine died while loading {self.name}: {death(code)}"
                    if died
                    else f"the LLM engine did not load {self.name} in {self.start_timeout_s:.0f} s"
                )
        return engine

    def _watch(self, engine: _Engine) -> None:
        """Read the engine's messages; when they end, the engine has ended: fail its answers
        and start another (unless it is being closed, or never became ready)."""
        assert engine.process.stdout is not None
        with contextlib.suppress(OSError, ValueError):  # a torn last line: it is dying
            engine.read(engine.process.stdout)
        code = engine.process.wait()
        engine.ended.set()
        if self._closed or not engine.ready.is_set():
            return
        running = len(self._routes)
        reason = f"the LLM engine died: {death(code)}"
        if code == -signal.SIGKILL:
            reason += " (sent from outside it, e.g. by the kernel's OOM killer)"
        with self._lock:
            self._problem = f"{reason}; restarting it"
            for route in self._routes.values():
                route.put({"error": f"{reason} while generating this answer; restarting it"})
        log.error("%s while generating %d answer(s); restarting it", reason, running)
        self._restart(engine)

    def _restart(self, dead: _Engine) -> None:
        if time.monotonic() - dead.started > STEADY_S:
            self.restarts = 0
        while not self._closed:
            pause = self.backoff_s[min(self.restarts, len(self.backoff_s) - 1)]
            self.restarts += 1
            time.sleep(pause)
            try:
                engine = self._start()
            except (EngineCrashed, UsageError) as err:
                self._problem = f"{err}; trying again"
                log.error("%s; trying again", err)
                continue
            with self._lock:
                self._engine, self._problem = engine, None
            log.warning("the LLM engine is running again (restart %d)", self.restarts)
            return

    def _open(self, message: dict[str, Any]) -> tuple[int, queue.Queue[dict[str, Any]]]:
        """A route for the answer to `message`, which is sent; NotReady while no engine runs."""
        with self._lock:
            if self._problem is not None:
                raise NotReady(f"LLM not ready: {self._problem}")
            request_id = next(self._ids)
            route: queue.Queue[dict[str, Any]] = queue.Queue()
            self._routes[request_id] = route
            engine = self._engine
        with contextlib.suppress(OSError, ValueError):  # dying: its watcher says why
            engine.send({**message, "id": request_id})
        return request_id, route

    def _close_route(self, request_id: int, cancel: bool) -> None:
        with self._lock:
            self._routes.pop(request_id, None)
            engine = self._engine
        if cancel:
            with contextlib.suppress(OSError, ValueError):
                engine.send({"op": "cancel", "id": request_id})

    def count_tokens(self, text: str) -> int:
        request_id, route = self._open({"op": "count", "text": text})
        try:
            message = route.get(timeout=60)
        except queue.Empty:
            raise LLMError("the LLM engine did not count tokens in 60 s") from None
        finally:
            self._close_route(request_id, cancel=False)
        if "error" in message:
            raise LLMError(message["error"])
        return int(message["tokens"])

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        request = {
            "prompt": prompt.text,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stop": STOP,
        }
        request_id, route = self._open({"op": "generate", "request": request})
        ended = False
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    return
                try:
                    message = route.get(timeout=0.05)
                except queue.Empty:
                    continue
                if "text" in message:
                    yield message["text"]
                elif "end" in message:
                    ended = True
                    return
                else:
                    ended = True
                    raise LLMError(message.get("error", "the LLM engine failed"))
        finally:
            self._close_route(request_id, cancel=not ended)

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineLLM:
        """The llama.cpp model of the settings in an engine process decoding up to
        RAG_MAX_GENERATIONS answers together (once the probe has shown that this build of
        llama.cpp runs it on this CPU)."""
        from rag.llm.llamacpp import runnable_model

        path = runnable_model(settings)
        config = {
            "model": str(path),
            "slots": settings.max_generations,
            "context_tokens": settings.llm_context_tokens,
            "threads": settings.llm_threads,
            "head": HEAD,
        }
        return cls(
            engine_command(config),
            name=f"llamacpp:{path.name}",
            context_tokens=settings.llm_context_tokens,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
        )


def engine_command(config: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "rag.llm.engine", json.dumps(config)]
