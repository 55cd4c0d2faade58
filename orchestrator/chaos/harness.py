"""The chaos run: sessions on a worker subprocess that is SIGKILLed at random points.

The kill points come in a seeded random order, each once per round of six; a kill waits
for what defines its point, so it lands where it says:

- `model_call`: the next model request is held at the endpoint, and the worker is killed
  while its activity waits for the answer;
- `after_answer`: a model answer has been sent in full, and the worker is killed at once:
  between that activity and the next one (its completion reported or not);
- `effect`: the skill's ledger gains a row, and the worker is killed at once, whether or
  not the skill's activity has reported back;
- `approval_wait`: a session waits for an approval the harness has not decided yet;
- `decision_recorded`: the store shows a decision the worker has just written, and the
  worker is killed at once, maybe before the workflow task that took it completed;
- `random`: a random moment (up to 1.5 s) after the restarted worker made progress; also
  where a kill lands when its point does not come up within `trigger_timeout`.

Machine timing still decides which session a kill hits, so two runs with one seed kill at
the same kinds of points, not at identical instants.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from orchestrator.chaos.checks import (
    ChaosReport,
    GateTimes,
    SessionFindings,
    audit_problems,
    ledger_keys,
    pin_violations,
    reruns_after_gates,
    timeline_violations,
)
from orchestrator.chaos.model_tap import ModelTap
from orchestrator.chaos.worker_process import WorkerProcess
from orchestrator.client import connect
from orchestrator.exceptions import ApprovalError
from orchestrator.plans import load_plan
from orchestrator.plans.models import Plan
from orchestrator.providers.registry import load_model_registry
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import (
    LoopbackServer,
    ReplayScript,
    create_replay_app,
    load_model_script,
)
from orchestrator.service import checked_start, decide_approval, launch
from orchestrator.session.resolution import prepare_start
from orchestrator.session.types import ActivityOptions, SessionOptions, SessionResult
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.records import ApprovalStatus, EventKind, SessionStatus
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = ["KILL_POINTS", "ChaosConfig", "Workload", "example_workloads", "run_chaos"]

KILL_POINTS = (
    "model_call",
    "after_answer",
    "effect",
    "approval_wait",
    "decision_recorded",
    "random",
)
APPROVER = "chaos-approver"
TAG = "chaos_session"


@dataclass(frozen=True)
class Workload:
    """A plan the harness runs sessions of, with the model script that answers it.

    Args:
        plan: The plan file.
        script: Its model script; step ids must not clash with another workload's.
        input: The session input (the harness adds a tag naming the session).
        effects: Ledger rows one session makes when each effect runs once.
    """

    plan: Path
    script: Path
    input: JsonObject
    effects: int = 1


def example_workloads(project_dir: Path) -> list[Workload]:
    """The refund demo and the longer refund-audit plan of this repository's example project.

    The audit plan (`tests/reliability/plans/refund_audit.yaml`) has three tool loops, an
    approval step and a gated refund; both pay one refund per session.
    """
    plans = project_dir / "tests/reliability/plans"
    return [
        Workload(
            plan=project_dir / "workflows/customer_refund.yaml",
            script=project_dir / "model_scripts/customer_refund.yaml",
            input={"ticket_id": "T-1001"},
        ),
        Workload(
            plan=plans / "refund_audit.yaml",
            script=plans / "refund_audit.replay.yaml",
            input={"ticket_id": "T-1001"},
        ),
    ]


@dataclass
class ChaosConfig:
    """One chaos run.

    Args:
        settings: Server, task queue, project and state the worker and sessions use.
        workloads: Plans to run; session `i` runs `workloads[i % len(workloads)]`.
        sessions: How many sessions in all; they start spread over the kills.
        kills: How many times the worker is SIGKILLed.
        points: The kill points to use (default: all of `KILL_POINTS`).
        seed: Seeds the kill points, the random moments and the approvers' delays.
        heartbeat: The model and skill calls' heartbeat timeout: how soon the server
            notices that a killed worker's activity is gone.
        timeout: Longest the sessions may take to finish after the last kill.
        trigger_timeout: Longest to wait for a kill point to come up before choosing a
            random moment instead.
        log: Where the workers' output goes (default: the state folder).
        ahead: Every other session starts as a starter holding a runtime starts it: its
            setup resolved here, its session row written by its first activity (the path
            `patches.OPENING_GENERATION` added), so kills land on both ways of starting.
    """

    settings: Settings
    workloads: list[Workload]
    sessions: int = 4
    kills: int = 5
    points: tuple[str, ...] = KILL_POINTS
    seed: int = 0
    heartbeat: timedelta = timedelta(seconds=2)
    timeout: float = 300.0
    trigger_timeout: float = 30.0
    log: Path | None = None
    ahead: bool = True


def merged_script(workloads: list[Workload]) -> ReplayScript:
    """One model script answering every workload (one endpoint serves the worker)."""
    conversations = [c for w in workloads for c in load_model_script(w.script).conversations]
    return ReplayScript(conversations=conversations)


@dataclass
class _Session:
    session_id: str
    workload: Workload
    plan: Plan
    handle: WorkflowHandle[object, SessionResult]
    waiter: asyncio.Task[SessionResult | WorkflowFailureError]
    ahead: bool = False
    """Started with its setup resolved by the starter (no `start_session` activity)."""


@dataclass
class _Run:
    """The state of one chaos run that the kill loop and the approver share."""

    config: ChaosConfig
    client: Client
    store: Store
    tap: ModelTap
    worker: WorkerProcess
    rng: random.Random
    plans: dict[Path, Plan]
    runtime: Runtime | None = None
    """The starter's runtime for the sessions started ahead (`ChaosConfig.ahead`)."""
    sessions: list[_Session] = field(default_factory=list)
    gates: dict[str, GateTimes] = field(default_factory=dict)
    kill_points: list[str] = field(default_factory=list)
    _deciding: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def unfinished(self) -> bool:
        return any(not s.waiter.done() for s in self.sessions)

    async def start_due(self, kills_done: int) -> None:
        """Start sessions so that they spread evenly over the kills, and one is always live.

        Without the second rule a fast machine finishes the sessions started so far
        between two kills, and the kills left would have nothing to hit.
        """
        config = self.config
        due = math.ceil(config.sessions * (kills_done + 1) / (config.kills + 1))
        due = max(due, len(self.sessions) + (0 if self.unfinished else 1))
        options = SessionOptions(
            model_call=ActivityOptions(heartbeat=config.heartbeat),
            skill_call=ActivityOptions(heartbeat=config.heartbeat),
        )
        while len(self.sessions) < min(due, config.sessions):
            index = len(self.sessions)
            workload = config.workloads[index % len(config.workloads)]
            session_id = f"chaos{config.seed}-{index:03d}-{uuid.uuid4().hex[:6]}"
            plan = self.plans[workload.plan]
            start = await checked_start(
                plan,
                {**workload.input, TAG: session_id},
                StartOptions(session_id=session_id, options=options),
            )
            if self.runtime is not None and index % 2 == 1:
                start = await prepare_start(self.runtime, start)
            handle = await launch(self.client, start, task_queue=config.settings.task_queue)
            waiter = asyncio.create_task(_outcome(handle))
            ahead = start.setup is not None
            self.sessions.append(_Session(session_id, workload, plan, handle, waiter, ahead))

    async def approve_forever(self) -> None:
        """Decide every approval of this run's sessions as it appears, after a short delay."""
        while True:
            ours = {s.session_id for s in self.sessions}
            for record in await self.store.list_approvals(status=ApprovalStatus.PENDING):
                if record.session_id in ours and record.approval_id not in self.gates:
                    self.gates[record.approval_id] = GateTimes(
                        record.approval_id, record.session_id, seen_at=time.monotonic()
                    )
                    task = asyncio.create_task(
                        self._decide(record.approval_id, self.rng.uniform(0.2, 2.0))
                    )
                    self._deciding.add(task)
                    task.add_done_callback(self._deciding.discard)
            await asyncio.sleep(0.05)

    async def _decide(self, approval_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        session = next(
            s for s in self.sessions if s.session_id == self.gates[approval_id].session_id
        )
        while not session.waiter.done():
            try:
                await decide_approval(
                    self.client, self.store, approval_id, approve=True, decided_by=APPROVER
                )
            except (ApprovalError, RPCError, WorkflowUpdateRPCTimeoutOrCancelledError):
                # Its session is between workers, or the worker died with the decision in
                # hand: ask again, as a person would.
                await asyncio.sleep(1.0)
                continue
            gate = self.gates[approval_id]
            self.gates[approval_id] = GateTimes(
                gate.approval_id, gate.session_id, gate.seen_at, decided_at=time.monotonic()
            )
            return

    async def progress(self) -> None:
        """Wait until the (new) worker has asked the model something, or all is done."""
        seen = len(self.tap.requests)
        await _until(lambda: len(self.tap.requests) > seen, self.config.trigger_timeout, self)

    async def reach(self, point: str) -> str:
        """Wait for `point` to come up; returns where the kill will land."""
        timeout = self.config.trigger_timeout
        if point == "model_call":
            if await _set(self.tap.hold_next(), timeout, self):
                return point
            self.tap.release()
        elif await self._came_up(point, timeout):
            return point
        await asyncio.sleep(self.rng.uniform(0.0, 1.5))
        return "random"

    async def _came_up(self, point: str, timeout: float) -> bool:
        if point == "after_answer":
            return await _set(self.tap.answered_next(), timeout, self)
        if point == "effect":
            state = self.config.settings.resolved_state_dir
            paid = len(ledger_keys(state))
            return await _until(lambda: len(ledger_keys(state)) > paid, timeout, self, step=0.01)
        if point == "approval_wait":
            return await _until(self._undecided_gate, timeout, self)
        if point == "decision_recorded":
            return await self._decision_recorded(timeout)
        return False

    async def _decision_recorded(self, timeout: float) -> bool:
        async def decided() -> int:
            records = await self.store.list_approvals(status=ApprovalStatus.APPROVED)
            return len(records)

        before = await decided()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.unfinished:
            if await decided() > before:
                return True
            await asyncio.sleep(0.003)
        return False

    def _undecided_gate(self) -> bool:
        return any(g.decided_at is None for g in self.gates.values())


async def _until(
    probe: Callable[[], bool], timeout: float, run: _Run, *, step: float = 0.02
) -> bool:
    """Poll `probe` until it holds (True), or the time is up or no session is left (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.unfinished:
        if probe():
            return True
        await asyncio.sleep(step)
    return False


async def _set(event: asyncio.Event, timeout: float, run: _Run) -> bool:
    """Wait for `event` (returning at once when it is set), or the time or the work is out."""
    deadline = time.monotonic() + timeout
    while not event.is_set() and time.monotonic() < deadline and run.unfinished:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), 0.2)
    return event.is_set()


async def _outcome(
    handle: WorkflowHandle[object, SessionResult],
) -> SessionResult | WorkflowFailureError:
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        return exc


async def run_chaos(config: ChaosConfig) -> ChaosReport:
    """Run the sessions, kill the worker `config.kills` times, and check everything.

    The worker is a subprocess (`python -m orchestrator worker`); the model endpoint is a
    scripted model server in this process, tapped; approvals are decided by this process through
    the same path a person's decision takes.
    """
    settings = config.settings
    rng = random.Random(config.seed)
    plans = {w.plan: load_plan(w.plan) for w in config.workloads}
    tap = ModelTap(create_replay_app(merged_script(config.workloads)), tag_key=TAG)
    began = time.monotonic()
    settings.resolved_state_dir.mkdir(parents=True, exist_ok=True)
    async with (
        LoopbackServer(tap) as replay,
        await Store.open(settings.resolved_database_url) as store,
    ):
        log = config.log or settings.resolved_state_dir / "chaos-worker.log"
        worker = WorkerProcess(settings, f"{replay.url}/v1", log)
        client = await connect(settings)
        runtime = _starter(settings, store) if config.ahead else None
        run = _Run(config, client, store, tap, worker, rng, plans, runtime)
        worker.start()
        approver = asyncio.create_task(run.approve_forever())
        try:
            await _kill_loop(run)
            await run.start_due(config.kills)
            await _settle(run)
        finally:
            approver.cancel()
            tap.release()
            worker.stop()
        report = await _report(run, time.monotonic() - began)
    return report


def _starter(settings: Settings, store: Store) -> Runtime:
    """The runtime a starter holds, as the worker's: the project's models and skills.

    It only resolves setups (no model call, no write): the worker subprocess runs them.
    """
    return Runtime(
        settings=settings,
        store=store,
        models=load_model_registry(settings.resolved_models_file),
        skills=SkillRegistry.load_directory(settings.project_dir / "skills"),
    )


async def _kill_loop(run: _Run) -> None:
    # Each round of len(points) kills tries every point once, in a random order.
    order: list[str] = []
    while len(run.kill_points) < run.config.kills:
        await run.start_due(len(run.kill_points))
        if not run.unfinished:
            break  # every session has started and finished
        if not order:
            order = run.rng.sample(run.config.points, len(run.config.points))
        await run.progress()
        point = await run.reach(order.pop())
        if not run.unfinished:
            continue  # the last live session finished first: start the next one
        run.worker.kill()
        run.tap.release()
        run.kill_points.append(point)
        run.worker.start()


async def _settle(run: _Run) -> None:
    waiters: list[Awaitable[object]] = [s.waiter for s in run.sessions]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(run.config.timeout):
            await asyncio.gather(*waiters)


async def _report(run: _Run, seconds: float) -> ChaosReport:
    ledger = set(ledger_keys(run.config.settings.resolved_state_dir))
    claimed: set[str] = set()
    findings: list[SessionFindings] = []
    for session in run.sessions:
        found = await _findings(run, session, ledger)
        claimed |= found[1]
        findings.append(found[0])
    kill_points: dict[str, int] = {}
    for point in run.kill_points:
        kill_points[point] = kill_points.get(point, 0) + 1
    return ChaosReport(
        seed=run.config.seed,
        runs=len(findings),
        kills=len(run.kill_points),
        kill_points=kill_points,
        worker_starts=run.worker.starts,
        started_ahead=sum(s.ahead for s in run.sessions),
        completed=sum(f.status == "completed" for f in findings),
        failed=sum(f.status == "failed" for f in findings),
        lost=sum(f.status == "lost" for f in findings),
        duplicate_effects=sum(f.duplicate_effects for f in findings),
        missing_effects=sum(max(0, f.expected_effects - f.effects) for f in findings),
        orphan_effects=len(ledger - claimed),
        pin_violations=sum(len(f.pin_violations) for f in findings),
        audit_problems=sum(len(f.audit_problems) for f in findings),
        reruns_after_gate=sum(len(f.reruns_after_gate) for f in findings),
        seconds=seconds,
        sessions=findings,
    )


async def _findings(
    run: _Run, session: _Session, ledger: set[str]
) -> tuple[SessionFindings, set[str]]:
    outcome = session.waiter.result() if session.waiter.done() else None
    if outcome is None:
        status, error = "lost", f"no result within {run.config.timeout:.0f}s after the last kill"
    elif isinstance(outcome, WorkflowFailureError):
        status, error = "failed", str(outcome.cause or outcome)
    elif outcome.status is SessionStatus.COMPLETED:
        status, error = "completed", None
    else:
        status, error = "failed", f"ended {outcome.status.value}"
    events = await run.store.list_events(session.session_id)
    keys = {
        str(e.payload.get("idempotency_key"))
        for e in events
        if e.kind is EventKind.TOOL_CALL and e.payload.get("idempotency_key")
    }
    effects = keys & ledger
    gates = [g for g in run.gates.values() if g.session_id == session.session_id]
    findings = SessionFindings(
        session_id=session.session_id,
        plan=session.plan.name,
        status=status,
        error=error,
        effects=len(effects),
        expected_effects=session.workload.effects,
        pin_violations=pin_violations(events)
        + (
            timeline_violations(outcome.model_timeline)
            if isinstance(outcome, SessionResult)
            else []
        ),
        audit_problems=audit_problems(events, completed=status == "completed"),
        reruns_after_gate=reruns_after_gates(run.tap.requests, gates),
    )
    return findings, effects
