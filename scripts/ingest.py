"""`python scripts/ingest.py PATH... [--index DIR]`: the same as `python -m rag ingest`."""

import sys

from rag.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["ingest", *sys.argv[1:]]))
