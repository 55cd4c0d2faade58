"""What a load run measured, computed the same way for every system under test.

A driver (ours in `driver.py`, the LangGraph peer in `bench/`) records one `SessionTrace`
per session it started: when it started, when each of its model calls finished, when its
approval was sent, whether it ended completed. `summarise` turns the traces and the
effect ledger into a `LoadReport`, so both systems are judged by one piece of code.

A step is one round of the tool loop: the interval between two consecutive model-call
completions of a session (the tool calls the first asked for, then the next model call).
The interval that holds an approval wait is measured from the moment the decision was
sent, so a person's think time is not counted as the system's.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from orchestrator.loadgen.tools import LedgerCounts

__all__ = ["Latency", "LoadReport", "SessionTrace", "summarise"]


@dataclass
class SessionTrace:
    """One session as its driver saw it; times are epoch seconds."""

    session_id: str
    gated: bool
    started_at: float
    model_done: list[float] = field(default_factory=list)
    decided_at: float | None = None
    completed: bool = False
    ended_at: float | None = None
    error: str | None = None

    def steps(self, tool_seconds: Sequence[float]) -> list[tuple[float, float]]:
        """(latency, overhead) of each step; overhead leaves out the tool's own time.

        Args:
            tool_seconds: How long the tool of step N takes by design (the slow lookup).
        """
        done = sorted(self.model_done)
        out: list[tuple[float, float]] = []
        for index, (before, after) in enumerate(pairwise(done)):
            begin = before
            if self.decided_at is not None and before <= self.decided_at <= after:
                begin = self.decided_at
            latency = after - begin
            own = tool_seconds[index] if index < len(tool_seconds) else 0.0
            out.append((latency, latency - own))
        return out


@dataclass(frozen=True)
class Latency:
    """Percentiles of a sample, in milliseconds."""

    n: int
    p50_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        """Summarise durations given in seconds; all zero for an empty sample."""
        if not seconds:
            return cls(0, 0.0, 0.0, 0.0)
        ms = sorted(s * 1000 for s in seconds)
        p95 = statistics.quantiles(ms, n=100, method="inclusive")[94] if len(ms) > 1 else ms[0]
        return cls(len(ms), round(statistics.median(ms), 2), round(p95, 2), round(ms[-1], 2))


@dataclass(frozen=True)
class LoadReport:
    """The outcome of one load run. `lost` and `duplicate_effects` must be 0."""

    system: str
    started: int
    completed: int
    failed: int
    lost: int
    """Started sessions that did not reach COMPLETED: failed, stuck or unknown."""
    gated: int
    parked_at_once: int
    """Gated sessions seen waiting for approval at the same time (all of them, normally)."""
    peak_live: int
    """Most sessions started and not yet finished at one time, as the driver saw it."""
    wall_s: float
    """From the first start to the last completion."""
    to_parked_s: float
    """From the first start until every gated session waited for its approval."""
    steps: int
    steps_per_s: float
    sessions_per_s: float
    step: Latency
    overhead: Latency
    """Step latency less the slow tool's designed time."""
    effects_once: int
    """Sessions whose effect is in the ledger exactly once."""
    duplicate_effects: int
    missing_effects: int
    """Completed sessions with no effect in the ledger."""
    retried_invocations: int
    """Invocations of the effect beyond one per session (retries; harmless if effects hold)."""
    stray_effects: int
    """Effects of sessions this run did not start."""
    errors: list[str] = field(default_factory=list)
    """The first few failures, for the reader."""
    driver_retries: int = 0
    """Reads of the driver that failed and were tried again (a store pool wait, say)."""


def summarise(
    system: str,
    traces: Sequence[SessionTrace],
    ledger: LedgerCounts,
    *,
    tool_seconds: Sequence[float],
    parked_at_once: int,
    peak_live: int,
    to_parked_s: float,
) -> LoadReport:
    """Judge a run from its traces and the effect ledger."""
    ids = {t.session_id for t in traces}
    completed = [t for t in traces if t.completed]
    failed = [t for t in traces if t.error is not None]
    first = min((t.started_at for t in traces), default=0.0)
    last = max((t.ended_at or t.started_at for t in completed), default=first)
    wall = max(last - first, 1e-9)
    steps = [s for t in completed for s in t.steps(tool_seconds)]
    model_calls = sum(len(t.model_done) for t in traces)
    return LoadReport(
        system=system,
        started=len(traces),
        completed=len(completed),
        failed=len(failed),
        lost=len(traces) - len(completed),
        gated=sum(t.gated for t in traces),
        parked_at_once=parked_at_once,
        peak_live=peak_live,
        wall_s=round(wall, 3),
        to_parked_s=round(to_parked_s, 3),
        steps=model_calls,
        steps_per_s=round(model_calls / wall, 2),
        sessions_per_s=round(len(completed) / wall, 2),
        step=Latency.of([latency for latency, _ in steps]),
        overhead=Latency.of([overhead for _, overhead in steps]),
        effects_once=sum(1 for t in traces if ledger.effects[t.session_id] == 1),
        duplicate_effects=sum(max(0, ledger.effects[sid] - 1) for sid in ids),
        missing_effects=sum(1 for t in completed if ledger.effects[t.session_id] == 0),
        retried_invocations=sum(max(0, ledger.invocations[sid] - 1) for sid in ids),
        stray_effects=sum(n for sid, n in ledger.effects.items() if sid not in ids),
        errors=[f"{t.session_id}: {t.error}" for t in failed[:5]],
    )
