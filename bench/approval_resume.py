"""Approval resume latency: from a decision being committed to the next activity starting.

Starts N sessions of a plan whose first step is an approval gate (then a skill step), lets
every one reach its wait, then decides them one at a time through the same service call the
API and inbox use. For each it takes, on this machine's clock, the moment the
`decide_approval` update is sent and `decided_at`, which the activity the workflow
schedules next (`record_approval_decision`) writes as it starts. The update is committed
inside that interval, so the figure is an upper bound of commit-to-next-activity (the
update's own response arrives only after the workflow task that scheduled the activity,
often after the activity has started, so it cannot serve as the start).

The worker is warm (it has already run every session up to its wait). Prints JSON with
p50/p95/max. Target: p95 <= 100 ms.

    .venv/bin/python bench/approval_resume.py [--sessions 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC
from pathlib import Path

from orchestrator.client import connect
from orchestrator.devserver import DevServer, free_port
from orchestrator.plans import parse_plan
from orchestrator.runtime import Runtime
from orchestrator.service import decide_approval, start_session
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.testing import wait_for_pending_approval
from orchestrator.worker import build_worker

REPO = Path(__file__).resolve().parent.parent
PLAN = parse_plan(
    """
name: gate-then-lookup
steps:
  - id: gate
    type: approval
    summary: Look up ticket {{ input.ticket_id }}?
  - id: lookup
    type: skill
    skill: tickets.get
    arguments: {ticket_id: "{{ input.ticket_id }}"}
""",
    "gate-then-lookup.yaml",
)


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def run(sessions: int) -> dict[str, object]:
    """Measure `sessions` approvals on a fresh dev server and a warm worker."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = DevServer(db_file=folder / "temporal.db", port=free_port(), ui_port=None)
        await server.start()
        try:
            settings = Settings(
                project_dir=REPO,
                state_dir=folder / "state",
                temporal_address=server.address,
                task_queue="bench-approvals",
            )
            client = await connect(settings)
            runtime = await Runtime.open(settings)
            try:
                async with build_worker(client, runtime):
                    handles = await asyncio.gather(
                        *(
                            start_session(
                                client,
                                PLAN,
                                {"ticket_id": "T-1001"},
                                StartOptions(requested_by="bench"),
                                task_queue=settings.task_queue,
                            )
                            for _ in range(sessions)
                        )
                    )
                    latencies: list[float] = []
                    for handle in handles:
                        session_id = handle.id.removeprefix("session-")
                        pending = await wait_for_pending_approval(runtime.store, session_id)
                        sent = time.time()
                        await decide_approval(
                            client,
                            runtime.store,
                            pending.approval_id,
                            approve=True,
                            decided_by="bencher",
                        )
                        await handle.result()
                        record = await runtime.store.get_approval(pending.approval_id)
                        assert record is not None and record.decided_at is not None
                        resumed = record.decided_at.replace(tzinfo=UTC).timestamp()
                        latencies.append(resumed - sent)
            finally:
                await runtime.close()
        finally:
            await server.stop()
    return {
        "sessions": sessions,
        "decision_sent_to_next_activity_start": _summary(latencies),
        "target_p95_ms": 100,
    }


def main() -> None:
    """Parse the options, run, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.sessions)), indent=2))


if __name__ == "__main__":
    main()
