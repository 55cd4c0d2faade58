"""The sample plan runs end to end on the embedded Temporal dev server.

Nothing is mocked: a real dev server, a worker with the orchestrator plugin, this
project's skills, and the scripted model server answering over HTTP on loopback from
`model_scripts/order_status.yaml`. Copy this test for each plan you add.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from orchestrator.plans import load_plan
from orchestrator.service import start_session
from orchestrator.settings import Settings
from orchestrator.stack import embedded_stack
from orchestrator.store.records import SessionStatus

ROOT = Path(__file__).resolve().parent.parent


async def test_order_status_answers_from_the_skill(tmp_path: Path) -> None:
    """The agent calls `orders.status` and answers from what it returned."""
    settings = Settings(
        project_dir=ROOT,
        state_dir=tmp_path / "state",
        temporal_address=None,  # the embedded dev server, whatever the environment says
        dev_server_port=0,  # on free ports, beside any `orchestrator dev` already running
        dev_server_ui_port=0,
        database_url=None,
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        metrics_port=None,
    )
    plan = load_plan(ROOT / "workflows/order_status.yaml")
    async with embedded_stack(
        settings, model_script=ROOT / "model_scripts/order_status.yaml"
    ) as stack:
        handle = await start_session(
            stack.client, plan, {"order_id": "A-1001"}, task_queue=settings.task_queue
        )
        result = await handle.result()
        session = await stack.runtime.store.get_session(result.session_id)

    assert result.status is SessionStatus.COMPLETED
    assert result.final_output == (
        "Good news: order A-1001 has shipped with DHL and should arrive on 2026-03-14."
    )
    assert [pin.model for pin in result.model_timeline] == ["sample-fast"]
    assert session is not None
    assert session.status is SessionStatus.COMPLETED
