"""Reliability under load, against a live `rag serve` in its own process (mock LLM):

- soak: 2,000 `/v1/ask` requests, 8 at a time: how each stream ended, streams still open
  afterwards, resident memory after the first 100 requests and after the last;
- burst: 200 clients at once against 4 generation slots and a queue of 32: each request either
  completes or is refused at once (429/503 with Retry-After); none hangs; healthy afterwards;
- disconnects: 200 requests whose clients leave at random points (before the answer starts,
  after the sources, after some tokens, while queued): slots, threads and asyncio tasks return
  to their level before the run;
- hey: the same burst driven by `hey` (a Debian package), so the figure can be reproduced
  without Python: `hey -n 200 -c 200 -m POST -T application/json -d '{"question": "..."}'
  http://127.0.0.1:8000/v1/ask`.

The test suite runs these functions against a small server and checks the same figures.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench import ROOT
from bench.report import percentile, table
from bench.streaming import DELAY_MS, QUESTIONS, build_index, server

MB = 1 << 20
JSON = "application/json"
# name: (body, content type, expected status, a phrase of the expected message)
HOSTILE: dict[str, tuple[bytes, str, int, str]] = {
    "a question of 1 MB": (b'{"question": "' + b"a" * MB + b'"}', JSON, 413, "larger than"),
    "a question of 900 kB (a body under the limit)": (
        json.dumps({"question": "a" * 900_000}).encode(),
        JSON,
        422,
        "at most",
    ),
    "top_k of 10^9": (b'{"question": "hi", "top_k": 1000000000}', JSON, 422, "top_k"),
    "top_k of 1e309": (b'{"question": "hi", "top_k": 1e309}', JSON, 422, "finite"),
    "JSON nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, JSON, 400, "not valid JSON"),
    "a question nested 50,000 deep": (
        b'{"question": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        JSON,
        400,
        "not valid JSON",
    ),
    "invalid UTF-8": (b'{"question": "caf\xff\xfe"}', JSON, 400, "not valid JSON"),
    "a lone surrogate": (b'{"question": "\\ud800"}', JSON, 422, "question"),
    "a NUL in the question": (b'{"question": "a\\u0000b"}', JSON, 422, "NUL"),
    "text/plain": (b'{"question": "hi"}', "text/plain", 415, "application/json"),
    "a form (curl -d without -H)": (
        b'{"question": "hi"}',
        "application/x-www-form-urlencoded",
        415,
        "application/json",
    ),
    "XML": (b"<question>hi</question>", "application/xml", 415, "application/json"),
    "an unknown field": (b'{"question": "hi", "evil": true}', JSON, 422, "evil"),
}
SOAK_REQUESTS, SOAK_CONCURRENCY = 2000, 8
BURST_CLIENTS, BURST_SLOTS, BURST_QUEUE = 200, 4, 32
DISCONNECT_REQUESTS = 200
REQUEST_TIMEOUT_S = 60.0
# Clients drop idle connections before the server does (uvicorn closes them after 5 s): else a
# request sent on a connection the server is closing that instant fails (a race every HTTP
# client has on reused connections, which a loaded machine makes likely).
KEEPALIVE_S = 2.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def ask_once(client: httpx.AsyncClient, question: str) -> str:
    """One /v1/ask over SSE read to its end: `done`, `error`, or `http <status>`."""
    last = "none"
    async with client.stream("POST", "/v1/ask", json={"question": question}) as response:
        if response.status_code != 200:
            await response.aread()
            return f"http {response.status_code}"
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                last = line[6:].strip()
    return last


async def settled(client: httpx.AsyncClient, wait_s: float = 10.0) -> dict[str, Any]:
    """`/readyz` once no generation runs or waits (or after `wait_s`)."""
    deadline = time.monotonic() + wait_s
    while True:
        ready: dict[str, Any] = (await client.get("/readyz")).json()
        if (ready["running"], ready["waiting"]) == (0, 0) or time.monotonic() > deadline:
            return ready
        await asyncio.sleep(0.05)


async def soak(
    url: str, pid: int, requests: int = SOAK_REQUESTS, concurrency: int = SOAK_CONCURRENCY
) -> dict[str, Any]:
    endings: Counter[str] = Counter()
    memory: dict[str, float] = {}
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, keepalive_expiry=KEEPALIVE_S)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def one(number: int) -> None:
            async with gate:
                try:
                    endings[await ask_once(client, QUESTIONS[number % len(QUESTIONS)])] += 1
                except httpx.HTTPError as err:
                    endings[type(err).__name__] += 1
            if sum(endings.values()) == 100:
                memory["after_100"] = rss_mb(pid)

        await asyncio.gather(*(one(n) for n in range(requests)))
        seconds = time.perf_counter() - started
        memory["after_all"] = rss_mb(pid)
        ready = await settled(client)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "endings": dict(endings),
        "errors": requests - endings["done"],
        "seconds": round(seconds, 1),
        "requests_per_s": round(requests / seconds, 1),
        "rss_mb_after_100": round(memory["after_100"], 1),
        "rss_mb_after_all": round(memory["after_all"], 1),
        "rss_growth_mb": round(memory["after_all"] - memory["after_100"], 1),
        "open_after": ready["running"] + ready["waiting"],
    }


async def burst(url: str, clients: int = BURST_CLIENTS) -> dict[str, Any]:
    """`clients` requests released together, each on a connection of its own: how each
    ended, and whether every refusal carries Retry-After and a message. (One Python client
    cannot time 200 simultaneous requests fairly, its own event loop is the bottleneck: `hey`
    gives the response times.) The connections are opened when the requests go, not
    beforehand: on a loaded machine a connection opened early can sit idle past the server's
    keep-alive timeout (5 s) and be closed just as its request is sent, a race every HTTP
    client meets on a reused connection and not what this measures."""
    limits = httpx.Limits(max_connections=clients, keepalive_expiry=KEEPALIVE_S)
    outcomes: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        go = asyncio.Event()

        async def one(number: int) -> None:
            await go.wait()
            outcome: dict[str, Any] = {}
            try:
                async with client.stream(
                    "POST", "/v1/ask", json={"question": QUESTIONS[number % len(QUESTIONS)]}
                ) as response:
                    outcome["status"] = response.status_code
                    outcome["retry_after"] = response.headers.get("retry-after")
                    body = (await response.aread()).decode()
                outcome["completed"] = response.status_code == 200 and "event: done" in body
                if response.status_code != 200:
                    outcome["message"] = json.loads(body)["error"]["message"]
            except httpx.TimeoutException:
                outcome["hung"] = True
            outcomes.append(outcome)

        tasks = [asyncio.create_task(one(n)) for n in range(clients)]
        await asyncio.sleep(0.1)
        go.set()
        await asyncio.gather(*tasks)
        health = await client.get("/healthz")
        ready = await settled(client)
    refused = [o for o in outcomes if o.get("status") in (429, 503)]
    hung = sum(1 for o in outcomes if o.get("hung"))
    completed = sum(1 for o in outcomes if o.get("completed"))
    return {
        "clients": clients,
        "completed": completed,
        "refused": len(refused),
        "refused_with_retry_after": sum(1 for o in refused if o["retry_after"]),
        "refused_with_message": sum(1 for o in refused if o.get("message")),
        "hung": hung,
        "other": clients - completed - len(refused) - hung,
        "healthy_after": health.status_code == 200 and ready["status"] == "ready",
        "open_after": ready["running"] + ready["waiting"],
    }


async def disconnects(
    url: str, requests: int = DISCONNECT_REQUESTS, concurrency: int = 8, seed: int = 7
) -> dict[str, Any]:
    """Clients that leave at random points; the server's counts before and after."""
    chance = random.Random(seed)
    plans = [(chance.choice(PLANS), chance.random()) for _ in range(requests)]
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 2, keepalive_expiry=KEEPALIVE_S)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        # the idle level: after the same concurrency once, so lazily started pools are counted
        await asyncio.gather(*(ask_once(client, QUESTIONS[0]) for _ in range(2 * concurrency)))
        before = await settled(client)

        async def one(number: int) -> None:
            plan, fraction = plans[number]
            async with gate:
                await leave(client, QUESTIONS[number % len(QUESTIONS)], plan, fraction)

        await asyncio.gather(*(one(n) for n in range(requests)))
        after = await settled(client)
        still = await ask_once(client, QUESTIONS[0])
    return {
        "requests": requests,
        "plans": dict(Counter(plan for plan, _ in plans)),
        "threads_before": before["threads"],
        "threads_after": after["threads"],
        "tasks_before": before["tasks"],
        "tasks_after": after["tasks"],
        "open_after": after["running"] + after["waiting"],
        "next_request": still,
    }


PLANS = ("at_once", "after_sources", "mid_answer", "complete")


async def leave(client: httpx.AsyncClient, question: str, plan: str, fraction: float) -> None:
    """Ask, then go away as `plan` says (`fraction` picks the moment within it)."""
    if plan == "at_once":  # before (or while) the server answers: the request is cancelled
        task = asyncio.create_task(ask_once(client, question))
        await asyncio.sleep(0.03 * fraction)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return
    tokens_to_read = 1 + int(10 * fraction)
    async with client.stream("POST", "/v1/ask", json={"question": question}) as response:
        tokens = 0
        async for line in response.aiter_lines():
            if plan == "after_sources" and line.startswith("event: sources"):
                return  # leaving the block closes the connection mid-stream
            if line.startswith("event: token"):
                tokens += 1
                if plan == "mid_answer" and tokens >= tokens_to_read:
                    return


def hey(url: str, clients: int = BURST_CLIENTS, runs: int = 2) -> dict[str, Any]:
    """The burst through `hey`, `runs` times (the first after start-up pays for threads and
    code paths used for the first time): status counts and response times per status (ms)."""
    binary = shutil.which("hey")
    if binary is None:
        return {"error": "hey is not installed (Debian: apt-get install hey)"}
    body = json.dumps({"question": QUESTIONS[0]})
    command = [binary, "-n", str(clients), "-c", str(clients), "-m", "POST"]
    command += ["-T", "application/json", "-d", body, "-t", "60", "-o", "csv", f"{url}/v1/ask"]
    results = []
    for _ in range(runs):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
        by_status: dict[str, list[float]] = {}
        for row in csv.DictReader(io.StringIO(done.stdout)):
            by_status.setdefault(row["status-code"], []).append(1000 * float(row["response-time"]))
        results.append(
            {
                status: {
                    "n": len(times),
                    "p50_ms": round(percentile(times, 0.5), 1),
                    "max_ms": round(max(times), 1),
                }
                for status, times in sorted(by_status.items())
            }
        )
        time.sleep(1)  # the admitted answers finish; the service is idle again
    return {
        "command": shlex.join([*command[:-1], "URL/v1/ask"]).replace(binary, "hey"),
        "requests": clients,
        "runs": results,
    }


def hostile(url: str, pid: int, rounds: int = 10) -> dict[str, Any]:
    """Each hostile body once (status, message, time), then `rounds` more times: memory after."""
    rows = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for name, (body, kind, status, needle) in HOSTILE.items():
            started = time.perf_counter()
            response = client.post("/v1/ask", content=body, headers={"content-type": kind})
            elapsed = 1000 * (time.perf_counter() - started)
            message = response.json().get("error", {}).get("message", "")
            rows.append(
                {
                    "name": name,
                    "status": response.status_code,
                    "expected": status,
                    "as_expected": response.status_code == status and needle in message,
                    "ms": round(elapsed, 1),
                    "message": message[:120],
                }
            )
        before = rss_mb(pid)
        for _ in range(rounds):
            for body, kind, _, _ in HOSTILE.values():
                client.post("/v1/ask", content=body, headers={"content-type": kind})
        after = rss_mb(pid)
        ready = client.get("/readyz").status_code
    return {
        "cases": rows,
        "rounds": rounds,
        "rss_growth_mb": round(after - before, 1),
        "ready_after": ready == 200,
    }


def fault(url: str) -> dict[str, Any]:
    """One question against a server whose backend misbehaves: how the stream ended, when."""
    with httpx.Client(base_url=url, timeout=60) as client:
        started = time.perf_counter()
        names: list[str] = []
        last: Any = None
        with client.stream("POST", "/v1/ask", json={"question": QUESTIONS[0]}) as response:
            for line in response.iter_lines():
                if line.startswith("event:"):
                    names.append(line[6:].strip())
                elif line.startswith("data:"):
                    last = json.loads(line[5:])
        elapsed = 1000 * (time.perf_counter() - started)
        ready = client.get("/readyz").json()
    return {
        "events": Counter(names),
        "ended_with": names[-1] if names else None,
        "message": last.get("message") if isinstance(last, dict) else None,
        "ms": round(elapsed, 1),
        "slots_free_after": ready["running"] == 0,
    }


def faults(index: Path) -> dict[str, Any]:
    """A backend that hangs (the mock at one token a minute, a 1 s generation timeout), one that
    fails after 3 tokens, an OpenAI-compatible upstream that is down, and one that accepts the
    connection and never answers (a 1 s read timeout)."""
    result: dict[str, Any] = {}
    hang = {"RAG_MOCK_TOKEN_DELAY_MS": "60000", "RAG_GENERATION_TIMEOUT_S": "1"}
    with server(index, "mock", **hang) as live:
        result["backend hangs (generation timeout 1 s)"] = fault(live.url)
    with server(index, "mock", RAG_MOCK_FAIL_AFTER="3") as live:
        result["backend raises after 3 tokens"] = fault(live.url)
    with socket.socket() as silent:  # the kernel accepts connections; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        upstream = {"RAG_OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}
        with server(index, "openai", RAG_OPENAI_TIMEOUT_S="1", **upstream) as live:
            result["OpenAI upstream never answers (timeout 1 s)"] = fault(live.url)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        down = {"RAG_OPENAI_BASE_URL": f"http://127.0.0.1:{closed.getsockname()[1]}/v1"}
    with server(index, "openai", RAG_OPENAI_TIMEOUT_S="1", **down) as live:
        result["OpenAI upstream is down"] = fault(live.url)
    return result


def run(quick: bool = False) -> dict[str, Any]:
    scale = 10 if quick else 1  # --quick: a tenth of the requests
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        build_index(ROOT / "data", index)
        result: dict[str, Any] = {
            "mock_delay_ms": DELAY_MS,
            "burst_slots": BURST_SLOTS,
            "burst_queue": BURST_QUEUE,
        }
        with server(index, "mock", RAG_MOCK_TOKEN_DELAY_MS="0") as live:
            result["soak"] = asyncio.run(soak(live.url, live.pid, SOAK_REQUESTS // scale))
            result["soak"]["mock_delay_ms"] = 0
            result["disconnects"] = asyncio.run(disconnects(live.url, DISCONNECT_REQUESTS // scale))
            result["hostile"] = hostile(live.url, live.pid, 10 // scale)
        limits = {"RAG_MAX_GENERATIONS": str(BURST_SLOTS), "RAG_MAX_QUEUE": str(BURST_QUEUE)}
        with server(index, "mock", **limits) as live:
            result["hey"] = hey(live.url)
            result["burst"] = asyncio.run(burst(live.url))
        result["faults"] = faults(index)
    return result


def render(r: dict[str, Any]) -> str:
    s, b, d = r["soak"], r["burst"], r["disconnects"]
    lines = [
        "## Reliability under load",
        "",
        f"A live `rag serve` in its own process (MiniLM retrieval over `data/`, mock LLM at "
        f"{r['mock_delay_ms']} ms per token; at 0 ms in the soak, to push requests through as "
        "fast as they go). Produced by `python -m bench --only "
        "reliability`; the test suite checks the same figures on a small index "
        "(`tests/server/test_load.py`).",
        "",
    ]
    runs = [
        [
            f"soak: {s['requests']:,} requests, {s['concurrency']} at a time",
            f"{s['endings'].get('done', 0):,} ended with `done`, {s['errors']} errors, "
            f"{s['open_after']} streams open afterwards; {s['requests_per_s']} requests/s; "
            f"resident memory {s['rss_mb_after_100']} MB after 100 requests, "
            f"{s['rss_mb_after_all']} MB after all ({s['rss_growth_mb']:+} MB)",
        ],
        [
            f"burst: {b['clients']} clients at once, {r['burst_slots']} slots + queue "
            f"{r['burst_queue']}",
            f"{b['completed']} completed, {b['refused']} refused "
            f"({b['refused_with_retry_after']} with Retry-After, {b['refused_with_message']} "
            f"with a message), {b['hung']} hung, {b['other']} other; healthy afterwards: "
            f"{b['healthy_after']}",
        ],
        [
            f"disconnects: {d['requests']} requests, clients leaving at random points "
            f"({', '.join(f'{k} {v}' for k, v in sorted(d['plans'].items()))})",
            f"threads {d['threads_before']} before, {d['threads_after']} after; asyncio tasks "
            f"{d['tasks_before']} before, {d['tasks_after']} after; {d['open_after']} "
            f"generations left; the next request ended with `{d['next_request']}`",
        ],
    ]
    h = r.get("hey", {})
    for number, run_statuses in enumerate(h.get("runs", []), start=1):
        statuses = ", ".join(
            f"{code}: {v['n']} ({v['p50_ms']} ms p50, {v['max_ms']} ms max)"
            for code, v in run_statuses.items()
        )
        when = "first after start-up" if number == 1 else f"run {number}"
        runs.append([f"the burst driven by `hey`, {when} (response times)", statuses])
    if h and "command" not in h:
        runs.append(["the burst driven by `hey`", f"not run: {h['error']}"])
    lines += table(["run", "what happened"], "ll", runs)
    if "command" in h:
        lines += ["", f"The `hey` command: `{h['command']}`."]
    if "faults" in r:
        lines += [
            "",
            "Faults, one question each against a server whose backend misbehaves (how the SSE "
            "stream ended, after how long, and whether the generation slot was free afterwards):",
            "",
            *table(
                ["fault", "events", "ended after", "slot free", "message"],
                "llrll",
                (
                    [
                        name,
                        ", ".join(f"{k} {v}" for k, v in f["events"].items()),
                        f"{f['ms']:,.0f} ms",
                        f["slots_free_after"],
                        f["message"],
                    ]
                    for name, f in r["faults"].items()
                ),
            ),
        ]
    lines += [
        "",
        "Checked by the test suite, without a figure here: `kill -9` during an ingest at 10 "
        "random moments (`tests/test_crash.py`: the index always loads and answers, the next "
        "ingest completes); a damaged index, one from another model, a missing version "
        "(`tests/server/test_faults.py`: `/readyz` 503 with one line); an upload while answers "
        "stream (old index or new, never a mix); schemathesis fuzzing, malicious uploads, a "
        "planted pickle, prompt injection (`tests/server/test_fuzz.py`, `test_hostile.py`, "
        "`tests/test_store.py`, `tests/test_injection.py`); the API key and CORS "
        "(`tests/server/test_security.py`).",
    ]
    if "hostile" in r:
        x = r["hostile"]
        lines += [
            "",
            f"Hostile bodies to `/v1/ask` (each once, then all {x['rounds']} more times: "
            f"resident memory {x['rss_growth_mb']:+} MB; ready afterwards: {x['ready_after']}):",
            "",
            *table(
                ["body", "status", "as expected", "time", "message"],
                "lrlrl",
                (
                    [c["name"], c["status"], c["as_expected"], f"{c['ms']} ms", c["message"]]
                    for c in x["cases"]
                ),
            ),
        ]
    return "\n".join(lines) + "\n"
