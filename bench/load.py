"""Load: many concurrent sessions on the embedded server, none lost, beside LangGraph.

Every session runs the load plan (`tests/reliability/load_project/`): one agent step whose
tool loop first calls a slow lookup (`--tool-delay-ms`), then applies an effect, then
answers. Most sessions (`--gated-fraction`) apply an amount over the contract's approval
threshold, so they park on an approval; the rest run straight through. Once every gated
session waits, the driver approves them all and lets every session finish. Then it checks
that each started session reached COMPLETED (in Temporal and in the store) and that its
effect is in the tool's ledger exactly once (`orchestrator.loadgen`).

The same plan shape runs on LangGraph (`_langgraph_load.py`): the same replay model over
HTTP, the same tool functions, `interrupt()` for the approval, `AsyncSqliteSaver` at
`durability="sync"`. Each system runs in its own child process, one after the other, so
its peak memory (VmHWM) is its own: for ours the worker process (worker, scripted model server,
driver) plus the Temporal dev server; for LangGraph its one process (graph, scripted model server,
driver).

The third system, `bare` (`_bare_load.py`), is the floor: the same plan as one minimal
temporalio workflow per session (the model call and each tool call an activity, the gate a
signal), default options, on the same tuned dev server with the same model and tools. Its
CPU is counted as ours is: its process plus its own dev server.

Reported per system: sessions started, completed and lost; gated sessions parked at once;
steps per second and sessions per second over the whole run; step latency (a step is one
round of the tool loop, from one model-call completion to the next; the round holding the
approval counts from the moment the decision was sent); per-step overhead (the step less
the slow tool's designed time); peak RSS. Ratios: ours / LangGraph, ours / bare, bare / LangGraph.

    .venv/bin/python bench/load.py                   # 100 sessions, all three systems
    .venv/bin/python bench/load.py --sessions 500    # the full run (make bench-load)

Writes `bench/results/load.json` and prints a table. Exits 1 if our runtime (or bare
Temporal) lost a session or applied an effect twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from _harness import TUNED, BenchDevServer, cpu_seconds, machine
from _load_peers import PeerLoad
from rich.console import Console
from rich.table import Table
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from orchestrator.heap import settle_heap
from orchestrator.loadgen import (
    LoadReport,
    LoadSettings,
    SessionSpec,
    load_scenario_plan,
    model_script,
    run_runtime_load,
    session_specs,
)
from orchestrator.logs import configure_logging
from orchestrator.scripted_model import ScriptedModelServer
from orchestrator.service import workflow_id_for
from orchestrator.settings import Settings
from orchestrator.stack import embedded_stack

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "tests" / "reliability" / "load_project"
SYSTEMS = ("orchestrator", "bare", "langgraph")


@dataclass(frozen=True)
class Args:
    """The command line, typed."""

    sessions: int
    gated_fraction: float
    tool_delay_ms: int
    concurrency: int
    timeout_s: float
    systems: list[str]
    json: Path
    phase: str | None
    phase_out: Path | None

    @property
    def gated(self) -> int:
        return round(self.sessions * self.gated_fraction)

    def load_settings(self) -> LoadSettings:
        return LoadSettings(
            tool_delay_ms=self.tool_delay_ms,
            concurrency=self.concurrency,
            timeout_s=self.timeout_s,
        )


def parse_args(argv: Sequence[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description="Concurrent-session load benchmark.")
    parser.add_argument("--sessions", type=int, default=100, help="sessions per system")
    parser.add_argument(
        "--gated-fraction", type=float, default=0.8, help="share that parks on an approval"
    )
    parser.add_argument("--tool-delay-ms", type=int, default=500, help="the slow tool's time")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="client calls in flight (starts, decisions)"
    )
    parser.add_argument(
        "--timeout-s", type=float, default=900, help="longest to park, and again to finish"
    )
    parser.add_argument(
        "--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), help="what to run"
    )
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/load.json")
    parser.add_argument("--phase", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--phase-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions must be positive")
    if not 0 <= args.gated_fraction <= 1:
        parser.error("--gated-fraction must be between 0 and 1")
    if not 0 <= args.tool_delay_ms <= 60_000:
        parser.error("--tool-delay-ms must be between 0 and 60000")
    if args.concurrency < 1:
        parser.error("--concurrency must be positive")
    return Args(**vars(args))


# ---- memory -------------------------------------------------------------------------


def _status_kb(pid: int | None, field: str) -> float | None:
    """A `/proc/<pid>/status` field in kB (VmRSS now, VmHWM the peak), or None."""
    try:
        text = Path(f"/proc/{pid or 'self'}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return None


def memory_mb(pids: dict[str, int | None], field: str) -> dict[str, float | None]:
    """One field per named process, in MiB, and their total."""
    out: dict[str, float | None] = {}
    for name, pid in pids.items():
        kb = _status_kb(pid, field)
        out[name] = None if kb is None else round(kb / 1024, 1)
    out["total"] = round(sum(v for v in out.values() if v is not None), 1)
    return out


def cpu_s(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds used so far by each named process (None: this one)."""
    return {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}


def usage(
    pids: dict[str, int | None], before: dict[str, float], after: dict[str, float], steps: int
) -> dict[str, object]:
    """CPU used from `before` to `after` per process and in all, and per step (ms)."""
    used = {name: round(after[name] - before[name], 2) for name in pids}
    total = sum(used.values())
    return {
        "cpu_s": {**used, "total": round(total, 2)},
        "cpu_ms_per_step": round(total * 1000 / max(steps, 1), 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


async def history_shape(client: Client, workflow_id: str) -> dict[str, int]:
    """Event counts of one session's history: what the server stored for it."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    counts = Counter(
        EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower() for e in history.events
    )
    return {"events": len(history.events), **dict(sorted(counts.items()))}


async def task_trouble(client: Client, workflow_ids: Sequence[str]) -> dict[str, int]:
    """Workflow tasks that timed out or failed over every session: CPU spent twice.

    A workflow task the worker does not finish within its timeout (10 s) is handed out
    again, and the worker replays the history to redo it.
    """
    gate = asyncio.Semaphore(16)
    totals: Counter[str] = Counter()

    async def one(workflow_id: str) -> None:
        async with gate:
            shape = await history_shape(client, workflow_id)
        for kind in ("workflow_task_timed_out", "workflow_task_failed"):
            totals[kind] += shape.get(kind, 0)

    await asyncio.gather(*(one(wid) for wid in workflow_ids))
    return {kind: totals[kind] for kind in ("workflow_task_timed_out", "workflow_task_failed")}


def checkpoint_shape(db: Path, thread_id: str) -> dict[str, int]:
    """Rows LangGraph's checkpointer stored for one thread: its durable writes."""
    conn = sqlite3.connect(db)
    try:
        rows = {
            table: conn.execute(
                f"SELECT count(*) FROM {table} WHERE thread_id = ?", (thread_id,)
            ).fetchone()[0]
            for table in ("checkpoints", "writes")
        }
    finally:
        conn.close()
    return rows


class Meter:
    """A run's processes measured: CPU from the first start until every session ended, memory
    with every gated session parked and at the peak.

    The CPU window closes when the last session ended (`ended`, called by each driver before
    it checks the outcome), so the benchmark's own verification afterwards (our driver reads
    every session's result, audit trail and ledger; LangGraph's reads every thread's state)
    is not counted as the system's work.
    """

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.figures: dict[str, object] = {}
        self.before = cpu_s(pids)
        self.after: dict[str, float] | None = None

    async def parked(self) -> None:
        """Called once every gated session waits for its approval."""
        self.figures["rss_parked_mb"] = memory_mb(self.pids, "VmRSS")

    async def ended(self) -> None:
        """Called once every session has ended, before the outcome is checked."""
        self.after = cpu_s(self.pids)
        self.figures["peak_rss_mb"] = memory_mb(self.pids, "VmHWM")

    def result(self, report: LoadReport) -> dict[str, object]:
        """The memory and CPU figures (taken now if the driver never said it ended)."""
        if self.after is None:
            self.after = cpu_s(self.pids)
            self.figures["peak_rss_mb"] = memory_mb(self.pids, "VmHWM")
        return {
            "memory": self.figures,
            "cpu": usage(self.pids, self.before, self.after, report.steps),
        }


async def on_temporal(
    client: Client,
    report: LoadReport,
    specs: Sequence[SessionSpec],
    meter: Meter,
    workflow_id: Callable[[str], str],
) -> dict[str, object]:
    """A Temporal run's figures: memory and CPU, then what its histories hold."""
    gated = next(s for s in specs if s.mode == "gated")
    return {
        "report": asdict(report),
        **meter.result(report),
        "one_gated_session": await history_shape(client, workflow_id(gated.session_id)),
        "workflow_tasks": await task_trouble(client, [workflow_id(s.session_id) for s in specs]),
    }


# ---- one system per process -----------------------------------------------------------


async def phase_orchestrator(args: Args, folder: Path) -> dict[str, object]:
    """Our runtime: a headless dev server (the flags `orchestrator dev` uses) and the stack."""
    plan = load_scenario_plan(PROJECT)
    specs = session_specs(args.sessions, args.gated, prefix=f"load-{uuid.uuid4().hex[:6]}")
    async with (
        ScriptedModelServer(model_script(args.tool_delay_ms)) as replay,
        BenchDevServer(TUNED, folder / "temporal") as server,
    ):
        os.environ["ORCHESTRATOR_REPLAY_URL"] = replay.base_url
        settings = Settings(
            project_dir=PROJECT,
            state_dir=folder / "state",
            temporal_address=server.address,
            task_queue=f"load-{uuid.uuid4().hex[:8]}",
            metrics_port=None,
            log_level="WARNING",
        )
        async with embedded_stack(settings) as stack:
            # As `orchestrator dev` and `orchestrator worker` do once they are up.
            settle_heap()
            meter = Meter({"worker": None, "server": server.pid})
            report = await run_runtime_load(
                stack.client,
                stack.runtime.store,
                plan,
                specs,
                task_queue=settings.task_queue,
                skill_state_dir=stack.runtime.skill_state_dir,
                settings=args.load_settings(),
                on_parked=meter.parked,
                on_ended=meter.ended,
            )
            return await on_temporal(stack.client, report, specs, meter, workflow_id_for)


def peer_load(args: Args, specs: Sequence[SessionSpec], url: str, folder: Path) -> PeerLoad:
    """A peer's run of the load plan on these sessions, the model at `url`."""
    return PeerLoad(
        plan=load_scenario_plan(PROJECT),
        specs=specs,
        scripted_url=url,
        project_dir=PROJECT,
        state_dir=folder / "state",
        settings=args.load_settings(),
    )


async def phase_bare(args: Args, folder: Path) -> dict[str, object]:
    """Bare temporalio (`_bare_load.py`): the same plan, server, model and tools, no runtime."""
    from _bare_load import run_bare_load

    specs = session_specs(args.sessions, args.gated, prefix=f"bare-{uuid.uuid4().hex[:6]}")
    async with (
        ScriptedModelServer(model_script(args.tool_delay_ms)) as replay,
        BenchDevServer(TUNED, folder / "temporal") as server,
    ):
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        load = peer_load(args, specs, replay.base_url, folder)
        meter = Meter({"worker": None, "server": server.pid})
        report = await run_bare_load(
            client, replace(load, on_parked=meter.parked, on_ended=meter.ended)
        )
        return await on_temporal(client, report, specs, meter, lambda sid: sid)


async def phase_langgraph(args: Args, folder: Path) -> dict[str, object]:
    """LangGraph with AsyncSqliteSaver at durability="sync", same model and tools."""
    from _langgraph_load import run_langgraph_load

    specs = session_specs(args.sessions, args.gated, prefix=f"lg-{uuid.uuid4().hex[:6]}")
    async with ScriptedModelServer(model_script(args.tool_delay_ms)) as replay:
        load = peer_load(args, specs, replay.base_url, folder)
        meter = Meter({"process": None})
        hooks = replace(load, on_parked=meter.parked, on_ended=meter.ended)
        report = await run_langgraph_load(hooks)
    gated = next(s for s in specs if s.mode == "gated")
    shape = checkpoint_shape(folder / "state" / "checkpoints.db", gated.session_id)
    return {"report": asdict(report), **meter.result(report), "one_gated_session": shape}


async def run_phase(args: Args) -> None:
    assert args.phase is not None and args.phase_out is not None
    configure_logging(level="WARNING", fmt="console")
    with tempfile.TemporaryDirectory(prefix=f"bench-load-{args.phase}-") as tmp:
        phases = {
            "orchestrator": phase_orchestrator,
            "bare": phase_bare,
            "langgraph": phase_langgraph,
        }
        result = await phases[args.phase](args, Path(tmp))
    args.phase_out.write_text(json.dumps(result, indent=2))


async def run_child(args: Args, system: str, out: Path) -> dict[str, object]:
    """Run one system in a fresh Python process and read what it measured."""
    argv = [sys.executable, __file__, "--phase", system, "--phase-out", str(out)]
    argv += ["--sessions", str(args.sessions), "--gated-fraction", str(args.gated_fraction)]
    argv += ["--tool-delay-ms", str(args.tool_delay_ms), "--concurrency", str(args.concurrency)]
    argv += ["--timeout-s", str(args.timeout_s)]
    log = args.json.with_name(f"load-{system}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    # Bytecode as a deployment has it (pip compiles it at install): the sandbox imports the
    # session workflow's module afresh for every run, and with PYTHONDONTWRITEBYTECODE set
    # (as on the bench box) in a tree never compiled, it compiled that source every time
    # (1.1 ms per step at 200 sessions, charged to ours alone: the peers import nothing).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with log.open("w") as stderr:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=stderr, stderr=stderr, env=env)
        if await proc.wait() != 0:
            raise SystemExit(f"the {system} run failed (exit {proc.returncode}); see {log}")
    result: dict[str, object] = json.loads(out.read_text())
    # The SDK warns of each workflow task over 5 s, from its poll to its answer: queued in a
    # busy worker, or kept open by slow local activities. Counted, with the worst ones.
    result.update(slow_tasks(log.read_text()))
    return result


_SLOW_TASK = re.compile(r"\[TMPRL1104\] [^:\s]+:(\d+):(\d+)")
_TASK_MS = re.compile(r"workflow_task_duration=(\d+)")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
"""The SDK colours its log's field names: `\\W+` once matched the `0` of a colour code, so
`max_ms` said 0 until 2026-12-08."""


def slow_tasks(log: str) -> dict[str, object]:
    """The SDK's over-5-s workflow task warnings in a log: how many, which, how long.

    `event_id` is where in its history the task started (3 is a session's first task), so
    the counts by event id tell the first task of a session (start bookkeeping run as local
    activities) from later ones.
    """
    lines = [_COLOUR.sub("", line) for line in log.splitlines() if "TMPRL1104" in line]
    by_event: Counter[str] = Counter()
    durations: list[int] = []
    for line in lines:
        if task := _SLOW_TASK.search(line):
            by_event[task.group(1)] += 1
        if duration := _TASK_MS.search(line):
            durations.append(int(duration.group(1)))
    return {
        "slow_workflow_tasks": len(lines),
        "slow_workflow_task_detail": {
            "by_event_id": dict(by_event.most_common(8)),
            "max_ms": max(durations, default=None),
            "example": lines[0][-400:] if lines else None,
        },
    }


# ---- report -------------------------------------------------------------------------


def _get(result: dict[str, object], path: str) -> object:
    value: object = result
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


ROWS = [
    ("sessions started", "report.started", None),
    ("completed", "report.completed", None),
    ("lost (must be 0)", "report.lost", None),
    ("gated, parked at once", "report.parked_at_once", None),
    ("peak live sessions", "report.peak_live", None),
    ("effect exactly once", "report.effects_once", None),
    ("duplicate effects (must be 0)", "report.duplicate_effects", None),
    ("retried effect calls", "report.retried_invocations", None),
    ("driver reads retried", "report.driver_retries", None),
    ("wall s", "report.wall_s", None),
    ("to all parked s", "report.to_parked_s", None),
    ("steps", "report.steps", None),
    ("steps / s", "report.steps_per_s", "higher"),
    ("sessions / s", "report.sessions_per_s", "higher"),
    ("step p50 ms", "report.step.p50_ms", "lower"),
    ("step p95 ms", "report.step.p95_ms", "lower"),
    ("overhead / step p50 ms", "report.overhead.p50_ms", "lower"),
    ("overhead / step p95 ms", "report.overhead.p95_ms", "lower"),
    ("CPU ms / step (all processes)", "cpu.cpu_ms_per_step", "lower"),
    ("load average after", "cpu.load_average", None),
    ("workflow tasks over 5 s", "slow_workflow_tasks", None),
    ("workflow tasks timed out", "workflow_tasks.workflow_task_timed_out", None),
    ("RSS with all parked MiB", "memory.rss_parked_mb.total", "lower"),
    ("peak RSS MiB", "memory.peak_rss_mb.total", "lower"),
]


SHORT = {"orchestrator": "ours", "bare": "bare", "langgraph": "LG"}
PAIRS = (("orchestrator", "langgraph"), ("orchestrator", "bare"), ("bare", "langgraph"))
"""The ratios reported, each `a / b`, for the pairs both run: ours over LangGraph, what our
runtime adds to bare Temporal, and bare Temporal over LangGraph (the floor of any runtime on
Temporal)."""


def ratios(results: dict[str, dict[str, object]]) -> dict[str, dict[str, float | None]]:
    """`a / b` for every measured figure of each pair that ran (under 1 is less of it)."""
    out: dict[str, dict[str, float | None]] = {}
    for a, b in PAIRS:
        if a not in results or b not in results:
            continue
        pair: dict[str, float | None] = {}
        for _, path, better in ROWS:
            if better is None:
                continue
            mine, theirs = _get(results[a], path), _get(results[b], path)
            ok = isinstance(mine, int | float) and isinstance(theirs, int | float) and theirs
            pair[path] = round(mine / theirs, 3) if ok else None  # type: ignore[operator]
        out[f"{SHORT[a]}/{SHORT[b]}"] = pair
    return out


def print_table(
    console: Console,
    results: dict[str, dict[str, object]],
    rel: dict[str, dict[str, float | None]],
) -> None:
    table = Table(title="Load: concurrent sessions, approvals, slow tool")
    table.add_column("figure")
    for system in results:
        table.add_column(system, justify="right")
    for pair in rel:
        table.add_column(pair, justify="right")
    for label, path, _ in ROWS:
        cells = ["-" if (v := _get(results[s], path)) is None else str(v) for s in results]
        for pair in rel.values():
            ratio = pair.get(path)
            cells.append("" if ratio is None else f"{ratio:.2f}")
        table.add_row(label, *cells)
    console.print(table)
    for system, result in results.items():
        console.print(f"{system}, one gated session stored: {result.get('one_gated_session')}")
        errors = _get(result, "report.errors")
        if errors:
            console.print(f"[red]{system} errors:[/red] {errors}")


async def run(args: Args) -> int:
    console = Console(width=None if sys.stdout.isatty() else 120)
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        for system in args.systems:
            console.print(f"running {args.sessions} sessions ({args.gated} gated) on {system} ...")
            started = time.perf_counter()
            results[system] = await run_child(args, system, Path(tmp) / f"{system}.json")
            console.print(f"  done in {time.perf_counter() - started:.0f} s")
    rel = ratios(results)
    print_table(console, results, rel)
    document = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": await machine(),
        "parameters": {
            "sessions": args.sessions,
            "gated": args.gated,
            "tool_delay_ms": args.tool_delay_ms,
            "concurrency": args.concurrency,
        },
        "step": "one round of the tool loop: model-call completion to the next; the round"
        " holding the approval counts from the moment the decision was sent",
        "results": results,
        "ratios": rel,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"wrote {args.json}")
    durable = [results[s] for s in ("orchestrator", "bare") if s in results]
    if any(_get(r, "report.lost") or _get(r, "report.duplicate_effects") for r in durable):
        console.print("[red]sessions lost or effects duplicated[/red]")
        return 1
    return 0


def main() -> None:
    args = parse_args()
    if args.phase is not None:
        asyncio.run(run_phase(args))
        return
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
