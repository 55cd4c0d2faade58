"""The OpenAI Agents SDK runs a real tool loop through the gateway.

The SDK sends no session header, so the gateway names the session by the conversation's
opening messages; every call of the loop lands on the same session and deployment.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from gw_harness import TOKEN, serve_gateway
from openai import AsyncOpenAI

from orchestrator.store.records import EventKind

HERE = Path(__file__).parent


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def test_agents_sdk_tool_loop_is_one_fingerprinted_session_on_one_deployment(
    store_url: str,
) -> None:
    set_tracing_disabled(True)
    looked_up: list[str] = []

    @function_tool
    def get_order(order_id: str) -> str:
        """Read an order."""
        looked_up.append(order_id)
        return '{"status": "paid"}'

    async with (
        serve_gateway(HERE / "refund.yaml", store_url) as served,
        AsyncOpenAI(
            base_url=served.base_url,
            api_key=TOKEN,
            max_retries=0,
            default_headers={"x-task": "hard"},
        ) as client,
    ):
        agent = Agent(
            name="refunds",
            instructions="You refund orders.",
            model=OpenAIChatCompletionsModel(model="auto", openai_client=client),
            tools=[get_order],
        )
        result = await Runner.run(agent, "Refund order 7")
        sessions = await served.store.list_sessions()
        assert len(sessions) == 1
        events = await served.store.list_events(sessions[0].session_id)
    assert result.final_output == "Order 7 refunded."
    assert looked_up == ["7"]
    assert sessions[0].session_id.startswith("gw:acme:fp-")
    calls = [e for e in events if e.kind is EventKind.MODEL_CALL]
    assert [(e.model, e.payload["boundary"]) for e in calls] == [
        ("strong", "session_start"),
        ("strong", "tool_loop"),
    ]
    assert {e.payload["session_source"] for e in calls} == {"fingerprint"}
    assert [r.model for r in served.replay.requests] == ["replay-strong", "replay-strong"]
