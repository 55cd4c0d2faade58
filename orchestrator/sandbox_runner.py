"""The session sandbox, with payloads' serialization contexts read outside it.

This module reads private parts of temporalio's sandbox (`_Instance`, the command visitor's
`CommandInfo`, the external store's context), so it is imported on its own:
`orchestrator.plugin.workflow_runner` falls back to the stock sandbox if an SDK release
moves them. `tests/session/test_sandbox_passthrough.py` fails if the parts it reads change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

from temporalio.converter import SerializationContext
from temporalio.converter._extstore import StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance

__all__ = ["SessionSandboxRunner"]


class _Contexts(Protocol):
    """What the sandbox's own object (`InSandbox`) answers about a run's payloads."""

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None: ...

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext: ...


class _ContextsOutside(_Instance):
    """A sandboxed run whose payloads' serialization contexts are read outside the sandbox.

    The worker asks a run for the serialization context of every payload it decodes or
    encodes, three passes each way (reference, external storage, codec), and the stock
    sandbox answers each ask by entering the sandbox: its import hooks, `sys.modules` and
    every restricted builtin swapped in and back (about 0.3 ms of CPU an ask on the bench
    box, some 56 asks a gated session, a fifth of the worker's CPU in `bench/load.py`).
    The answer is a lookup in the run's own state (its workflow id, the pending activity a
    command schedules), which runs no workflow code and imports nothing, so it is read
    directly. Activations still run inside the sandbox, as before.
    """

    def _in_sandbox(self) -> _Contexts:
        return cast("_Contexts", self.globals_and_locals["__temporal_in_sandbox"])

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        return self._in_sandbox().get_serialization_context(command_info)

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        return self._in_sandbox().get_external_store_context(command_info)


@dataclass(frozen=True)
class SessionSandboxRunner(SandboxedWorkflowRunner):
    """The SDK's sandbox, with serialization contexts read outside it (`_ContextsOutside`)."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """A sandboxed run (see `SandboxedWorkflowRunner.create_instance`)."""
        return _ContextsOutside(det, self.runner_class, self.restrictions)
