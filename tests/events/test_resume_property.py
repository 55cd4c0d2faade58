"""Property: a watcher disconnected at random points and resumed with `Last-Event-ID`
sees every durable event exactly once, in order, while the session keeps writing.

Hypothesis draws the session's length, where the watcher cuts its connection (after how
many events, at most the whole stream per connection), whether it resumes with the header
or `?after=`, and how the writer interleaves with the reader. Examples are drawn first and
run afterwards on the test's event loop (hypothesis runs synchronously), each on a fresh
session of the same served store.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from event_serving import append, new_session, serving
from hypothesis import strategies as st

from orchestrator.events.client import sse_messages
from orchestrator.store import EventKind, Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reliability"))
from _drawing import drawn


@dataclass(frozen=True)
class Plan:
    events: int
    """Durable events the session writes, the last being `session_completed`."""
    cuts: list[int]
    """Per connection, after how many events the watcher hangs up (0: never)."""
    header: list[bool]
    """Per connection, resume with `Last-Event-ID` (else `?after=`)."""
    writer_pauses: list[int]
    """Loop turns the writer yields after each event, so reads and writes interleave."""


PLANS = st.builds(
    Plan,
    events=st.integers(1, 30),
    cuts=st.lists(st.integers(0, 6), min_size=1, max_size=12),
    header=st.lists(st.booleans(), min_size=1, max_size=4),
    writer_pauses=st.lists(st.integers(0, 3), min_size=1, max_size=8),
)


async def write(store: Store, session_id: str, plan: Plan) -> None:
    for n in range(plan.events - 1):
        await append(store, session_id, f"e{n}", payload={"n": n})
        for _ in range(plan.writer_pauses[n % len(plan.writer_pauses)]):
            await asyncio.sleep(0)
    await append(store, session_id, "end", EventKind.SESSION_COMPLETED)


async def watch_with_cuts(
    http: httpx.AsyncClient, session_id: str, plan: Plan
) -> tuple[list[int], list[object]]:
    """Read the stream to its end, hanging up and resuming as the plan says."""
    seen: list[int] = []
    payloads: list[object] = []
    for connection in itertools.count():
        cut = plan.cuts[connection % len(plan.cuts)]
        last = seen[-1] if seen else 0
        path = f"/api/sessions/{session_id}/events"
        if plan.header[connection % len(plan.header)]:
            request = http.stream("GET", path, headers={"Last-Event-ID": str(last)})
        else:
            request = http.stream("GET", f"{path}?after={last}")
        async with request as response:
            if response.status_code == 204:
                return seen, payloads
            assert response.status_code == 200
            got = 0
            async for message in sse_messages(response.aiter_lines()):
                if message.event == "end":
                    return seen, payloads
                assert message.id is not None
                seen.append(int(message.id))
                payloads.append(message.json()["payload"])
                got += 1
                if cut and got >= cut:
                    break  # the watcher drops the connection here
    raise AssertionError("unreachable")


async def test_resumed_watcher_sees_every_event_once_in_order(store: Store, tmp_path: Path) -> None:
    examples = drawn(PLANS, 25)
    async with serving(store, tmp_path) as served, served.client() as http:
        for number, plan in enumerate(examples):
            session_id = f"prop-{number}"
            await new_session(store, session_id)
            writer = asyncio.create_task(write(store, session_id, plan))
            async with asyncio.timeout(30):
                seen, payloads = await watch_with_cuts(http, session_id, plan)
            await writer
            assert seen == list(range(1, plan.events + 1)), (plan, seen)
            assert payloads[:-1] == [{"n": n} for n in range(plan.events - 1)]
