"""Budgets, rate limits and bad input, over real HTTP.

LiteLLM #34732: concurrent requests got past a per-session budget. Here every request
reserves its worst case atomically before it is sent, so 20 racing requests cannot commit
more than the limit together.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from gw_harness import LIMITED, TOKEN, serve_gateway

from orchestrator.gateway import GatewaySettings

HERE = Path(__file__).parent
HELLO = {"model": "fast", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def test_twenty_racing_requests_never_overspend_the_budget(store_url: str) -> None:
    # `fast` costs $0.6/Mtok out: 1000 tokens of output reserve about $0.0006 a request.
    limit = 0.0035
    budget = {"budgets": [{"period": "day", "limit_usd": limit}]}
    async with (
        serve_gateway(HERE / "refund.yaml", store_url, limited=budget) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=30) as http,
    ):

        async def one(i: int) -> httpx.Response:
            return await http.post(
                "/chat/completions",
                json=HELLO,
                headers={"authorization": f"Bearer {LIMITED}", "x-session-id": f"race-{i}"},
            )

        answers = await asyncio.gather(*(one(i) for i in range(20)))
        statuses = sorted(a.status_code for a in answers)
        ok = statuses.count(200)
        assert 0 < ok < 20
        assert set(statuses) == {200, 402}
        refused = next(a for a in answers if a.status_code == 402).json()["error"]
        assert refused["type"] == "insufficient_quota"
        assert "budget gateway-key/limited (" in refused["message"]
        assert f"of ${limit:.4f} committed" in refused["message"]
        # Only the admitted requests reached the model, and what they spent fits.
        assert len(served.replay.requests) == ok
        usage = await served.store.budgets.usage(
            "gateway-key/limited", refused["message"].split("(")[1].split(")")[0]
        )
        assert usage.committed_usd <= limit
        assert usage.spent_usd > 0
        assert usage.committed_usd == pytest.approx(usage.spent_usd)


async def test_over_the_request_rate_answers_429_with_retry_after(store_url: str) -> None:
    limit = {"rate_limit": {"requests_per_minute": 2}}
    async with (
        serve_gateway(HERE / "refund.yaml", store_url, limited=limit) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=30) as http,
    ):
        headers = {"authorization": f"Bearer {LIMITED}"}
        codes = [
            (await http.post("/chat/completions", json=HELLO, headers=headers)).status_code
            for _ in range(2)
        ]
        assert codes == [200, 200]
        third = await http.post("/chat/completions", json=HELLO, headers=headers)
        assert third.status_code == 429
        assert 1 <= int(third.headers["retry-after"]) <= 60
        assert "over its rate limit of 2 requests per minute" in third.json()["error"]["message"]
        # Other keys are not limited by this one.
        other = await http.post(
            "/chat/completions", json=HELLO, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert other.status_code == 200


async def test_rate_and_budget_are_one_admission(store_url: str) -> None:
    # The rate admission and the budget holds are one transaction: a request the budget
    # refuses is not counted against the rate, one the rate refuses holds nothing.
    limits = {
        "rate_limit": {"requests_per_minute": 2},
        "budgets": [{"period": "day", "limit_usd": 0.0009}],
    }
    async with (
        serve_gateway(HERE / "refund.yaml", store_url, limited=limits) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=30) as http,
    ):
        headers = {"authorization": f"Bearer {LIMITED}"}
        huge = {**HELLO, "max_tokens": 100_000}
        refused = await http.post("/chat/completions", json=huge, headers=headers)
        assert refused.status_code == 402
        codes = [
            (await http.post("/chat/completions", json=HELLO, headers=headers)).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        day = refused.json()["error"]["message"].split("(")[1].split(")")[0]
        usage = await served.store.budgets.usage("gateway-key/limited", day)
        assert usage.committed_usd == pytest.approx(usage.spent_usd)


async def test_bad_input_is_refused_in_the_apis_format_and_changes_nothing(
    store_url: str,
) -> None:
    settings = GatewaySettings(max_body_bytes=2_000)
    async with (
        serve_gateway(HERE / "refund.yaml", store_url, settings=settings) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=30) as http,
    ):
        auth = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
        broken = await http.post("/chat/completions", content=b'{"model": ', headers=auth)
        assert broken.status_code == 400
        assert broken.json()["error"]["message"].startswith("body is not valid JSON")
        huge = {**HELLO, "messages": [{"role": "user", "content": "x" * 5_000}]}
        too_big = await http.post("/messages", json=huge, headers=auth)
        assert too_big.status_code == 413
        assert too_big.json()["type"] == "error"
        assert too_big.json()["error"]["type"] == "request_too_large"
        narrow = await http.post(
            "/chat/completions",
            json={**HELLO, "model": "smart"},
            headers={"authorization": "Bearer sk-gw-narrow"},
        )
        assert narrow.status_code == 403
        nobody = await http.post("/chat/completions", json=HELLO)
        assert nobody.status_code == 401
        assert served.replay.requests == []
        assert await served.store.list_sessions() == []
        assert await served.store.pins.get("gw:acme:anything") is None
