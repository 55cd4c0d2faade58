"""A session that reserved budget gives back the unspent part when it finishes.

`finish_session` settles only sessions that hold a reservation (settling is a write
transaction, skipped for the rest); this holds the other half, end to end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REPO, Env

from orchestrator.plans import load_plan
from orchestrator.routing.policy import Budget
from orchestrator.service import decide_approval, start_session
from orchestrator.session_start import StartOptions
from orchestrator.store.records import SessionStatus
from orchestrator.testing import wait_for_pending_approval

PLAN = REPO / "workflows/customer_refund.yaml"
SCRIPT = REPO / "model_scripts/customer_refund.yaml"


async def test_a_finished_session_settles_its_reservation(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    store = env.runtime.store
    # The budget the worker's router reserves at the session's first boundary.
    env.runtime.models.budgets[:] = [
        Budget(tenant="acme", limit_usd=100.0, session_reserve_usd=5.0)
    ]
    handle = await start_session(
        env.client,
        load_plan(PLAN),
        {"ticket_id": "T-1001"},
        StartOptions(session_id="settled", tenant="acme"),
        task_queue=env.settings.task_queue,
    )
    pending = await wait_for_pending_approval(store, "settled")
    period = datetime.now(UTC).strftime("%Y-%m")
    held = await store.budgets.usage("acme/*", period)
    assert held.committed_usd == pytest.approx(5.0)
    await decide_approval(env.client, store, pending.approval_id, approve=True, decided_by="maria")
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    usage = await store.budgets.usage("acme/*", period)
    assert 0 < usage.spent_usd < 5.0
    assert usage.committed_usd == pytest.approx(usage.spent_usd)
