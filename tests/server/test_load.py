"""Load: a soak, a burst and random disconnects against `rag serve` in its own process, driven
by the functions that write the reliability section of benchmarks/RESULTS.md."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from bench import reliability
from bench.live import ServerProcess
from rag.settings import Settings
from tests.server.conftest import process_env

pytestmark = pytest.mark.slow


def test_a_soak_of_2000_requests_leaves_no_error_no_open_stream_and_no_leak(
    indexed: Settings,
) -> None:
    with ServerProcess(process_env(indexed, RAG_MOCK_TOKEN_DELAY_MS="0")) as server:
        soak = asyncio.run(reliability.soak(server.url, server.process.pid))
    assert soak["requests"] == 2000
    assert soak["errors"] == 0, soak["endings"]
    assert soak["open_after"] == 0
    assert soak["rss_growth_mb"] < 50, soak


def test_a_burst_of_200_clients_completes_or_is_refused_at_once(indexed: Settings) -> None:
    limits = {"RAG_MAX_GENERATIONS": "4", "RAG_MAX_QUEUE": "32"}
    env = process_env(indexed, RAG_MOCK_TOKEN_DELAY_MS="20", **limits)
    with ServerProcess(env) as server:
        burst = asyncio.run(reliability.burst(server.url))
    assert burst["completed"] >= 36  # every slot and queue place served at least once
    assert burst["completed"] + burst["refused"] == 200, burst
    assert burst["refused_with_retry_after"] == burst["refused_with_message"] == burst["refused"]
    assert (burst["hung"], burst["open_after"]) == (0, 0)
    assert burst["healthy_after"]


@pytest.mark.skipif(shutil.which("hey") is None, reason="needs hey (apt-get install hey)")
def test_hey_reproduces_the_burst_and_refusals_are_fast(indexed: Settings) -> None:
    limits = {"RAG_MAX_GENERATIONS": "4", "RAG_MAX_QUEUE": "32"}
    env = process_env(indexed, RAG_MOCK_TOKEN_DELAY_MS="20", **limits)
    with ServerProcess(env) as server:
        result = reliability.hey(server.url, runs=2)
    for statuses in result["runs"]:
        assert set(statuses) == {"200", "429"}, statuses
        # 4 slots + 32 queue places when all arrive at once; more where a slot frees before
        # the burst has all arrived (a slower or busier machine)
        assert statuses["200"]["n"] >= 36
        assert statuses["200"]["n"] + statuses["429"]["n"] == 200
    # Refusing must cost a small fraction of answering, measured in the same burst (the
    # machine is shared: absolute times double when it is busy, the ratio does not). The
    # committed run: refusals 53 ms p50 / 76 ms max against answers' 1,430 ms p50. 200
    # requests arrive within a few ms on 2 cores shared with hey, and the last refusal waits
    # for those before it; the first burst after start-up also starts threads.
    # An answer's time is mostly the mock's pauses (sleeps), a refusal's is CPU: on a starved
    # machine the ratio shrinks (1/9 seen under a busy loop and a benchmark). A refusal that
    # waited for a slot would take at least an answer's time; 1/5 still tells them apart.
    cold, warm = result["runs"]
    answer_ms = warm["200"]["p50_ms"]
    assert warm["429"]["p50_ms"] < answer_ms / 5, result
    assert warm["429"]["max_ms"] < answer_ms / 4, result
    assert cold["429"]["max_ms"] < cold["200"]["p50_ms"] / 3, result


def test_clients_leaving_at_random_points_leave_no_thread_task_or_slot_behind(
    indexed: Settings,
) -> None:
    env = process_env(indexed, RAG_MOCK_TOKEN_DELAY_MS="10", RAG_MAX_QUEUE="32")
    with ServerProcess(env) as server:
        result = asyncio.run(reliability.disconnects(server.url))
    assert result["requests"] == 200 and len(result["plans"]) == 4
    assert result["open_after"] == 0
    assert result["threads_after"] <= result["threads_before"], result
    assert result["tasks_after"] <= result["tasks_before"], result
    assert result["next_request"] == "done"
