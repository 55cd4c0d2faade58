"""Pins live in the store: they survive a gateway restart and are shared by processes.

Each gateway here is a real `orchestrator gateway` process. The first call of a loop goes
to one process and is routed to `strong` (the `x-task: hard` rule); the rest of the loop,
without that header, goes elsewhere: routed afresh it would land on `fast`, but the pin in
the store says `strong`. LiteLLM #38078 is this bug: without session affinity across
instances, prompt-cache hits fell from about 95% to nearly 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from gw_harness import LIMITED, TOKEN, keys_raw, registry_raw
from openai import AsyncOpenAI, RateLimitError
from postgres import scratch_database
from process_helpers import process_env, serving

from orchestrator.devserver import free_port
from orchestrator.scripted_model import ScriptedModelServer

HERE = Path(__file__).parent
TOOLS: Any = [{"type": "function", "function": {"name": "get_order", "parameters": {}}}]
OPENING: Any = [{"role": "user", "content": "Refund order 7"}]


@contextlib.asynccontextmanager
async def gateway_process(
    project: Path, database_url: str, command: str = "gateway"
) -> AsyncIterator[str]:
    """`orchestrator gateway` (or `api`) on a free port; yields its `/v1` URL, stops it
    with SIGINT."""
    port = free_port()
    env = process_env(None, ORCHESTRATOR_DATABASE_URL=database_url, ORCHESTRATOR_LOG_FORMAT="json")
    async with serving(env, port, command, "--project", str(project)):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture
async def project(tmp_path: Path) -> AsyncIterator[tuple[Path, ScriptedModelServer]]:
    async with ScriptedModelServer(HERE / "refund.yaml") as replay:
        (tmp_path / "models.yaml").write_text(yaml.safe_dump(registry_raw(replay.base_url)))
        (tmp_path / "gateway_keys.yaml").write_text(yaml.safe_dump(keys_raw()))
        yield tmp_path, replay


async def _chat(url: str, messages: Any, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(
            f"{url}/chat/completions",
            json={"model": "auto", "messages": messages, "tools": TOOLS},
            headers={"authorization": f"Bearer {TOKEN}", "x-session-id": "shared", **headers},
        )
    assert answer.status_code == 200, answer.text
    return answer


def _loop_continues(first: httpx.Response) -> Any:
    message = first.json()["choices"][0]["message"]
    call_id = message["tool_calls"][0]["id"]
    return [*OPENING, message, {"role": "tool", "tool_call_id": call_id, "content": "paid"}]


async def test_two_gateway_processes_on_postgresql_share_a_pin(
    project: tuple[Path, ScriptedModelServer],
) -> None:
    folder, replay = project
    async with (
        scratch_database() as database_url,
        gateway_process(folder, database_url) as one,
        gateway_process(folder, database_url) as two,
    ):
        first = await _chat(one, OPENING, **{"x-task": "hard"})
        assert first.headers["x-orchestrator-deployment"] == "strong"
        second = await _chat(two, _loop_continues(first))
    assert second.headers["x-orchestrator-boundary"] == "tool_loop"
    assert second.json()["model"] == "strong"
    assert [r.model for r in replay.requests] == ["replay-strong", "replay-strong"]


async def test_a_pin_survives_a_gateway_restart(project: tuple[Path, ScriptedModelServer]) -> None:
    folder, replay = project
    database_url = f"sqlite+aiosqlite:///{folder / 'state' / 'gateway.db'}"
    async with gateway_process(folder, database_url) as url:
        first = await _chat(url, OPENING, **{"x-task": "hard"})
    async with gateway_process(folder, database_url) as url:
        second = await _chat(url, _loop_continues(first))
    assert second.headers["x-orchestrator-boundary"] == "tool_loop"
    assert second.json()["model"] == "strong"
    assert [r.model for r in replay.requests] == ["replay-strong", "replay-strong"]


async def test_the_api_process_mounts_the_gateway_at_v1(
    project: tuple[Path, ScriptedModelServer],
) -> None:
    folder, replay = project
    database_url = f"sqlite+aiosqlite:///{folder / 'state' / 'api.db'}"
    async with gateway_process(folder, database_url, command="api") as url:
        answer = await _chat(url, OPENING, **{"x-task": "hard"})
    assert answer.json()["model"] == "strong"
    assert [r.model for r in replay.requests] == ["replay-strong"]


async def test_a_rate_limit_holds_across_two_gateway_processes(
    project: tuple[Path, ScriptedModelServer],
) -> None:
    """Counted in the store: 4 requests a minute in all, whichever process serves them.

    Counted per process, as before, the two processes would have admitted 8.
    """
    folder, replay = project
    limited = keys_raw(rate_limit={"requests_per_minute": 4})
    (folder / "gateway_keys.yaml").write_text(yaml.safe_dump(limited))
    database_url = f"sqlite+aiosqlite:///{folder / 'state' / 'rates.db'}"
    async with (
        gateway_process(folder, database_url) as one,
        gateway_process(folder, database_url) as two,
        AsyncOpenAI(base_url=one, api_key=LIMITED, max_retries=0) as first,
        AsyncOpenAI(base_url=two, api_key=LIMITED, max_retries=0) as second,
    ):
        ask: Any = [{"role": "user", "content": "hi"}]
        for client in (first, second, first, second):
            answer = await client.chat.completions.create(model="fast", messages=ask)
            assert answer.model == "fast"
        for client in (first, second):
            with pytest.raises(RateLimitError) as refused:
                await client.chat.completions.create(model="fast", messages=ask)
            assert "over its rate limit of 4 requests per minute" in str(refused.value)
            assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    assert len(replay.requests) == 4
