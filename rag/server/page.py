"""`GET /`: the web page, one static file (HTML, CSS and a small script; no build step). It
posts the question to `/v1/ask` and reads the SSE stream with `fetch` (EventSource cannot
POST); its Stop button aborts the fetch, which the server sees as a disconnect."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["page"])


@cache
def page() -> str:
    return files("rag.server").joinpath("static/index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse(page())
