"""What the workflow sandbox costs per session, and what it does to 50 sessions started at once.

1. CPU of one new sandbox for `AgentSessionWorkflow` (`prepare_workflow` in a loop), with
   the pass-through list before and after the session's parts joined it (`SESSION_PARTS`),
   with and without the package's bytecode (without: an empty `sys.pycache_prefix`, as
   with PYTHONDONTWRITEBYTECODE and an editable install). Each case in a child process.
2. `--sessions N` sessions of 3 rounds started at once on the tuned dev server, "before"
   (old list, no bytecode, calls heartbeating at start) and "after" (as shipped),
   alternated `--repeat` times: the workflow task durations read back from their histories,
   and how many took over 5 s (the SDK's TMPRL1104 warning).

    .venv/bin/python bench/sandbox.py --sessions 50 --repeat 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

import step_overhead as so
from _harness import TUNED, BenchDevServer, replay_without_nagle
from temporalio import workflow
from temporalio.client import Client
from temporalio.plugin import SimplePlugin
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from orchestrator.client import connect
from orchestrator.logs import configure_logging
from orchestrator.plans.models import AgentStep, Plan
from orchestrator.plugin import PASSTHROUGH_MODULES, SESSION_PARTS
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ScriptedModelServer
from orchestrator.service import start_session
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.settings import Settings
from orchestrator.worker import build_worker

CASES = ("old list, no .pyc", "old list", "new list, no .pyc", "new list")


def runner(old: bool) -> SandboxedWorkflowRunner:
    modules = [m for m in PASSTHROUGH_MODULES if not (old and m in SESSION_PARTS)]
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules)
    )


async def sandbox_cpu(case: str, folder: Path) -> None:
    """Print the median CPU ms of a new sandbox (child process: one case)."""
    if "no .pyc" in case:
        sys.pycache_prefix, sys.dont_write_bytecode = str(folder), True
    sandboxes = runner(case.startswith("old"))
    definition = workflow._Definition.must_from_class(AgentSessionWorkflow)
    times: list[float] = []
    for _ in range(31):
        started = time.process_time()
        sandboxes.prepare_workflow(definition)
        times.append((time.process_time() - started) * 1000)
    print(f"{statistics.median(times[1:]):.1f} {min(times[1:]):.1f}")


async def at_once(client: Client, runtime: Runtime, label: str, n: int, folder: Path) -> str:
    plan = Plan(
        name=so.PLAN_NAME,
        steps=[AgentStep(id=so.STEP_ID, goal=so.GOAL, skills=[so.SKILL], max_rounds=4)],
    )
    before = label == "before"
    plugins = [SimplePlugin("bench.old-sandbox", workflow_runner=runner(True))] if before else []
    queue = f"sandbox-{label}-{uuid.uuid4().hex[:6]}"
    with (
        so.no_bytecode(folder / "no-pyc") if before else nullcontext(),
        so.beating_at_start() if before else nullcontext(),
    ):
        async with build_worker(client, runtime, task_queue=queue, plugins=plugins):
            warm = await start_session(client, plan, {}, task_queue=queue)
            await warm.result()
            started = time.perf_counter()
            handles = await asyncio.gather(
                *(start_session(client, plan, {}, task_queue=queue) for _ in range(n))
            )
            await asyncio.gather(*(h.result() for h in handles))
            wall = time.perf_counter() - started
    tasks: list[float] = []
    first: list[float] = []
    for handle in handles:
        history = await client.get_workflow_handle(handle.id).fetch_history()
        opened: tuple[float, int] | None = None
        for event in history.events:
            kind = event.WhichOneof("attributes")
            at = event.event_time.ToDatetime().timestamp()
            if kind == "workflow_task_started_event_attributes":
                opened = (at, event.event_id)
            elif kind == "workflow_task_completed_event_attributes" and opened is not None:
                tasks.append(at - opened[0])
                if opened[1] == 3:
                    first.append(at - opened[0])
    tasks.sort()
    p95 = tasks[min(len(tasks) - 1, int(0.95 * len(tasks)))]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (
        f"| {label} | {wall:.1f} | {len(tasks)} | {statistics.median(tasks) * 1000:.0f} |"
        f" {p95 * 1000:.0f} | {tasks[-1] * 1000:.0f} | {sum(t > 5 for t in tasks)} |"
        f" {statistics.median(first) * 1000:.0f} | {load} |"
    )


async def main(args: argparse.Namespace) -> None:
    configure_logging(level="ERROR", fmt="console")
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp, replay_without_nagle():
        folder = Path(tmp)
        print("| sandbox | CPU per new sandbox, median ms | min ms |\n|---|---:|---:|")
        for _ in range(args.repeat):
            for case in CASES:
                out = subprocess.run(
                    [sys.executable, __file__, "--case", case, "--folder", str(folder / "pyc")],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()
                print(f"| {case} | {out[0]} | {out[1]} |")
        if not args.sessions:
            return
        print(
            f"\n| {args.sessions} at once | wall s | workflow tasks | median ms | p95 ms | max ms"
            " | over 5 s | first task median ms | load |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        async with ScriptedModelServer(so.model_script(3)) as replay:
            os.environ["ORCHESTRATOR_REPLAY_URL"] = replay.base_url
            settings = Settings(project_dir=Path.cwd(), state_dir=folder / "state")
            runtime = await Runtime.open(settings)
            try:
                async with BenchDevServer(TUNED, folder / "server") as server:
                    client = await connect(
                        settings.model_copy(update={"temporal_address": server.address})
                    )
                    for _ in range(args.repeat):
                        for label in ("before", "after"):
                            print(await at_once(client, runtime, label, args.sessions, folder))
            finally:
                await runtime.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.case:
        asyncio.run(sandbox_cpu(parsed.case, parsed.folder))
    else:
        asyncio.run(main(parsed))
