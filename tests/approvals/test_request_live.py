"""A request page, live (issue 13, item 3's inbox): it follows its session as it moves.

Over real HTTP on a real worker: the page's stream (`/inbox/requests/{id}/events`) is
signed-in only, answers another tenant's request like an unknown one (404, same words),
sends each durable event of the session after the page's own, and ends with the session.
In Chromium: an open request page shows a decision taken elsewhere, without a reload,
and its decision form is gone.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
from _inbox_harness import (
    InboxFactory,
    browser,
    decide_over_http,
    filed_inbox,
    login,
    sign_in,
)

from orchestrator.events.client import SseMessage, sse_messages
from orchestrator.session.names import workflow_id_for
from orchestrator.store.records import AuditEvent, EventKind

__all__ = ["browser", "filed_inbox"]  # the fixtures this module uses

AFTER = re.compile(r'data-events="/inbox/requests/[^"?]+/events\?after=(\d+)"')


async def _until(messages: AsyncIterator[SseMessage], event: str) -> list[SseMessage]:
    """The messages up to and including the first `event` one."""
    seen: list[SseMessage] = []
    async for message in messages:
        seen.append(message)
        if message.event == event:
            return seen
    raise AssertionError(f"the stream closed before an {event!r} message: {seen}")


async def test_the_request_stream_follows_its_session_to_the_end_and_only_for_its_viewers(
    filed_inbox: InboxFactory,
) -> None:
    inbox = await filed_inbox({}, tenants={"max": ["acme"]})  # sessions here are "default"
    request = f"/inbox/requests/{inbox.pending.approval_id}"
    async with httpx.AsyncClient(base_url=inbox.url, timeout=60) as kim:
        async with httpx.AsyncClient(base_url=inbox.url) as stranger:
            assert (await stranger.get(f"{request}/events")).status_code == 401
        async with httpx.AsyncClient(base_url=inbox.url) as max_:
            await login(max_, "max")  # finance, but only acme's sessions
            for path in (request, f"{request}/events"):
                hidden = await max_.get(path)
                unknown = await max_.get(path.replace(inbox.pending.approval_id, "nope"))
                assert hidden.status_code == unknown.status_code == 404
                assert hidden.text.replace(inbox.pending.approval_id, "nope") == unknown.text
        await login(kim, "kim")
        page = (await kim.get(request)).text
        assert "<form class=decide" in page and "http-equiv=refresh" not in page  # kept typing
        assert ">Refresh</a>" in page
        after = AFTER.search(page)
        assert after is not None and int(after[1]) > 0
        assert (await kim.get(f"{request}/events?after=x")).status_code == 400
        async with kim.stream("GET", f"{request}/events?after={after[1]}") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            messages = sse_messages(stream.aiter_lines())
            await decide_over_http(inbox.url, "lee", inbox.pending.approval_id, decision="approve")
            seen = await asyncio.wait_for(_until(messages, "end"), 60)
        moved = [m.json() for m in seen if m.event == "moved"]
        kinds = [m["kind"] for m in moved]
        assert kinds[0] == "approval_decided" and kinds[-1] == "session_completed", kinds
        seqs = [m["seq"] for m in moved]
        assert seqs == sorted(seqs) and seqs[0] == int(after[1]) + 1
        assert [m.id for m in seen if m.event == "moved"] == [str(s) for s in seqs]
        assert set(moved[0]) == {"seq", "kind"}  # what the page shows anyway, nothing more
        # The session is over: EventSource reconnecting with the last id is told to stop.
        done = await kim.get(f"{request}/events", headers={"Last-Event-ID": str(seqs[-1])})
        assert done.status_code == 204
        # An event audited after the end (an MCP call's record) does not reopen it.
        await inbox.env.runtime.store.append_event(
            AuditEvent(
                event_key=f"late:{inbox.pending.session_id}",
                session_id=inbox.pending.session_id,
                workflow_id=workflow_id_for(inbox.pending.session_id),
                run_id="",
                kind=EventKind.MCP_CALL,
                payload={"direction": "in", "outcome": "ok"},
                created_at=datetime.now(UTC),
            )
        )
        late = await kim.get(f"{request}/events", headers={"Last-Event-ID": str(seqs[-1] + 1)})
        assert late.status_code == 204
        closed = (await kim.get(request)).text
        assert "approved by lee" in closed and "<form class=decide" not in closed
        assert '<noscript><meta http-equiv=refresh content="60"></noscript>' in closed


async def test_an_open_request_page_shows_a_decision_taken_elsewhere_without_a_reload(
    filed_inbox: InboxFactory, browser: object
) -> None:
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    inbox = await filed_inbox({})
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    await sign_in(page, inbox.url, "kim", "kim-pass")
    await page.goto(inbox.page_url)
    await page.locator("html[data-live=on]").wait_for()
    await page.locator("form.decide textarea[name=reason]").fill("checking the receipt")
    await page.evaluate("window.stayed = true")  # gone if the page reloads
    await decide_over_http(
        inbox.url, "lee", inbox.pending.approval_id, decision="reject", reason="a duplicate"
    )
    await page.locator("p.rejected").wait_for(timeout=30_000)
    assert "rejected by lee: a duplicate" in await page.locator("p.rejected").inner_text()
    assert await page.get_by_role("button", name="Approve", exact=True).count() == 0
    assert await page.locator("form.decide").count() == 0
    assert await page.evaluate("window.stayed === true")
