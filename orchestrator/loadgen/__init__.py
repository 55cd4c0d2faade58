"""Load generation: many concurrent sessions of one plan, and proof that none was lost.

Shared by the load benchmark (`bench/load.py`, which runs the same plan shape on LangGraph
beside ours) and the small load test in the suite (`tests/reliability/test_load_small.py`).
The plan and tool contracts are in `tests/reliability/load_project/`; the tools are in
`orchestrator.loadgen.tools` so that both systems call the very same functions.

Test and benchmark machinery, not part of the runtime: nothing under `orchestrator/`
outside this package imports it, and a deployment never needs it. It ships in the package
only because the load plan's contracts name `orchestrator.loadgen.tools` as an importable
implementation for the worker (see docs/architecture.md).
"""

from orchestrator.loadgen.driver import LoadSettings, run_runtime_load
from orchestrator.loadgen.report import Latency, LoadReport, SessionTrace, summarise
from orchestrator.loadgen.scenario import (
    SessionSpec,
    load_scenario_plan,
    model_script,
    session_specs,
)
from orchestrator.loadgen.tools import LedgerCounts, read_ledger

__all__ = [
    "Latency",
    "LedgerCounts",
    "LoadReport",
    "LoadSettings",
    "SessionSpec",
    "SessionTrace",
    "load_scenario_plan",
    "model_script",
    "read_ledger",
    "run_runtime_load",
    "session_specs",
    "summarise",
]
