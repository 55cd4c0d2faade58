"""The queue over real HTTP on a real worker: mine by default, filters, counts, live stream."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
from _demo import waiting_refund
from _inbox_harness import Inbox, InboxFactory, csrf_of, filed_inbox, inbox, login

from orchestrator.events.client import SseMessage, sse_messages

__all__ = ["filed_inbox", "inbox"]  # the fixtures this module uses

CARD = re.compile(r'data-approval="([^"]+)"')


def _count(page: str, name: str) -> int:
    found = re.search(rf">{name} <span class=count>(\d+)</span>", page)
    assert found, page
    return int(found[1])


async def test_by_default_the_queue_lists_only_what_i_can_decide(
    filed_inbox: InboxFactory,
) -> None:
    inbox = await filed_inbox({"timeout_seconds": 3600})
    by_bot = inbox.pending
    by_lee = await waiting_refund(inbox.env, "lee")  # lee may not decide their own
    async with httpx.AsyncClient(base_url=inbox.url) as lee:
        await login(lee, "lee")
        mine = (await lee.get("/inbox")).text
        assert CARD.findall(mine) == [by_bot.approval_id]
        assert _count(mine, "To decide") == 1 and _count(mine, "All waiting") == 2
        assert "Refund 42.50 EUR to the customer of order A-1001" in mine
        assert "in 60 minutes" in mine and '"amount"' not in mine
        waiting = (await lee.get("/inbox?show=pending")).text
        assert CARD.findall(waiting) == [by_bot.approval_id, by_lee.approval_id]  # by deadline
        assert "<dt>Not yours to decide</dt><dd>you started its session</dd>" in waiting
    async with httpx.AsyncClient(base_url=inbox.url) as kim:
        await login(kim, "kim")
        page = (await kim.get("/inbox")).text
        assert CARD.findall(page) == [by_bot.approval_id, by_lee.approval_id]
        csrf = csrf_of(await kim.get(f"/inbox/requests/{by_bot.approval_id}"))
        decided = await kim.post(
            f"/inbox/requests/{by_bot.approval_id}", data={"csrf": csrf, "decision": "approve"}
        )
        assert decided.status_code == 303
        after = (await kim.get("/inbox")).text
        assert CARD.findall(after) == [by_lee.approval_id]
        assert _count(after, "Approved") == 1 and _count(after, "Everything") == 2
        approved = (await kim.get("/inbox?show=approved")).text
        assert CARD.findall(approved) == [by_bot.approval_id] and "by kim" in approved
    async with httpx.AsyncClient(base_url=inbox.url) as sam:
        await login(sam, "sam")  # support-leads: nothing of finance's is sam's
        page = (await sam.get("/inbox?show=nonsense")).text
        assert CARD.findall(page) == [] and "Nothing for you to decide. 1 waiting" in page


async def _queue_message(messages: object, **counts: int) -> SseMessage:
    """The first `queue` message with these counts (reads between two writes of one
    change, say a request's row and its event, may send a step before)."""
    assert hasattr(messages, "__anext__")
    while True:
        message: SseMessage = await messages.__anext__()
        sent = json.loads(message.data).get("counts", {}) if message.event == "queue" else {}
        if sent and all(sent[name] == value for name, value in counts.items()):
            return message


async def test_the_queue_stream_tells_when_a_request_arrives_and_when_it_is_decided(
    filed_inbox: InboxFactory,
) -> None:
    inbox = await filed_inbox({})
    async with httpx.AsyncClient(base_url=inbox.url, timeout=60) as kim:
        await login(kim, "kim")
        page = (await kim.get("/inbox")).text
        shown = re.search(r'&amp;version=([0-9a-f]+)"', page)
        assert shown is not None
        async with httpx.AsyncClient(base_url=inbox.url) as stranger:
            assert (await stranger.get("/inbox/queue/events")).status_code == 401
        url = f"/inbox/queue/events?show=mine&version={shown[1]}"
        async with kim.stream("GET", url) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            messages = sse_messages(stream.aiter_lines())
            second = await waiting_refund(inbox.env, "support-bot")
            await asyncio.wait_for(_queue_message(messages, mine=2, pending=2), 30)
            csrf = csrf_of(await kim.get(f"/inbox/requests/{second.approval_id}"))
            await kim.post(
                f"/inbox/requests/{second.approval_id}",
                data={"csrf": csrf, "decision": "reject", "reason": "a duplicate"},
            )
            decided = await asyncio.wait_for(_queue_message(messages, mine=1, rejected=1), 30)
        # The page now carries the version the stream last sent: nothing to tell.
        again = (await kim.get("/inbox")).text
        latest = re.search(r'&amp;version=([0-9a-f]+)"', again)
        assert latest is not None and latest[1] == json.loads(decided.data)["version"]


async def test_only_the_live_pages_may_run_a_script_and_only_their_own(
    filed_inbox: InboxFactory,
) -> None:
    inbox = await filed_inbox({})
    async with httpx.AsyncClient(base_url=inbox.url) as lee:
        sign_in_page = await lee.get("/inbox/login")
        assert "script" not in sign_in_page.headers["content-security-policy"]
        await login(lee, "lee")
        queue = await lee.get("/inbox")
        request = await lee.get(f"/inbox/requests/{inbox.pending.approval_id}")
        for page in (queue, request):
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "connect-src 'self'" in csp
            assert "unsafe-inline" not in csp and "default-src 'none'" in csp
            assert page.text.count("<script") == 1
            assert '<script src="/inbox/live.js" defer></script>' in page.text
        assert '<noscript><meta http-equiv=refresh content="60"></noscript>' in queue.text
        assert 'data-events="/inbox/queue/events?show=mine&amp;version=' in queue.text
        script = await lee.get("/inbox/live.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert "data-events" in script.text and "http" not in script.text.lower()
        assert (await lee.get("/inbox/queue.js")).status_code == 404


async def test_without_a_hub_the_queue_has_no_script_and_its_stream_says_stop(
    inbox: Inbox,
) -> None:
    async with httpx.AsyncClient(base_url=inbox.url) as lee:
        await login(lee, "lee")
        queue = await lee.get("/inbox")
        assert (
            "<script" not in queue.text and "script" not in queue.headers["content-security-policy"]
        )
        assert "http-equiv=refresh" in queue.text and ">Refresh</a>" in queue.text
        assert (await lee.get("/inbox/queue/events")).status_code == 204  # EventSource stops
        request = f"/inbox/requests/{inbox.pending.approval_id}"
        page = await lee.get(request)
        assert "<script" not in page.text and ">Refresh</a>" in page.text
        assert "script" not in page.headers["content-security-policy"]
        assert (await lee.get(f"{request}/events")).status_code == 204
