"""A session's start, with and without the worker's runtime at the starter (generation 4).

Same tree, same process, same worker: one-round sessions alternate between a start that
hands `service.start_session` the worker's runtime (its setup resolved at the start, no
`start_session` local activity: `patches.OPENING_GENERATION`) and one that does not (the
local activity resolves it and writes the row). Times are read from each session's
history (the server's clocks) and the wall from the starter; medians. This isolates the
path from the tree, where `fixed_ab.py` compares two trees.

    .venv/bin/python bench/start_paths.py 50
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _harness import TUNED, BenchDevServer, replay_without_nagle
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from orchestrator.client import connect
from orchestrator.logs import configure_logging
from orchestrator.plans.models import AgentStep, Plan
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import Conversation, ReplayScript, ScriptedModelServer, Turn
from orchestrator.service import start_session
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.worker import build_worker

REPO = Path(__file__).resolve().parent.parent
WARMUP = 4
KINDS = ("without", "with")


def _ms(a: HistoryEvent, b: HistoryEvent) -> float:
    return (b.event_time.ToDatetime() - a.event_time.ToDatetime()).total_seconds() * 1000


def _times(events: list[HistoryEvent], wall: float) -> dict[str, float]:
    """Where a one-round session's time went, from its history."""

    def all_of(kind: EventType.ValueType) -> list[HistoryEvent]:
        return [e for e in events if e.event_type == kind]

    started = all_of(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
    done = all_of(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    call = all_of(EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)[0]
    answered = all_of(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)[0]
    return {
        "1st task done": _ms(events[0], done[0]),
        "call started": _ms(events[0], call),
        "call": _ms(call, answered),
        "last task": _ms(started[-1], done[-1]),
        "events": float(len(events)),
        "wall": wall,
    }


async def main(sessions: int) -> None:
    configure_logging(level="WARNING", fmt="console")
    plan = Plan(name="bench", steps=[AgentStep(id="work", goal="Say done.", max_rounds=2)])
    script = ReplayScript(conversations=[Conversation(name="bench", turns=[Turn(content="done")])])
    rows: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as tmp, replay_without_nagle():
        folder = Path(tmp)
        async with ScriptedModelServer(script) as replay:
            os.environ["ORCHESTRATOR_REPLAY_URL"] = replay.base_url
            async with BenchDevServer(TUNED, folder / "server") as server:
                settings = Settings(
                    project_dir=REPO, state_dir=folder / "state", temporal_address=server.address
                )
                runtime = await Runtime.open(settings)
                try:
                    client = await connect(settings)
                    async with build_worker(client, runtime, task_queue="start-paths"):
                        for turn in range(sessions + WARMUP):
                            for kind in KINDS if turn % 2 else reversed(KINDS):
                                begun = time.monotonic()
                                handle = await start_session(
                                    client,
                                    plan,
                                    {},
                                    StartOptions(session_id=uuid.uuid4().hex[:12]),
                                    task_queue="start-paths",
                                    runtime=runtime if kind == "with" else None,
                                )
                                await handle.result()
                                wall = (time.monotonic() - begun) * 1000
                                if turn >= WARMUP:
                                    history = await handle.fetch_history()
                                    rows[kind].append(_times(list(history.events), wall))
                finally:
                    await runtime.close()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"one-round sessions, {sessions} of each, alternating; medians, ms; load {load}")
    columns = list(rows["with"][0])
    print(f"{'runtime at the start':22}" + "".join(f"{c:>15}" for c in columns))
    for kind in KINDS:
        medians = [statistics.median(r[c] for r in rows[kind]) for c in columns]
        print(f"{kind:22}" + "".join(f"{m:>15.1f}" for m in medians))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40))
