"""A crash harness: sessions run while their worker is SIGKILLed at random points.

`run_chaos` starts sessions of one or more plans against a worker subprocess, kills that
worker many times (during a model call, right after a skill's effect, while a session
waits for an approval, or at a random moment), starts a new one each time, decides the
approvals as they appear, and then checks what the promise of the runtime says must hold:
every session completed, no effect twice, no model switch inside a tool loop, an audit
trail without gaps or duplicates, nothing before an approval gate run again after it.
`tests/reliability/test_crash_harness.py` runs a small form; `bench/chaos.py` the full one.

Test and benchmark machinery, not part of the runtime: nothing under `orchestrator/`
outside this package imports it, and a deployment never needs it. It ships in the package
only so that `bench/` and `tests/` share one harness (see docs/architecture.md).
"""

from orchestrator.chaos.checks import ChaosReport, SessionFindings
from orchestrator.chaos.harness import ChaosConfig, Workload, example_workloads, run_chaos
from orchestrator.chaos.model_tap import ModelTap, TappedRequest
from orchestrator.chaos.worker_process import WorkerProcess

__all__ = [
    "ChaosConfig",
    "ChaosReport",
    "ModelTap",
    "SessionFindings",
    "TappedRequest",
    "WorkerProcess",
    "Workload",
    "example_workloads",
    "run_chaos",
]
