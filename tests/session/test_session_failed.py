"""A caller catches `SessionFailed` from a real failed session, not a Temporal wrapper.

The workflow fails with the `SessionFailed` failure type (`orchestrator.exceptions`), and
`SessionHandle.result()` decodes it; refusals of an approval decision arrive typed too.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

# The sandbox re-imports this module for the test's workflow: use the host's copies.
with workflow.unsafe.imports_passed_through():
    import pytest
    from conftest import REPO, Env

    from orchestrator import SessionFailed, StartOptions, start
    from orchestrator.exceptions import ApprovalBySelf, ApprovalError, from_failure
    from orchestrator.plans import ApprovalStep, Plan
    from orchestrator.plugin import OrchestratorPlugin
    from orchestrator.session.types import SessionState
    from orchestrator.testing import eventually

GATE_ONLY = Plan(
    name="gate-only",
    steps=[ApprovalStep(type="approval", id="gate", summary="Ship the refund?")],
)


async def test_a_caller_catches_session_failed_from_a_rejected_session(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(REPO / "model_scripts/customer_refund.yaml")
    handle = await start(
        env.client,
        env.runtime.store,
        GATE_ONLY,
        {},
        StartOptions(requested_by="lee"),
        task_queue=env.settings.task_queue,
    )

    async def waiting() -> SessionState | None:
        state = await handle.state()
        return state if state.pending_approvals else None

    await eventually(waiting, what="the gate")
    # The workflow's refusal arrives as its own type (an ApprovalError), not a string.
    with pytest.raises(ApprovalBySelf, match="lee started this session"):
        await handle.approve(by="lee")
    await handle.reject(by="maria", reason="not this quarter")
    try:
        await handle.result()
    except SessionFailed as failed:
        assert "step 'gate' failed" in str(failed)
        assert "not this quarter" in str(failed)
        assert isinstance(failed.__cause__, WorkflowFailureError)
    else:
        pytest.fail("a rejected gate must fail the session")
    record = await env.runtime.store.get_session(handle.session_id)
    assert record is not None and record.status.value == "failed"
    assert issubclass(ApprovalBySelf, ApprovalError)


@workflow.defn(name="test.RaisesSessionFailed")
class RaisesSessionFailed:
    """Workflow code of your own that raises `SessionFailed` as it is."""

    @workflow.run
    async def run(self) -> None:
        raise SessionFailed("step 'check' failed: the ledger is closed")


async def test_session_failed_raised_in_workflow_code_fails_the_workflow(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    """The plugin registers it: the run fails at once instead of retrying its task."""
    env = await env_factory(REPO / "model_scripts/customer_refund.yaml")
    queue = f"{env.settings.task_queue}-own"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[RaisesSessionFailed],
        plugins=[OrchestratorPlugin(env.runtime)],
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await env.client.execute_workflow(
                RaisesSessionFailed.run,
                id=f"raises-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
                # Unregistered, the task would be retried until this ends the run.
                execution_timeout=timedelta(seconds=20),
            )
    error = from_failure(failed.value)
    assert isinstance(error, SessionFailed)
    assert str(error) == "step 'check' failed: the ledger is closed"
