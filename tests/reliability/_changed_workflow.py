"""Test-only variants of the session workflow with one command-changing edit: a timer
before the session starts. Registered under the workflow's own name in a Replayer, they
stand for the next release of the workflow code; one guards the edit with
`workflow.patched`, the other does not.

Module-level (not inside a test) because the workflow sandbox re-imports the module that
defines a workflow class.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from orchestrator.session import names
from orchestrator.session.types import SessionResult, SessionStartInput
from orchestrator.session.workflow import AgentSessionWorkflow

PATCH = "test-timer-before-start"


@workflow.defn(name=names.WORKFLOW_NAME)
class GuardedChange(AgentSessionWorkflow):
    """The edit as it must ship: new runs take it, runs recorded before it replay as they were."""

    @workflow.run
    async def run(self, start: SessionStartInput) -> SessionResult:
        if workflow.patched(PATCH):
            await workflow.sleep(timedelta(milliseconds=1))
        return await super().run(start)


@workflow.defn(name=names.WORKFLOW_NAME)
class UnguardedChange(AgentSessionWorkflow):
    """The same edit without the guard: a recorded history no longer matches its commands."""

    @workflow.run
    async def run(self, start: SessionStartInput) -> SessionResult:
        await workflow.sleep(timedelta(milliseconds=1))
        return await super().run(start)
