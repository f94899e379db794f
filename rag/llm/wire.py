"""What the API process and its LLM engine say to each other: one JSON object per line.

parent -> engine  {"op": "generate", "id": 7, "request": {"prompt": ..., "max_tokens": 48,
                   "temperature": 0.0, "stop": [...], "seed": 0}}
                  {"op": "cancel", "id": 7}
                  {"op": "count", "id": 8, "text": ...}
engine -> parent  {"ready": {"slots": 4, ...}}          once, when the model is loaded
                  {"id": 7, "text": " Paris"}            a piece of answer 7
                  {"id": 7, "end": "stop", "tokens": 3, "prompt_tokens": 412}
                  {"id": 7, "error": "..."}              answer 7 failed (the engine lives)
                  {"id": 8, "tokens": 120}               a token count
"""

from __future__ import annotations

import json
import threading
from typing import IO, Any

EXIT_LOAD_FAILED = 3  # the engine's exit status when the model could not be loaded


class Sender:
    """Writes messages whole, one per line, from any thread."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, ensure_ascii=False) + "\n"
        with self._lock:
            self.stream.write(line)
            self.stream.flush()
