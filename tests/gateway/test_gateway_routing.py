"""The gateway routes on the plans' decision path: learned quality and difficulty.

Through the official `openai` SDK: outcomes recorded against a deployment for a tenant's
task type move the gateway's choice for that task type only; a hard last user message (or
a declared `high`) lifts the quality floor past the cheap deployment; and each decision's
task type, difficulty and learned quality are in the audit trail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from gw_harness import TOKEN, serve_gateway
from openai import AsyncOpenAI, BadRequestError

from orchestrator.gateway import GatewaySettings
from orchestrator.routing.learning import Signal
from orchestrator.store.outcomes import OutcomeRecord
from orchestrator.store.records import EventKind
from orchestrator.store.store import Store

HERE = Path(__file__).parent
HARD = (
    "Implement a function that parses this stack trace and derive the probability of each "
    "root cause. Compare the trade-offs step by step, then:\n"
    "1. write the code\n2. prove it terminates\n3. optimize it\n"
    "```python\ndef parse(trace): ...\n```"
)
SETTINGS = GatewaySettings(retry_backoff_seconds=0.0, learning_refresh_seconds=0.0)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def ask(
    client: AsyncOpenAI, session: str, text: str, **headers: str
) -> tuple[str, dict[str, Any]]:
    raw = await client.chat.completions.with_raw_response.create(
        model="smart",
        messages=[{"role": "user", "content": text}],
        extra_headers={"x-session-id": session, **headers},
    )
    assert raw.parse().model == raw.headers["x-orchestrator-deployment"]
    return raw.headers["x-orchestrator-deployment"], dict(raw.headers)


async def routing_of(store: Store, session: str) -> dict[str, Any]:
    events = await store.list_events(f"gw:acme:{session}")
    calls = [e.payload for e in events if e.kind is EventKind.MODEL_CALL]
    pinned = [e.payload for e in events if e.kind is EventKind.MODEL_PINNED]
    assert calls[-1]["routing"] == pinned[-1]["routing"]
    routing: dict[str, Any] = calls[-1]["routing"]
    return routing


async def fail(store: Store, deployment: str, task_type: str, times: int) -> None:
    for i in range(times):
        await store.outcomes.record(
            OutcomeRecord(
                outcome_key=f"t-{deployment}-{task_type}-{i}",
                session_id="elsewhere",
                tenant="acme",
                task_type=task_type,
                deployment=deployment,
                signal=Signal.ESCALATED,
                score=0.0,
                created_at=datetime.now(UTC),
            )
        )


async def test_learned_quality_moves_the_choice_for_that_task_type_only(store_url: str) -> None:
    async with (
        serve_gateway(HERE / "plain.yaml", store_url, settings=SETTINGS) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=TOKEN, max_retries=0) as client,
    ):
        code = {"x-orchestrator-task-type": "code"}
        assert (await ask(client, "before", "Say hi", **code))[0] == "fast"
        # `fast` keeps failing at code for this tenant: its learned quality falls.
        await fail(served.store, "fast", "code", 40)
        assert (await ask(client, "after", "Say hi", **code))[0] == "strong"
        assert (await ask(client, "other-task", "Say hi"))[0] == "fast"
        learned = await routing_of(served.store, "after")
        assert learned["task_type"] == "code"
        assert learned["declared_quality"] == 0.9 and learned["observations"] == 0
        untouched = await routing_of(served.store, "before")
        assert (untouched["task_type"], untouched["observations"]) == ("code", 0)


async def test_difficulty_is_estimated_from_the_last_user_message_or_declared(
    store_url: str,
) -> None:
    async with (
        serve_gateway(HERE / "plain.yaml", store_url, settings=SETTINGS) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=TOKEN, max_retries=0) as client,
    ):
        assert (await ask(client, "easy", "Say hi"))[0] == "fast"
        # A hard question needs quality 0.8 (`high`): the cheap deployment (0.6) is out.
        assert (await ask(client, "hard", HARD))[0] == "strong"
        declared = {"x-orchestrator-difficulty": "high"}
        assert (await ask(client, "declared", "Say hi", **declared))[0] == "strong"
        easy = await routing_of(served.store, "easy")
        assert (easy["difficulty"], easy["difficulty_source"]) == ("low", "estimated")
        hard = await routing_of(served.store, "hard")
        assert (hard["difficulty"], hard["difficulty_source"]) == ("high", "estimated")
        assert {"code", "math", "reasoning"} <= set(hard["difficulty_features"])
        said = await routing_of(served.store, "declared")
        assert (said["difficulty"], said["difficulty_source"]) == ("high", "declared")
        with pytest.raises(BadRequestError, match="x-orchestrator-difficulty"):
            await ask(client, "bad", "Say hi", **{"x-orchestrator-difficulty": "extreme"})
