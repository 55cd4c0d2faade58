"""The approval queue's read: what one page load (or one live-stream check) costs.

Fills a fresh store (SQLite in a temporary folder, or `--url`) with N pending refund
requests, each in its own session with `--events` audit events (model calls, then the
request), and times `load_queue` for a finance approver: with `words` (the page) and
without (the live stream's check). Beside it, in the same run, the peer: the same queue
read one session at a time (`Store.list_events` per session, as the first version did),
so the figure to read is the ratio.

    .venv/bin/python bench/inbox_queue.py [--pending 200] [--events 20] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.approvals.people import ApproverDirectory
from orchestrator.approvals.queue import Entry, arrange, gate_of, load_queue, refusal
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store import AuditEvent, EventKind, Store
from orchestrator.store.records import ApprovalRecord, ApprovalStatus

REPO = Path(__file__).resolve().parent.parent
DIRECTORY = ApproverDirectory.model_validate(
    {
        "groups": ["finance"],
        "policy": {"skills": {"payments.refund": "finance"}, "timeout_seconds": 3600},
        "users": {"lee": {"groups": ["finance"]}},
    }
)
LEE = DIRECTORY.users["lee"]


async def _fill(store: Store, pending: int, events: int) -> None:
    for n in range(pending):
        session = f"s{n}"
        await store.record_approval_request(
            ApprovalRecord(
                approval_id=f"a{n}",
                session_id=session,
                workflow_id=f"session-{session}",
                run_id="r",
                step_id="investigate",
                kind="tool_call",
                skill="payments.refund",
                skill_version="1.0.0",
                arguments={"order_id": f"A-{n}", "amount": 42.5, "currency": "EUR", "reason": "x"},
                summary="refund",
                binding_hash="h",
                requested_at=datetime.now(UTC),
            )
        )
        for k in range(events):
            kind = EventKind.APPROVAL_REQUESTED if k == events - 1 else EventKind.MODEL_CALL
            await store.append_event(
                AuditEvent(
                    event_key=f"{session}:{k}",
                    session_id=session,
                    workflow_id=f"session-{session}",
                    run_id="r",
                    kind=kind,
                    step_id="investigate",
                    payload={"approval_id": f"a{n}", "text": "because " * 40},
                    created_at=datetime.now(UTC),
                )
            )


async def _per_session(store: Store) -> int:
    """The peer: every pending request's gate from its own session read."""
    records = await store.list_approvals(status=ApprovalStatus.PENDING)
    entries = []
    for rec in records:
        gate = gate_of(rec, await store.list_events(rec.session_id), DIRECTORY)
        entries.append(Entry(rec, gate, refusal(gate, LEE)))
    return len(arrange(entries, "mine").entries)


async def _time(run: Callable[[], Awaitable[object]], repeat: int) -> dict[str, float]:
    await run()  # warm: connections, caches
    spent = []
    for _ in range(repeat):
        start = time.perf_counter()
        await run()
        spent.append(time.perf_counter() - start)
    return {
        "median_ms": round(statistics.median(spent) * 1000, 1),
        "min_ms": round(min(spent) * 1000, 1),
    }


async def main(url: str, pending: int, events: int, repeat: int) -> dict[str, object]:
    skills = SkillRegistry.load_directory(REPO / "skills")
    async with await Store.open(url) as store:
        await _fill(store, pending, events)

        async def page() -> object:
            return await load_queue(store, DIRECTORY, LEE, "mine", skills)

        async def check() -> object:
            return await load_queue(store, DIRECTORY, LEE, "mine", skills, words=False)

        async def peer() -> object:
            return await _per_session(store)

        figures = {
            "page (load_queue, words)": await _time(page, repeat),
            "stream check (load_queue, no words)": await _time(check, repeat),
            "peer: one read per session": await _time(peer, repeat),
        }
    ratio = (
        figures["peer: one read per session"]["median_ms"]
        / figures["stream check (load_queue, no words)"]["median_ms"]
    )
    return {
        "backend": url.split(":", 1)[0],
        "pending": pending,
        "events_per_session": events,
        "figures": figures,
        "peer_over_stream_check": round(ratio, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=200)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--url", help="a store URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite+aiosqlite:///{folder}/queue.db"
        result = asyncio.run(main(url, args.pending, args.events, args.repeat))
    print(json.dumps(result, indent=2))
