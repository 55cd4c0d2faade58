"""`launch` asks for an eager workflow start for a fresh session, and not when it joins.

An eager start hands the run's first workflow task back in the start's response when the
starting client also serves a worker on the task queue (the SDK drops the request
otherwise); a joining start (MCP's idempotent calls) may find the run already going.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from temporalio.client import Client

from orchestrator.plans.models import AgentStep, Plan
from orchestrator.service import build_start, launch
from orchestrator.session_start import StartOptions


class _Recorder:
    """A client stand-in that keeps the keywords of its one `start_workflow` call."""

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}

    async def start_workflow(self, *args: object, **kwargs: Any) -> object:
        self.kwargs = kwargs
        return object()


@pytest.mark.parametrize(("join", "eager"), [(False, True), (True, False)])
async def test_a_fresh_start_asks_for_an_eager_start(join: bool, eager: bool) -> None:
    plan = Plan(name="p", steps=[AgentStep(id="s", goal="g")])
    start = build_start(plan, {}, StartOptions(session_id="eager"))
    client = _Recorder()
    await launch(cast(Client, client), start, task_queue="q", join=join)
    assert client.kwargs["request_eager_start"] is eager
    assert client.kwargs["id"] == "session-eager"
