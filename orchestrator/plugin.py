"""The runtime as a Temporal plugin, so it can join a worker or client of your own.

```python
runtime = await Runtime.open(Settings())
client = await Client.connect("localhost:7233", plugins=[OrchestratorPlugin(runtime)])
worker = Worker(client, task_queue="orchestrator")  # inherits the client's plugin
```

Given to a client, the plugin sets the pydantic data converter and travels to every worker
built on that client, which it gives the session workflow, its activities and the sandbox
pass-through list below. Give it to the client or to the worker, not to both.

Given to a `Replayer`, with or without a runtime, it sets what replaying a session's
recorded history needs and nothing else (replay runs no activities):

```python
replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])
await replayer.replay_workflow(history)
```
"""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import ReplayerConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from orchestrator.exceptions import SessionFailed
from orchestrator.observability import MetricsInterceptor, tracing_interceptors
from orchestrator.runtime import Runtime
from orchestrator.session.activities import SessionActivities
from orchestrator.session.workflow import AgentSessionWorkflow

__all__ = [
    "PASSTHROUGH_MODULES",
    "SESSION_PARTS",
    "OrchestratorPlugin",
    "workflow_runner",
]

SESSION_PARTS = (
    "orchestrator.session_start",
    "orchestrator.session.agent_loop",
    "orchestrator.session.approval_gate",
    "orchestrator.session.call_timeouts",
    "orchestrator.session.carry",
    "orchestrator.session.constructs",
    "orchestrator.session.core",
    "orchestrator.session.ensemble",
    "orchestrator.session.fanout",
    "orchestrator.session.limits",
    "orchestrator.session.model_pins",
    "orchestrator.session.parts",
    "orchestrator.session.payloads",
    "orchestrator.session.pinning",
    "orchestrator.session.skill_calls",
    "orchestrator.session.step_types",
    "orchestrator.session.truncation",
    "orchestrator.session.workflow",
)
"""The session workflow and its parts, passed through the sandbox (see `PASSTHROUGH_MODULES`)."""

PASSTHROUGH_MODULES = (
    # pydantic builds validators at import; re-importing it per workflow run is slow and
    # its caches are not workflow state.
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    # Pure data shapes and helpers with no I/O and no module-level mutable state.
    "orchestrator.types",
    "orchestrator.exceptions",
    "orchestrator.plans",
    # The providers package exports its httpx client beside the message shapes the
    # workflow uses; the client is only ever called from activities.
    "orchestrator.providers",
    "httpx",
    # Skill shapes and semver ranges; contract loading and the native CEL evaluator
    # (`cel`, imported by orchestrator.skills.approval) are only called by activities.
    "orchestrator.skills",
    "orchestrator.store.records",
    "orchestrator.session.types",
    "orchestrator.names",
    "orchestrator.session.names",
    "orchestrator.session.patches",
    "orchestrator.session.templating",
    "orchestrator.approvals",
    # Imported by orchestrator.plans.loader for plan files; never called in workflows.
    "yaml",
    # Routing shapes the workflow records; the router itself (and its Rust CEL engine,
    # whose native module cannot be re-imported per run) is only called from activities.
    "orchestrator.routing",
    "cel",
    # JSON Schema checks of typed step outputs (orchestrator.plans.schemas) run in workflow
    # code: pure functions of the schema and value; `rpds` is native and `referencing` and
    # `jsonschema_specifications` load their metaschemas once at import.
    "jsonschema",
    "jsonschema_specifications",
    "referencing",
    "rpds",
    "attrs",
    "attr",
    # The workflow's own parts: the pure decisions and the collaborators the workflow class
    # composes. Without these the sandbox re-imported 19 modules and rebuilt their pydantic
    # models and dataclasses for every session (about 30 ms of CPU each, 14 ms with bytecode
    # compiled; bench/README.md, "Session bookkeeping"). Each is safe to share between runs:
    # no I/O, no clock, randomness or ids except through `temporalio.workflow`, and no
    # module-level state a run changes (constants, and `step_types`' registry, which is
    # filled once when these modules are imported and only read after). The workflow
    # module itself (`orchestrator.session.workflow`) is held to the same rules and passed
    # through too: re-importing it alone cost 6.7 ms of a session's first workflow task
    # (0.9 ms without; bench/README.md, "The session's close on the calling thread, the
    # workflow module passed through"), and bare's and the peers' workflow modules are
    # passed through in the benchmarks as well.
    # tests/session/test_sandbox_passthrough.py holds these claims.
    *SESSION_PARTS,
)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox with this package's pass-through modules declared once.

    `SessionSandboxRunner` reads private parts of temporalio's sandbox; should a release of
    temporalio move them, the stock sandbox runs instead (the same, only slower), rather
    than the whole runtime failing to import.
    """
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    try:
        from orchestrator.sandbox_runner import SessionSandboxRunner
    except ImportError:
        return SandboxedWorkflowRunner(restrictions=restrictions)
    return SessionSandboxRunner(restrictions=restrictions)


def _converter(_existing: DataConverter | None) -> DataConverter:
    return pydantic_data_converter


class OrchestratorPlugin(SimplePlugin):
    """Adds the agent-session runtime to a Temporal client or worker.

    Both carry Temporal's OpenTelemetry `TracingInterceptor` when a tracer provider is
    installed at construction (one instance per process, so a worker on a client that has
    it does not trace twice); without one it would only cost time on every workflow
    activation and activity. A worker also gets the interceptor that records Prometheus
    metrics from its activities.

    Args:
        runtime: The process's runtime. Without one the plugin only sets the data
            converter and tracing, which is what a client needs.
    """

    def __init__(self, runtime: Runtime | None = None) -> None:
        super().__init__(
            "orchestrator.OrchestratorPlugin",
            data_converter=_converter,
            interceptors=[
                *tracing_interceptors(),
                *([MetricsInterceptor(runtime.store)] if runtime else []),
            ],
            workflows=[AgentSessionWorkflow] if runtime else None,
            activities=SessionActivities(runtime).all() if runtime else None,
            workflow_runner=workflow_runner() if runtime else None,
            # A `SessionFailed` raised in workflow code fails the session's workflow (with
            # its failure type) instead of retrying the workflow task for ever.
            workflow_failure_exception_types=[SessionFailed] if runtime else None,
        )

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        """The converter and tracing, plus what the worker's sandbox had when it ran.

        A history replays only under the pass-through list and failure types it was
        recorded with, so a replayer gets them, and the session workflow (unless the
        caller already lists it), even from a plugin without a runtime.
        """
        config = super().configure_replayer(config)
        config["workflow_runner"] = workflow_runner()
        failures = [*config.get("workflow_failure_exception_types", []), SessionFailed]
        config["workflow_failure_exception_types"] = list(dict.fromkeys(failures))
        workflows = [*config.get("workflows", []), AgentSessionWorkflow]
        config["workflows"] = list(dict.fromkeys(workflows))
        return config
