"""The LLM engine: a process of its own that holds the llama.cpp model and decodes the answers
its parent (`rag serve`, through `rag.llm.supervisor`) asks for, several together.

    python -m rag.llm.engine '{"model": PATH, "slots": 4, "context_tokens": 2048, ...}'

It speaks JSON lines (rag/llm/wire.py) on its stdin and stdout; llama.cpp's own output is sent
to stderr, so nothing native can break a message. A native crash here (an illegal instruction,
a segfault, the OOM killer) ends this process only: its parent reports it and starts another.
Token counts are answered by the reading thread at once, not between two decoding steps.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from rag.errors import RagError
from rag.llm.scheduler import Decoding, Request, Scheduler
from rag.llm.wire import EXIT_LOAD_FAILED, Sender


def serve(
    decoder: Decoding,
    slots: int,
    inbox: IO[str],
    send: Callable[[dict[str, Any]], None],
    info: dict[str, Any] | None = None,
) -> None:
    """Say it is ready, then read requests until the parent closes stdin, decoding while
    there is work."""
    send({"ready": {"slots": slots, **(info or {})}})
    scheduler = Scheduler(decoder, slots, send)
    messages: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read() -> None:
        for line in inbox:
            message = json.loads(line)
            if message.get("op") == "count":
                tokens = len(decoder.tokenize(message["text"]))
                send({"id": message["id"], "tokens": tokens})
            else:
                messages.put(message)
        messages.put(None)  # the parent is gone

    threading.Thread(target=read, name="engine-reader", daemon=True).start()
    while True:
        pending = [messages.get()] if not scheduler.busy else []
        while not messages.empty():
            pending.append(messages.get_nowait())
        for message in pending:
            if message is None:
                return
            if message["op"] == "generate":
                fields = message["request"]
                stop = tuple(fields.pop("stop", ()))
                scheduler.submit(Request(id=message["id"], stop=stop, **fields))
            elif message["op"] == "cancel":
                scheduler.cancel(message["id"])
        scheduler.step()


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    outbox = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the messages' own descriptor
    os.dup2(2, 1)  # what native code prints goes to the log, never into a message
    from rag.llm.decoder import Decoder  # loads llama.cpp: only in this process

    try:
        decoder = Decoder(
            Path(config["model"]),
            slots=config["slots"],
            context_tokens=config["context_tokens"],
            threads=config["threads"] or os.cpu_count() or 1,
            head=config.get("head", ""),
        )
    except RagError as err:
        print(err, file=sys.stderr)
        return EXIT_LOAD_FAILED
    info = {"head_tokens": len(decoder.head)}
    serve(decoder, config["slots"], sys.stdin, Sender(outbox), info)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
