"""What must hold after a chaos run, checked per session from the store and the endpoint.

Each check reads what the system itself recorded (the audit trail, the skill's own
ledger, the requests the model endpoint served), never the harness's expectations of
timing, so a finding is a real fault and not a slow machine.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from orchestrator.chaos.model_tap import TappedRequest
from orchestrator.session.types import Boundary, ModelPin
from orchestrator.store.records import AuditEvent, EventKind

__all__ = [
    "ChaosReport",
    "GateTimes",
    "SessionFindings",
    "audit_problems",
    "ledger_keys",
    "pin_violations",
    "reruns_after_gates",
    "timeline_violations",
]

# Pins that may change the model inside a step: recorded, with their cause.
_ALLOWED_SWITCHES = {Boundary.FORCED_FAILOVER.value, Boundary.ESCALATION.value}


@dataclass(frozen=True)
class GateTimes:
    """When the harness first saw an approval pending, and when its decision was taken."""

    approval_id: str
    session_id: str
    seen_at: float
    decided_at: float | None = None


class SessionFindings(BaseModel):
    """What the checks found in one session."""

    session_id: str
    plan: str
    status: str
    """`completed`, `failed` (the workflow failed) or `lost` (no result in time)."""
    error: str | None = None
    effects: int = 0
    """Rows in the skill's own ledger made by this session's calls."""
    expected_effects: int = 0
    pin_violations: list[str] = Field(default_factory=list)
    audit_problems: list[str] = Field(default_factory=list)
    reruns_after_gate: list[str] = Field(default_factory=list)

    @property
    def duplicate_effects(self) -> int:
        """Effects beyond those the plan makes once each."""
        return max(0, self.effects - self.expected_effects)


class ChaosReport(BaseModel):
    """The figures of one chaos run and every finding behind them."""

    seed: int
    runs: int
    kills: int
    kill_points: dict[str, int]
    worker_starts: int
    started_ahead: int = 0
    """Sessions whose setup the starter resolved (their row written by their first activity)."""
    completed: int
    failed: int
    lost: int
    duplicate_effects: int
    missing_effects: int
    orphan_effects: int
    """Ledger rows no session's recorded call made (an effect repeated under a new key)."""
    pin_violations: int
    audit_problems: int
    reruns_after_gate: int
    seconds: float
    sessions: list[SessionFindings]

    @property
    def ok(self) -> bool:
        """True when every session completed and no check found anything."""
        return (
            self.completed == self.runs
            and self.duplicate_effects == 0
            and self.missing_effects == 0
            and self.orphan_effects == 0
            and self.pin_violations == 0
            and self.audit_problems == 0
            and self.reruns_after_gate == 0
        )

    def problems(self) -> list[str]:
        """Every finding, one line each, naming its session."""
        lines: list[str] = []
        for s in self.sessions:
            if s.status != "completed":
                lines.append(f"{s.session_id}: {s.status}: {s.error}")
            if s.effects != s.expected_effects:
                lines.append(f"{s.session_id}: {s.effects} effects, expected {s.expected_effects}")
            lines += [
                f"{s.session_id}: {p}"
                for p in (*s.pin_violations, *s.audit_problems, *s.reruns_after_gate)
            ]
        if self.orphan_effects:
            lines.append(f"{self.orphan_effects} ledger rows made by no recorded call")
        return lines

    def summary(self) -> str:
        """The figures as a short table."""
        points = ", ".join(f"{k} {v}" for k, v in sorted(self.kill_points.items()))
        rows = [
            ("runs", self.runs),
            ("kills", f"{self.kills} ({points})"),
            ("worker starts", self.worker_starts),
            ("started ahead", f"{self.started_ahead} (setup resolved by the starter)"),
            ("completed", self.completed),
            ("failed", self.failed),
            ("lost sessions", self.lost),
            ("duplicate effects", self.duplicate_effects),
            ("missing effects", self.missing_effects),
            ("orphan effects", self.orphan_effects),
            ("pin violations", self.pin_violations),
            ("audit gaps or duplicates", self.audit_problems),
            ("re-runs after a gate", self.reruns_after_gate),
            ("seconds", f"{self.seconds:.1f}"),
        ]
        return "\n".join(f"{name:<26}{value}" for name, value in rows)


def ledger_keys(state_dir: Path) -> list[str]:
    """Idempotency keys of the refunds the demo's `payments.refund` skill has paid.

    That skill's own store: a SQLite ledger in the worker's skill state folder
    (`skills/payments.py`), one row per effect.
    """
    path = state_dir / "skills" / "refunds.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=30)
    try:
        return [str(row[0]) for row in conn.execute("SELECT idempotency_key FROM refunds")]
    except sqlite3.OperationalError:
        return []  # the skill has not created its table yet
    finally:
        conn.close()


def pin_violations(events: Sequence[AuditEvent]) -> list[str]:
    """Model changes between two model calls of one step without a recorded forced pin."""
    found: list[str] = []
    last_model: dict[str, str] = {}
    allowed_switch: set[str] = set()
    for event in events:
        step = event.step_id or "-"
        if event.kind is EventKind.MODEL_PINNED:
            if event.payload.get("boundary") in _ALLOWED_SWITCHES:
                allowed_switch.add(step)
        elif event.kind is EventKind.MODEL_CALL and event.model is not None:
            before = last_model.get(step)
            if before is not None and before != event.model and step not in allowed_switch:
                found.append(
                    f"step {step}: model {before} -> {event.model} inside the step "
                    f"(round {event.payload.get('round')}) without a forced failover"
                )
            allowed_switch.discard(step)
            last_model[step] = event.model
    return found


def timeline_violations(timeline: Sequence[ModelPin]) -> list[str]:
    """Steps of a session's model timeline pinned more than once without a forced cause."""
    pins = Counter(p.step_id for p in timeline if p.boundary.value not in _ALLOWED_SWITCHES)
    return [
        f"step {step}: pinned {n} times in the model timeline, only one may be unforced"
        for step, n in pins.items()
        if n > 1
    ]


def _call_ids(event: AuditEvent) -> list[str]:
    tool_calls = event.payload.get("tool_calls")
    count = len(tool_calls) if isinstance(tool_calls, list) else 0
    attempt = event.payload.get("attempt") or 0
    prefix = f"f{attempt}." if attempt else ""
    return [f"{prefix}{event.payload.get('round')}.{i}" for i in range(count)]


def audit_problems(events: Sequence[AuditEvent], *, completed: bool) -> list[str]:
    """Duplicate keys or records, and gaps: started without an end, asked without answer."""
    found: list[str] = []
    keys = Counter(e.event_key for e in events)
    found += [f"event key {key} written {n} times" for key, n in keys.items() if n > 1]
    kinds = Counter(e.kind for e in events)
    ends = [EventKind.SESSION_STARTED] + ([EventKind.SESSION_COMPLETED] if completed else [])
    found += [f"{kind.value} written {kinds[kind]} times" for kind in ends if kinds[kind] != 1]
    started = Counter(e.step_id for e in events if e.kind is EventKind.STEP_STARTED)
    ended = Counter(e.step_id for e in events if e.kind is EventKind.STEP_COMPLETED)
    if completed and started != ended:
        found.append(f"steps started {dict(started)} but completed {dict(ended)}")
    rounds: dict[tuple[str | None, object], list[tuple[int, object]]] = defaultdict(list)
    tool_ids: set[tuple[str | None, object]] = set()
    expected_tools: list[tuple[str | None, str]] = []
    for e in events:
        if e.kind is EventKind.MODEL_CALL:
            number = e.payload.get("round")
            # A retried model-call activity asked again: its row has `try`, the same round.
            rounds[(e.step_id, e.payload.get("attempt") or 0)].append(
                (number if isinstance(number, int) else -1, e.payload.get("try") or 1)
            )
            expected_tools += [(e.step_id, call_id) for call_id in _call_ids(e)]
        elif e.kind in (EventKind.TOOL_CALL, EventKind.TOOL_ERROR):
            tool_ids.add((e.step_id, e.payload.get("call_id")))
    for (step, attempt), seen in rounds.items():
        numbers = sorted({number for number, _ in seen})
        if numbers != [*range(len(numbers))] or len(set(seen)) != len(seen):
            found.append(f"step {step} attempt {attempt}: model call rounds {[n for n, _ in seen]}")
    if completed:
        found += [
            f"step {step}: tool call {call_id} asked by the model has no record"
            for step, call_id in expected_tools
            if (step, call_id) not in tool_ids
        ]
        last = {e.step_id: e for e in events if e.kind is EventKind.MODEL_CALL}
        found += [
            f"step {step}: no model call recorded after round {e.payload.get('round')}'s tools"
            for step, e in last.items()
            if not e.payload.get("final")
        ]
    found += _connector_gaps(events)
    asked = {e.payload.get("approval_id") for e in events if e.kind is EventKind.APPROVAL_REQUESTED}
    decided = {e.payload.get("approval_id") for e in events if e.kind is EventKind.APPROVAL_DECIDED}
    if completed and asked != decided:
        found.append(
            f"approvals requested {sorted(map(str, asked))} decided {sorted(map(str, decided))}"
        )
    return found


def _connector_gaps(events: Sequence[AuditEvent]) -> list[str]:
    """Connector calls recorded as done whose call out to the MCP server has no record.

    A tool call of an MCP-bound skill names its connector; the call out to that server
    writes an `mcp_call` row (step and call id) before the tool call is recorded.
    """
    out = {
        (e.step_id, e.payload.get("call_id"))
        for e in events
        if e.kind is EventKind.MCP_CALL and e.payload.get("outcome") == "ok"
    }
    return [
        f"step {e.step_id}: connector call {e.payload.get('call_id')} to"
        f" {e.payload['connector']} has no mcp_call record"
        for e in events
        if e.kind is EventKind.TOOL_CALL
        and e.payload.get("connector")
        and (e.step_id, e.payload.get("call_id")) not in out
    ]


def reruns_after_gates(requests: Sequence[TappedRequest], gates: Sequence[GateTimes]) -> list[str]:
    """Model requests after a decision that repeat a turn already answered before the gate.

    A session waiting at a gate has nothing in flight, so every turn asked before the
    approval appeared was finished; asking one again after the decision means work before
    the gate ran twice.
    """
    found: list[str] = []
    for gate in gates:
        if gate.decided_at is None:
            continue
        mine = [r for r in requests if r.session_id == gate.session_id]
        before = {(r.step_id, r.turn) for r in mine if r.at < gate.seen_at}
        again = sorted(
            {(r.step_id or "-", r.turn) for r in mine if r.at > gate.decided_at} & before
        )
        found += [
            f"step {step} turn {turn} asked again after approval {gate.approval_id}"
            for step, turn in again
        ]
    return found
