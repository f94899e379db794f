"""Ask a question from the terminal: `python scripts/ask.py "question" [--url URL] [--json]`.

The same as `python -m rag ask`: with `--url` it streams the answer from a running `rag serve`,
without it the pipeline runs in this process on the local index.
"""

from __future__ import annotations

import sys

from rag.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["ask", *sys.argv[1:]]))
