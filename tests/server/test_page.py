"""The web page in a real browser (Debian's chromium driven by Playwright) against a live
server: the answer grows token by token, sources render, Stop cancels on the server, errors
are shown."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from rag.llm.mock import MockLLM
from tests.fakes import EndlessLLM
from tests.server.conftest import Serve
from tests.server.live import CuttingRelay

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs chromium (apt-get install chromium; .ci/run installs it)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    yield context.new_page()
    context.close()


def ask(page: Page, url: str, question: str) -> None:
    page.goto(url + "/")
    page.fill("#question", question)
    page.press("#question", "Enter")


def test_the_answer_grows_token_by_token_with_its_sources(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve(llm=MockLLM(delay_s=0.06))
    ask(page, server.url, "Who won Super Bowl 50?")
    states: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = page.inner_text("#answer")
        if not states or text != states[-1]:
            states.append(text)
        if page.inner_text("#timings").startswith("retrieval"):
            break
        time.sleep(0.02)
    final = page.inner_text("#answer")
    assert final.startswith("According to [1], # Super Bowl 50")
    partial = [s for s in states if s and s != final]
    assert len(partial) >= 5  # several distinct partial states, not one jump
    assert all(b.startswith(a) for a, b in pairwise(partial))
    assert page.locator("#sources li").count() >= 1
    assert "docs/football.md" in page.inner_text("#sources")
    assert "first token" in page.inner_text("#timings")
    assert page.get_attribute("a.cite", "href") == "#source-1"
    page.screenshot(path=str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_stop_cancels_the_generation_on_the_server(serve: Serve, page: Page) -> None:
    llm = EndlessLLM(delay_s=0.03)
    server = serve(llm=llm)
    ask(page, server.url, "Who won Super Bowl 50?")
    page.wait_for_function("document.querySelector('#answer').innerText.length > 10")
    page.click("#stop")
    page.wait_for_function("document.querySelector('#timings').innerText.includes('stopped')")
    assert llm.ended.wait(10)  # the server saw the disconnect and ended the generation
    assert llm.produced < llm.limit
    assert page.is_enabled("#go") and not page.is_enabled("#stop")


def test_a_server_with_an_api_key_makes_the_page_ask_for_it(serve: Serve, page: Page) -> None:
    server = serve(api_key="s3cret")
    ask(page, server.url, "Who won Super Bowl 50?")
    page.wait_for_selector("#key-row.shown")  # refused with 401: the key field appears
    assert "401" in page.inner_text("#error") or "key" in page.inner_text("#error").lower()
    assert page.input_value("#question") == "Who won Super Bowl 50?"  # kept, to send again
    page.fill("#api-key", "s3cret")
    page.press("#question", "Enter")
    wait_for_answer(page)
    assert page.inner_text("#answer").startswith("According to [1]")
    assert "docs/football.md" in page.inner_text("#sources")


def test_server_errors_are_shown_as_messages(serve: Serve, page: Page, tmp_path: Path) -> None:
    missing = serve(index_dir=tmp_path / "no-index")
    ask(page, missing.url, "Who won?")
    page.wait_for_selector("#error.shown")
    assert "rag ingest" in page.inner_text("#error")
    failing = serve(llm=MockLLM(fail_after=2))
    ask(page, failing.url, "Who won?")
    page.wait_for_selector("#error.shown")
    assert "failed after 2 tokens" in page.inner_text("#error")
    assert page.inner_text("#answer").startswith("According to")


def test_the_page_fits_a_phone_screen(serve: Serve, browser: Browser) -> None:
    server = serve()
    context = browser.new_context(viewport={"width": 375, "height": 700}, is_mobile=True)
    phone = context.new_page()
    ask(phone, server.url, "Who won Super Bowl 50?")
    phone.wait_for_function("document.querySelector('#timings').innerText.length > 0")
    width = phone.evaluate("document.documentElement.scrollWidth")
    context.close()
    assert width <= 375  # no sideways scrolling


def wait_for_answer(page: Page) -> None:
    page.wait_for_function("document.querySelector('#timings').innerText.startsWith('retrieval')")


def test_a_conversation_keeps_its_thread_across_a_reload_and_is_deleted(
    serve: Serve, page: Page
) -> None:
    server = serve(llm=MockLLM(delay_s=0))
    ask(page, server.url, "Where was Super Bowl 50 played?")
    wait_for_answer(page)
    page.fill("#question", "Who was its quarterback?")  # names nothing: the thread does
    page.press("#question", "Enter")
    page.wait_for_function("document.querySelectorAll('#thread .turn').length === 1")
    wait_for_answer(page)
    assert "docs/football.md" in page.inner_text("#sources")
    assert page.inner_text("#thread .turn .q") == "Where was Super Bowl 50 played?"
    cid = page.evaluate("new URLSearchParams(location.search).get('c')")
    assert cid and len(cid) == 32
    page.wait_for_selector("#conversation-list li.current")

    page.reload()  # the thread comes back from the server
    page.wait_for_function("document.querySelectorAll('#thread .turn').length === 2")
    questions = page.locator("#thread .turn .q").all_inner_texts()
    assert questions == ["Where was Super Bowl 50 played?", "Who was its quarterback?"]

    page.goto(server.url + "/")  # no ?c=: the last conversation, from local storage
    page.wait_for_function("document.querySelectorAll('#thread .turn').length === 2")

    page.click("#conversation-list li.current button.delete")
    page.wait_for_function("document.querySelectorAll('#conversation-list li').length === 0")
    assert page.locator("#thread .turn").count() == 0
    response = page.request.get(f"{server.url}/v1/conversations/{cid}")
    assert response.status == 404


def test_new_conversation_starts_an_empty_thread(serve: Serve, page: Page) -> None:
    server = serve(llm=MockLLM(delay_s=0))
    ask(page, server.url, "Where was Super Bowl 50 played?")
    wait_for_answer(page)
    first = page.evaluate("new URLSearchParams(location.search).get('c')")
    page.click("#new")
    assert page.evaluate("new URLSearchParams(location.search).get('c')") is None
    page.fill("#question", "What is oxygen?")
    page.press("#question", "Enter")
    wait_for_answer(page)
    second = page.evaluate("new URLSearchParams(location.search).get('c')")
    assert second and second != first
    assert page.locator("#thread .turn").count() == 0
    page.wait_for_function("document.querySelectorAll('#conversation-list li').length === 2")


def test_the_page_resumes_an_answer_after_the_network_drops(serve: Serve, page: Page) -> None:
    import httpx

    from tests.metrics import value

    tokens = 120
    server = serve(llm=EndlessLLM(delay_s=0.02, limit=tokens))
    relay = CuttingRelay(server.url)  # the browser reaches the server through it
    ask(page, relay.url, "Who won Super Bowl 50?")
    page.wait_for_function("document.querySelector('#answer').innerText.length > 20")
    page.context.set_offline(True)  # new requests fail at once...
    relay.drop()  # ...and the open connection goes, as on a train entering a tunnel
    page.wait_for_function("document.querySelector('#timings').innerText.includes('reconnecting')")
    time.sleep(0.5)  # away for ~25 tokens' time: the server goes on meanwhile
    page.context.set_offline(False)
    page.wait_for_function(
        "document.querySelector('#timings').innerText.startsWith('retrieval')", timeout=30_000
    )
    assert page.inner_text("#answer").strip() == " ".join(f"t{n}" for n in range(tokens))
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).content
    route = "/v1/answers/{answer_id}/events"
    assert value(metrics, "rag_http_requests_total", route=route, method="GET", status="200") >= 1
    assert value(metrics, "rag_answers_total", outcome="done") == 1
    relay.close()


def test_the_collection_picker_asks_within_one_collection(serve: Serve, page: Page) -> None:
    import httpx

    server = serve()
    pump = b"# Pump manual\n\nThe Super Bowl pump must be primed before starting."
    response = httpx.post(
        f"{server.url}/v1/documents",
        files=[("files", ("pump.md", pump))],
        data={"collection": "manuals"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    page.goto(server.url + "/")
    page.wait_for_selector("#collection option[value=manuals]", state="attached")
    page.select_option("#collection", "manuals")
    page.fill("#question", "Who won Super Bowl 50?")
    page.press("#question", "Enter")
    page.wait_for_function("document.querySelector('#timings').innerText.startsWith('retrieval')")
    shown = page.inner_text("#sources")
    assert "manuals · uploads/pump.md" in shown and "docs/football.md" not in shown
