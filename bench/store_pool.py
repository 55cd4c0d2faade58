"""The store's connection pool under many concurrent sessions: the store's sizing
(`orchestrator.store._engine.STORE_POOL`, SQLAlchemy's 5 + 10 overflow) beside a larger one.

Each simulated session does what the worker's activities do to the store per step: append
an audit event (per-session lock, next `seq`) and update the session row. N sessions run at
once (as the worker runs up to 100 activities and 100 local activities at once), R steps
each. Both pool sizings run in the same process, interleaved, on the same database.

    .venv/bin/python bench/store_pool.py [--sessions 50 200] [--steps 10] [--repeat 3]
        [--pool 10 30] [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/scratch]

Reported per backend, sizing and N: store operations per second, p50 / p95 of one
operation (pool wait included), and operations that failed (a pool checkout that waited
out its timeout, or a locked database). Writes `bench/results/store_pool.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.exceptions import StoreError
from orchestrator.store import AuditEvent, EventKind, Store
from orchestrator.store._engine import STORE_POOL, PoolSize
from orchestrator.store.records import SessionRecord

RESULTS = Path(__file__).parent / "results"


async def _session(store: Store, prefix: str, n: int, steps: int, times: list[float]) -> int:
    session_id = f"{prefix}-{n}"
    failed = 0
    now = datetime.now(UTC)
    await store.record_session_start(
        SessionRecord(
            session_id=session_id,
            workflow_id=f"session-{session_id}",
            run_id="run",
            plan_name="bench",
            plan_version="1",
            started_at=now,
        )
    )
    for step in range(steps):
        for op in ("event", "row"):
            began = time.perf_counter()
            try:
                if op == "event":
                    await store.append_event(
                        AuditEvent(
                            event_key=f"session-{session_id}:s:{step}",
                            session_id=session_id,
                            workflow_id=f"session-{session_id}",
                            run_id="run",
                            kind=EventKind.MODEL_CALL,
                            payload={"round": step},
                            created_at=datetime.now(UTC),
                        )
                    )
                else:
                    await store.update_session(session_id, input_tokens=step)
            except StoreError:
                failed += 1
            times.append(time.perf_counter() - began)
    return failed


async def _run(url: str, pool: PoolSize, sessions: int, steps: int) -> dict[str, float]:
    async with await Store.open(url, pool=pool) as store:
        prefix = uuid.uuid4().hex[:8]
        times: list[float] = []
        began = time.perf_counter()
        failed = await asyncio.gather(
            *(_session(store, prefix, n, steps, times) for n in range(sessions))
        )
        wall = time.perf_counter() - began
    ordered = sorted(times)
    return {
        "ops_per_s": round(len(times) / wall, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 1),
        "failed": sum(failed),
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        urls = {"sqlite": f"sqlite+aiosqlite:///{Path(folder) / 'store.db'}"}
        if args.postgres:
            urls["postgresql"] = args.postgres
        for backend, url in urls.items():
            await (await Store.open(url)).close()  # migrate once
            for sessions in args.sessions:
                larger = PoolSize(size=args.pool[0], overflow=args.pool[1])
                runs: dict[str, list[dict[str, float]]] = {"store": [], "larger": []}
                for _ in range(args.repeat):  # interleaved: the box is shared and noisy
                    for name, pool in (("store", STORE_POOL), ("larger", larger)):
                        runs[name].append(await _run(url, pool, sessions, args.steps))
                for name, results in runs.items():
                    best = {k: statistics.median(r[k] for r in results) for k in results[0]}
                    out[f"{backend} {name} n={sessions}"] = best
                    print(f"{backend:10} {name:8} sessions={sessions:4} {best}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pool", type=int, nargs=2, default=[10, 30], help="size overflow")
    parser.add_argument("--postgres", help="URL of a scratch PostgreSQL database")
    result = asyncio.run(main(parser.parse_args()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "store_pool.json").write_text(json.dumps(result, indent=2))
