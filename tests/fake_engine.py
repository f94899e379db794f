"""An LLM engine process without llama.cpp, for the supervisor's tests: the engine's own loop
(`rag.llm.engine.serve`) over a scripted decoder that answers `words` numbered words, one per
`step_delay_s`. It can die at start (`die_at_start`: a signal name) or fail to load (`exit`), and
keeps a transcript of the messages it sent (`transcript`: a file).

    python -m tests.fake_engine '{"words": 50, "step_delay_s": 0.01}'
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

from rag.llm.engine import serve
from rag.llm.wire import Sender
from tests.fakes import ScriptedDecoder


class SlowDecoder(ScriptedDecoder):
    def __init__(self, words: int, step_delay_s: float) -> None:
        super().__init__(lambda _: " ".join(f"w{n}" for n in range(words)), chunk=64)
        self.step_delay_s = step_delay_s

    def step(self, sequences: Any, last: Any) -> None:
        time.sleep(self.step_delay_s)
        super().step(sequences, last)


def main(config: dict[str, Any]) -> int:
    if config.get("die_at_start"):
        os.kill(os.getpid(), signal.Signals[config["die_at_start"]])
    if config.get("exit"):
        print("cannot load the model: a scripted failure", file=sys.stderr)
        return int(config["exit"])
    sender = Sender(sys.stdout)
    transcript = config.get("transcript")

    def send(message: dict[str, Any]) -> None:
        if transcript:
            with open(transcript, "a", encoding="utf-8") as log:
                log.write(json.dumps(message) + "\n")
        sender(message)

    decoder = SlowDecoder(config.get("words", 20), config.get("step_delay_s", 0.0))
    serve(decoder, config.get("slots", 4), sys.stdin, send)
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
