"""A small streaming RAG service.

The pipeline, one module each: documents -> chunks -> embeddings -> index -> store -> ingestion
-> retrieval; `cli` and (later) the HTTP server are the edges that talk to people.
"""

__version__ = "0.1.0"
