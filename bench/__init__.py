"""The benchmarks: `python -m bench [--quick] [--only SECTION]` (see `bench/__main__.py`).

One module per section of `benchmarks/RESULTS.md` (ingestion, retrieval, scale, streaming,
generation, builds, reliability, postgres), each with `run()` (measure; a JSON-able dict) and
`render()` (its Markdown); `report` holds what they share (percentiles, tables, the page) and
`live` a `rag serve` in its own process, which the test suite uses too.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository: `data/`, `benchmarks/` and the working folder of the servers started."""
