"""The crash harness in its full form: sessions survive a worker SIGKILLed many times.

Starts its own embedded dev server (SQLite file in a temp folder), then runs
`orchestrator.chaos.run_chaos` on the refund demo and the longer refund-audit plan: the
worker subprocess is killed at random points (during a model call, right after a model
answer, right after a refund is paid, while a session waits for an approval, at a random
moment) and restarted each time. Prints the figures, writes `bench/results/chaos.json`,
exits 1 if any check failed. Ctrl+C or SIGTERM stops the worker and the dev server.

    .venv/bin/python bench/chaos.py --sessions 20 --kills 40 [--seed 1]   # or: make chaos
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from pathlib import Path

from orchestrator.chaos import ChaosConfig, ChaosReport, example_workloads, run_chaos
from orchestrator.devserver import DevServer, free_port
from orchestrator.settings import Settings

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench/results"


async def main(sessions: int, kills: int, seed: int) -> ChaosReport:
    # SIGTERM cancels the run, so the worker and the dev server are stopped on the way out.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        folder = Path(tmp)
        async with DevServer(
            db_file=folder / "temporal.db", port=free_port(), ui_port=None
        ) as server:
            settings = Settings(
                project_dir=REPO,
                state_dir=folder / "state",
                temporal_address=server.address,
                task_queue=f"chaos-{seed}",
            )
            return await run_chaos(
                ChaosConfig(
                    settings=settings,
                    workloads=example_workloads(REPO),
                    sessions=sessions,
                    kills=kills,
                    seed=seed,
                    timeout=600,
                )
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = asyncio.run(main(args.sessions, args.kills, args.seed))
    print(report.summary())
    for line in report.problems():
        print("PROBLEM", line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "chaos.json").write_text(json.dumps(report.model_dump(mode="json"), indent=1))
    sys.exit(0 if report.ok else 1)
