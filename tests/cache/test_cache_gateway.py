"""The response cache on the gateway's path, over loopback HTTP with the `openai` SDK.

Checked: the labelled workload (no false hit on a near-miss), no hit across tenants, none
after a write in a tool loop (a read-only tool's result keeps it), none for a request
that opts out, a stream answered from the cache, hits in the audit trail and metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from orchestrator.loadgen.cache_workload import (
    ACME,
    BETA,
    SYSTEM,
    cache_gateway,
    run_workload,
    script,
)
from orchestrator.observability.metrics import METRICS
from orchestrator.scripted_model import ReplayScript
from orchestrator.store.records import EventKind

TOOLS: Any = [
    {
        "type": "function",
        "function": {"name": name, "description": name, "parameters": {"type": "object"}},
    }
    for name in ("get_order", "refund_order")
]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}"


def with_loops() -> ReplayScript:
    """The workload's script plus two tool loops: a write (refund) and a read (look up)."""
    loops = [
        {
            "name": "refund",
            "match": {"model": "replay-answerer", "contains": "Refund order 7"},
            "turns": [
                {"tool_calls": [{"name": "refund_order", "arguments": {"id": "7"}}]},
                {"content": "Refunded."},
            ],
            "after_last": "repeat_last",
        },
        {
            "name": "lookup",
            "match": {"model": "replay-answerer", "contains": "Look up order 7"},
            "turns": [
                {"tool_calls": [{"name": "get_order", "arguments": {"id": "7"}}]},
                {"content": "Order 7 is paid."},
            ],
            "after_last": "repeat_last",
        },
    ]
    base = script().model_dump(exclude_unset=True)
    return ReplayScript.model_validate({"conversations": [*loops, *base["conversations"]]})


def question(text: str) -> Any:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


async def test_labelled_workload_hits_paraphrases_and_never_a_near_miss(sqlite_url: str) -> None:
    async with cache_gateway(sqlite_url) as served:
        report = await run_workload(served, rounds=2)
    assert report.false_hits == 0
    assert report.near_miss_false_hits == 0
    assert report.exact_hits > 0 and report.semantic_hits > 0
    assert report.eligible_hit_rate > 0.8
    assert report.saved_usd > report.embedding_usd > 0


async def test_without_opting_in_nothing_is_served_from_the_cache(sqlite_url: str) -> None:
    async with cache_gateway(sqlite_url, cached=False) as served:
        report = await run_workload(served, rounds=2)
    assert report.hits == 0 and report.saved_usd == 0


async def test_no_hit_crosses_a_tenant(sqlite_url: str) -> None:
    async with (
        cache_gateway(sqlite_url) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=ACME, max_retries=0) as acme,
        AsyncOpenAI(base_url=served.base_url, api_key=BETA, max_retries=0) as beta,
    ):
        ask = question("Where is order 7?")
        first = await acme.chat.completions.with_raw_response.create(model="support", messages=ask)
        other = await beta.chat.completions.with_raw_response.create(model="support", messages=ask)
        again = await beta.chat.completions.with_raw_response.create(model="support", messages=ask)
        assert first.headers.get("x-orchestrator-cache") is None
        assert other.headers.get("x-orchestrator-cache") is None
        assert again.headers.get("x-orchestrator-cache") == "exact"
        assert len(served.replay.requests) == 2
        hits = [
            e
            for e in await served.store.reports.events([EventKind.MODEL_CALL])
            if e.payload.get("outcome") == "cache_hit"
        ]
    assert [(h.session_id.split(":")[1], h.cost_usd, h.payload["cache"]) for h in hits] == [
        ("beta", 0.0, "exact")
    ]
    assert hits[0].payload["saved_usd"] > 0


async def loop_of(client: AsyncOpenAI, text: str) -> tuple[Any, list[str | None]]:
    """Ask, run the tool the model calls, and send its result twice; the cache headers."""
    messages: Any = question(text)
    first = await client.chat.completions.create(model="support", messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"ok": True})},
    ]
    seen: list[str | None] = []
    for _ in range(2):
        raw = await client.chat.completions.with_raw_response.create(
            model="support", messages=messages, tools=TOOLS
        )
        seen.append(raw.headers.get("x-orchestrator-cache"))
    return raw.parse(), seen


async def test_never_a_hit_inside_a_tool_loop_after_a_write(sqlite_url: str) -> None:
    async with (
        cache_gateway(sqlite_url, model_script=with_loops()) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=ACME, max_retries=0) as client,
    ):
        final, seen = await loop_of(client, "Refund order 7")
        assert final.choices[0].message.content == "Refunded."
        assert seen == [None, None]
        assert len(served.replay.requests) == 3
        before = METRICS.registry.get_sample_value(
            "orchestrator_cache_lookups_total", {"name": "support", "result": "after_write"}
        )
        assert before is not None and before >= 2


async def test_a_read_only_tool_result_keeps_the_loop_cacheable(sqlite_url: str) -> None:
    async with (
        cache_gateway(sqlite_url, model_script=with_loops()) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=ACME, max_retries=0) as client,
    ):
        final, seen = await loop_of(client, "Look up order 7")
        assert final.choices[0].message.content == "Order 7 is paid."
        assert seen == [None, "exact"]
        assert len(served.replay.requests) == 2


async def test_a_request_that_opts_out_is_neither_served_nor_stored(sqlite_url: str) -> None:
    async with (
        cache_gateway(sqlite_url) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=ACME, max_retries=0) as client,
    ):
        ask = question("Do you ship to Canada?")
        off = {"x-orchestrator-cache": "off"}
        for headers in (off, {"cache-control": "no-store"}, {}):
            raw = await client.chat.completions.with_raw_response.create(
                model="support", messages=ask, extra_headers=headers
            )
            assert raw.headers.get("x-orchestrator-cache") is None
        assert len(served.replay.requests) == 3


async def test_a_stream_is_stored_whole_and_served_from_the_cache_as_a_stream(
    sqlite_url: str,
) -> None:
    async with (
        cache_gateway(sqlite_url) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=ACME, max_retries=0) as client,
    ):
        ask = question("Sunday opening hours")
        texts: list[str] = []
        marks: list[str | None] = []
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(
                model="support", messages=ask, stream=True
            )
            marks.append(raw.headers.get("x-orchestrator-cache"))
            stream = raw.parse()
            texts.append(
                "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            )
        # The streamed hit says so in its headers, as a whole one does.
        assert marks == [None, "exact"]
        whole = await client.chat.completions.with_raw_response.create(
            model="support", messages=ask
        )
        assert whole.headers.get("x-orchestrator-cache") == "exact"
        assert len(served.replay.requests) == 1
    assert texts[0] == texts[1] == whole.parse().choices[0].message.content
    assert "[hours-sunday]" in texts[0]
