"""A session's fixed cost, A/B between two trees of the runtime, session by session.

Process-level A/B (one bench run per tree, one after the other) cannot see a change of ten
milliseconds on a shared box: the load moves more than that between two runs. Here both
trees run at once, each as a worker process of its own (`PYTHONPATH` picks the tree) on
one tuned dev server, beside bare temporalio (`_bare.py`) in this process, and sessions
alternate between the three, one at a time, in a rotating order. Every session is timed
at the scripted model server, as `step_overhead.py --peers` times it: `1st call` is the
start to the first model request, `end` the last request to the result in hand, `fixed`
the session's wall less the span of its requests. `cpu/session` is the worker process's
CPU over the measured sessions (bare's worker shares this process, so it has none).

    git archive main | tar -x -C /tmp/main-tree
    .venv/bin/python -m compileall -q /tmp/main-tree/orchestrator
    .venv/bin/python bench/fixed_ab.py --a /tmp/main-tree --rounds 3 --sessions 40

With `--concurrency N` each turn starts N sessions of one kind at once (a block) and the
table gives throughput (`steps/s`: the block's rounds over its wall), each session's wall
(start to result) and the worker's CPU per step: requests cannot be told apart per session
then. Bare's worker shares this process with the client and the scripted model, so its
÷ bare there is a rough guide; A against B is the comparison.

`--b` defaults to this repository. The client side (the session's start input) is built
by this tree, so both trees must accept the same `SessionStartInput`.

`--start-in-worker` has each tree's worker process start its own sessions, with the client
its worker polls through and that tree's `start_session`: what a `stack` with its worker
does, and the only way an eager workflow start (the first workflow task handed back in the
start's response, which needs a worker on the starting client) shows. The times are taken
there (`time.monotonic` is one clock for every process of the machine). `--bare-eager`
lets bare temporalio ask for an eager start too (its worker shares this process's client).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _bare import BareActivities, BareSessionInput, StepLoopWorkflow
from _harness import TUNED, BenchDevServer, cpu_seconds, replay_without_nagle
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from orchestrator.client import connect
from orchestrator.logs import configure_logging
from orchestrator.plans.models import AgentStep, Plan
from orchestrator.plugin import PASSTHROUGH_MODULES
from orchestrator.providers.messages import ToolDefinition
from orchestrator.providers.openai import OpenAIProvider
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import (
    Conversation,
    ReplayScript,
    ScriptedModelServer,
    ScriptedToolCall,
    Turn,
)
from orchestrator.service import start_session
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.skills.models import SkillContext
from orchestrator.skills.registry import SkillRegistry
from orchestrator.worker import build_worker

REPO = Path(__file__).resolve().parent.parent
WARMUP = 4
"""Unmeasured sessions of each kind first (one block of them with `--concurrency`)."""
ORDERS = [("A", "B", "bare"), ("B", "A", "bare"), ("bare", "A", "B"), ("bare", "B", "A")]


@dataclass
class Timings:
    """One kind's measured sessions, in milliseconds."""

    fixed: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    """Each session's start to its result in hand."""
    blocks_s: float = 0.0
    """Wall seconds of the measured blocks (one block: `concurrency` sessions at once)."""
    cpu_s: float = 0.0

    def add(self, times: list[list[float]], asked: list[float], *, per_request: bool) -> None:
        """A block's sessions (`[started, done]` each) and its model requests, monotonic.

        Per request only for a block of one session: with more, requests cannot be told
        apart per session.
        """
        started = min(begun for begun, _ in times)
        wall = max(done for _, done in times) - started
        self.walls += [(done - begun) * 1000 for begun, done in times]
        self.blocks_s += wall
        if not per_request:
            return
        first, last = asked[0] - started, asked[-1] - started
        self.first.append(first * 1000)
        self.end.append((wall - last) * 1000)
        self.fixed.append((wall - (last - first)) * 1000)
        self.steps += [(b - a) * 1000 for a, b in itertools.pairwise(asked)]


def bench_plan(rounds: int) -> Plan:
    """The plan every session of ours runs: one agent step of `rounds` tool rounds."""
    step = AgentStep(
        id="work", goal="Look up ticket T-1001.", skills=["tickets.get"], max_rounds=rounds + 1
    )
    return Plan(name="bench", steps=[step])


async def serve_worker(
    address: str, task_queue: str, tree: str, state: str, rounds: str = "0"
) -> None:
    """`--worker`: a session worker on the tree on `PYTHONPATH`, until stdin closes.

    Each line `run N` on stdin starts N sessions at once from this process (its worker's
    client), and answers one line: their `[started, done]` monotonic times, as JSON.
    """
    configure_logging(level="WARNING", fmt="console")
    settings = Settings(project_dir=Path(tree), state_dir=Path(state), temporal_address=address)
    runtime = await Runtime.open(settings)
    plan = bench_plan(int(rounds))
    loop = asyncio.get_running_loop()
    # A stack's starter holds its worker's runtime and hands it over, on a tree that takes
    # it (from generation 4, `patches.OPENING_GENERATION`): its sessions' setup is then
    # resolved at the start, and the run skips its `start_session` local activity.
    ahead: dict[str, Any] = (
        {"runtime": runtime} if "runtime" in inspect.signature(start_session).parameters else {}
    )

    async def one(client: Client) -> list[float]:
        started = time.monotonic()
        how = StartOptions(session_id=f"{task_queue}-{uuid.uuid4().hex[:10]}")
        handle = await start_session(client, plan, {}, how, task_queue=task_queue, **ahead)
        await handle.result()
        return [started, time.monotonic()]

    try:
        client = await connect(settings)
        async with build_worker(client, runtime, task_queue=task_queue):
            print("ready", flush=True)
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                count = int(line.split()[1])
                times = await asyncio.gather(*(one(client) for _ in range(count)))
                print(json.dumps(times), flush=True)
    finally:
        await runtime.close()


def script(rounds: int) -> ReplayScript:
    call = ScriptedToolCall(name="tickets_get", arguments={"ticket_id": "T-1001"})
    turns = [*(Turn(tool_calls=[call]) for _ in range(rounds)), Turn(content="done")]
    return ReplayScript(conversations=[Conversation(name="bench", turns=turns)])


async def run(
    trees: dict[str, Path],
    rounds: int,
    sessions: int,
    concurrency: int = 1,
    *,
    start_in_worker: bool = False,
    bare_eager: bool = False,
) -> dict[str, Timings]:
    configure_logging(level="WARNING", fmt="console")
    timings = {kind: Timings() for kind in ("A", "B", "bare")}
    with tempfile.TemporaryDirectory() as tmp, replay_without_nagle():
        folder = Path(tmp)
        async with ScriptedModelServer(script(rounds)) as replay:
            os.environ["ORCHESTRATOR_REPLAY_URL"] = replay.base_url
            skill = SkillRegistry.load_directory(REPO / "skills").get("tickets.get")
            ctx = SkillContext(
                session_id="bare",
                workflow_id="bare",
                run_id="bare",
                step_id="loop",
                call_id="0",
                idempotency_key="bare",
                attempt=1,
                state_dir=folder / "skills",
            )
            server = BenchDevServer(TUNED, folder / "server")
            async with server, OpenAIProvider(base_url=replay.base_url) as provider:
                settings = Settings(
                    project_dir=REPO, state_dir=folder / "client", temporal_address=server.address
                )
                client = await connect(settings)
                workers: dict[str, subprocess.Popen[str]] = {}
                for kind, tree in trees.items():
                    env = {**os.environ, "PYTHONPATH": str(tree)}
                    argv = [sys.executable, __file__, "--worker", server.address, f"q-{kind}"]
                    workers[kind] = subprocess.Popen(
                        [*argv, str(tree), str(folder / kind), str(rounds)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        env=env,
                        text=True,
                    )
                    stdout = workers[kind].stdout
                    assert stdout is not None
                    line = await asyncio.get_running_loop().run_in_executor(None, stdout.readline)
                    if line.strip() != "ready":
                        raise RuntimeError(f"worker {kind} on {tree} did not start: {line!r}")
                plan = bench_plan(rounds)
                acts = BareActivities(provider, skill, ctx)
                spec = skill.spec
                tools = [
                    ToolDefinition(
                        name=spec.tool_name,
                        description=spec.description,
                        parameters=spec.input_schema,
                    )
                ]
                runner = SandboxedWorkflowRunner(
                    restrictions=SandboxRestrictions.default.with_passthrough_modules(
                        *PASSTHROUGH_MODULES, "_bare"
                    )
                )
                bare = Worker(
                    client,
                    task_queue="q-bare",
                    workflows=[StepLoopWorkflow],
                    activities=[acts.call_model, acts.call_skill],
                    workflow_runner=runner,
                )

                async def one(kind: str) -> list[float]:
                    """One session of `kind`: its start and its result in hand, monotonic."""
                    started = time.monotonic()
                    if kind == "bare":
                        await client.execute_workflow(
                            StepLoopWorkflow.run,
                            BareSessionInput(local=False, max_rounds=rounds + 1, tools=tools),
                            id=f"bare-{uuid.uuid4().hex[:10]}",
                            task_queue="q-bare",
                            request_eager_start=bare_eager,
                        )
                    else:
                        how = StartOptions(session_id=f"{kind}-{uuid.uuid4().hex[:10]}")
                        handle = await start_session(client, plan, {}, how, task_queue=f"q-{kind}")
                        await handle.result()
                    return [started, time.monotonic()]

                async def block(kind: str) -> list[list[float]]:
                    """`concurrency` sessions of `kind` at once, started here or in its worker."""
                    if not start_in_worker or kind not in workers:
                        return list(await asyncio.gather(*(one(kind) for _ in range(concurrency))))
                    process = workers[kind]
                    assert process.stdin is not None and process.stdout is not None
                    process.stdin.write(f"run {concurrency}\n")
                    process.stdin.flush()
                    answer = await asyncio.get_running_loop().run_in_executor(
                        None, process.stdout.readline
                    )
                    times: list[list[float]] = json.loads(answer)
                    return times

                warmup = WARMUP if concurrency == 1 else 1
                async with bare:
                    orders = itertools.cycle(ORDERS)
                    for n in range(sessions + warmup):
                        for kind in next(orders):
                            before = len(replay.requests)
                            pid = workers[kind].pid if kind in workers else None
                            cpu0 = cpu_seconds(pid) if pid is not None else None
                            times = await block(kind)
                            if n < warmup:
                                continue
                            cpu1 = cpu_seconds(pid) if pid is not None else None
                            t = timings[kind]
                            if cpu0 is not None and cpu1 is not None:
                                t.cpu_s += cpu1 - cpu0
                            asked = [r.received_at for r in replay.requests[before:]]
                            t.add(times, asked, per_request=concurrency == 1)
                for process in workers.values():
                    assert process.stdin is not None
                    process.stdin.close()
                    process.wait(timeout=60)
    return timings


def report(timings: dict[str, Timings], rounds: int, sessions: int, concurrency: int) -> None:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"R = {rounds}, {sessions} blocks of {concurrency} session(s) of each kind, interleaved;"
        f" load at the end {load}"
    )
    if concurrency > 1:
        _table(_block_rows(timings, rounds, sessions * concurrency))
        return
    rows: dict[str, dict[str, str]] = {}
    for kind, t in timings.items():
        low, _, high = statistics.quantiles(t.fixed, n=4)
        steps = sorted(t.steps)
        rows[kind] = {
            "fixed": f"{statistics.median(t.fixed):.1f}",
            "fixed p25-p75": f"{low:.0f}-{high:.0f}",
            "1st call": f"{statistics.median(t.first):.1f}",
            "end": f"{statistics.median(t.end):.1f}",
            "step": f"{statistics.median(steps):.1f}",
            "step p95": f"{steps[int(len(steps) * 0.95)]:.1f}",
            "cpu/session": f"{t.cpu_s * 1000 / sessions:.1f}" if kind != "bare" else "-",
        }
    _table(rows)


def _block_rows(
    timings: dict[str, Timings], rounds: int, sessions: int
) -> dict[str, dict[str, str]]:
    """Sessions run `concurrency` at once: throughput and session walls, not per request."""
    rate = {kind: sessions * rounds / t.blocks_s for kind, t in timings.items()}
    rows: dict[str, dict[str, str]] = {}
    for kind, t in timings.items():
        walls = sorted(t.walls)
        steps = sessions * rounds
        rows[kind] = {
            "steps/s": f"{rate[kind]:.1f}",
            "÷ bare": f"{rate[kind] / rate['bare']:.2f}",
            "session p50": f"{statistics.median(walls):.0f}",
            "session p95": f"{walls[int(len(walls) * 0.95)]:.0f}",
            "cpu/step": f"{t.cpu_s * 1000 / steps:.2f}" if kind != "bare" else "-",
        }
    return rows


def _table(rows: dict[str, dict[str, str]]) -> None:
    heads = list(next(iter(rows.values())))
    print(f"{'':6}" + "".join(f"{h:>15}" for h in heads))
    for kind, cells in rows.items():
        print(f"{kind:6}" + "".join(f"{cells[h]:>15}" for h in heads))


def main() -> int:
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(serve_worker(*sys.argv[2:7]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="tree A (say, main extracted)")
    parser.add_argument("--b", type=Path, default=REPO, help="tree B (default: this one)")
    parser.add_argument("--rounds", type=int, default=3, help="tool rounds per session")
    parser.add_argument(
        "--sessions", type=int, default=40, help="measured sessions (blocks) per kind"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="sessions of one kind started at once, a block (default 1: timed per request)",
    )
    parser.add_argument(
        "--start-in-worker",
        action="store_true",
        help="each tree's worker process starts its own sessions (eager start can apply)",
    )
    parser.add_argument(
        "--bare-eager", action="store_true", help="bare temporalio asks for an eager start too"
    )
    args = parser.parse_args()
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    timings = asyncio.run(
        run(
            trees,
            args.rounds,
            args.sessions,
            args.concurrency,
            start_in_worker=args.start_in_worker,
            bare_eager=args.bare_eager,
        )
    )
    report(timings, args.rounds, args.sessions, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
