"""Per-session sequence numbers: dense, unique and in commit order, under concurrency.

Writers in several store instances (separate connection pools, as a fan-out step's
activities on several workers would be) append to one session at once; the numbers
come out 1..N with no gap and no repeat, a retried event takes no number, and each
session counts on its own.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from orchestrator.store import AuditEvent, EventKind, Store


def event(session_id: str, key: str) -> AuditEvent:
    return AuditEvent(
        event_key=key,
        session_id=session_id,
        workflow_id=f"session-{session_id}",
        run_id="r",
        kind=EventKind.TOOL_CALL,
        created_at=datetime.now(UTC),
    )


async def test_concurrent_writers_get_dense_unique_numbers(store: Store, store_url: str) -> None:
    async with Store(store_url) as second, Store(store_url) as third:
        writers = [store, second, third]
        await asyncio.gather(
            *(
                writers[n % 3].append_event(event("fan" if n % 4 else "other", f"k{n}"))
                for n in range(60)
            )
        )
        # A retried activity writes its event again: no number is taken.
        assert await second.append_event(event("fan", "k1")) is False

    fan = await store.list_events("fan")
    other = await store.list_events("other")
    assert sorted(e.seq or 0 for e in fan) == list(range(1, 46))
    assert sorted(e.seq or 0 for e in other) == list(range(1, 16))
    # Numbers follow the commit order, which is the order rows were written.
    assert [e.seq for e in fan] == sorted(e.seq or 0 for e in fan)
    assert (await store.stream.last_event("fan")) == fan[-1]
    assert [e.seq for e in await store.stream.events_after("fan", 40, 100)] == [41, 42, 43, 44, 45]
