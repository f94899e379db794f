"""The HTTP service: FastAPI routes that frame the answer's events (SSE, NDJSON, WebSocket,
OpenAI chunks, one JSON), a pool that runs generations in worker threads, and the guards."""
