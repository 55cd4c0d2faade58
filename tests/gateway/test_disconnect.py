"""A client that goes away cancels the upstream call and gives its budget back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from gw_harness import LIMITED, serve_gateway

from orchestrator.store.records import EventKind

HERE = Path(__file__).parent


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_disconnect_cancels_the_upstream_call(store_url: str, stream: bool) -> None:
    budget = {"budgets": [{"period": "total", "limit_usd": 1.0}]}
    async with serve_gateway(HERE / "slow.yaml", store_url, limited=budget) as served:
        async with httpx.AsyncClient(base_url=served.base_url) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(
                    "/chat/completions",
                    json={
                        "model": "fast",
                        "stream": stream,
                        "max_tokens": 100,
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                    headers={"authorization": f"Bearer {LIMITED}", "x-session-id": "gone"},
                    timeout=httpx.Timeout(30, read=0.5),
                )
        async with asyncio.timeout(20):
            while True:
                events = await served.store.list_events("gw:acme:gone")
                if events:
                    break
                await asyncio.sleep(0.05)
        usage = await served.store.budgets.usage("gateway-key/limited", "total")
    (event,) = events
    assert event.kind is EventKind.MODEL_CALL
    assert event.payload["outcome"] == "cancelled"
    assert usage.committed_usd == 0.0
    assert len(served.replay.requests) <= 1
