"""A small streaming RAG service.

The pipeline, one module each: documents -> chunks -> embeddings -> index -> corpus (the
store seam) -> ingestion -> stores/ -> retrieval -> prompt -> llm -> answer; `cli`, `client` and
`server/` are the edges that talk to people.
"""

__version__ = "0.1.0"
