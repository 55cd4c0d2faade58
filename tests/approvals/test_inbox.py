"""The inbox over real HTTP: headers and CSRF, then real headless Chromium end to end.

The browser tests drive Debian's `/usr/bin/chromium` through Playwright's
`executable_path` (never a downloaded browser); they skip, naming why, when either is
missing, and the HTTP-level tests still cover the same refusals.
"""

from __future__ import annotations

import re

import httpx
from _inbox_harness import (
    Inbox,
    InboxFactory,
    browser,
    browser_login,
    csrf_of,
    filed_inbox,
    inbox,
    login,
)

from orchestrator.store.records import ApprovalStatus, EventKind, SessionStatus
from orchestrator.testing import eventually

__all__ = ["browser", "filed_inbox", "inbox"]  # fixtures this module uses


async def test_pages_are_framed_by_nobody_and_run_no_script(inbox: Inbox) -> None:
    async with httpx.AsyncClient(base_url=inbox.url) as http:
        page = await http.get("/inbox/login")
    assert page.headers["x-frame-options"] == "DENY"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script" not in csp and "<script" not in page.text


async def test_sign_in_needs_the_csrf_token_and_the_password(inbox: Inbox) -> None:
    async with httpx.AsyncClient(base_url=inbox.url) as http:
        await http.get("/inbox/login")
        forged = await http.post(
            "/inbox/login", data={"csrf": "guess", "user": "lee", "password": "lee-pass"}
        )
        assert forged.status_code == 403
        form = await http.get("/inbox/login")
        csrf = re.search(r'name=csrf value="([^"]+)"', form.text)
        assert csrf
        wrong = await http.post(
            "/inbox/login", data={"csrf": csrf[1], "user": "lee", "password": "nope"}
        )
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        assert (await http.get("/inbox")).status_code == 303  # still signed out


async def test_forged_and_unauthorised_posts_change_nothing(inbox: Inbox) -> None:
    async with httpx.AsyncClient(base_url=inbox.url) as http:
        anonymous = await http.post(inbox.page_url, data={"decision": "approve"})
        assert anonymous.status_code == 401
        await login(http, "lee")
        no_token = await http.post(inbox.page_url, data={"decision": "approve"})
        assert no_token.status_code == 403 and "CSRF" in no_token.text
        stale = await http.post(inbox.page_url, data={"decision": "approve", "csrf": "x" * 64})
        assert stale.status_code == 403
    async with httpx.AsyncClient(base_url=inbox.url) as http:
        await login(http, "sam")
        page = await http.get(inbox.page_url)
        assert "You cannot decide this request" in page.text and "Approve</button>" not in page.text
        csrf = re.search(r'name=csrf value="([^"]+)"', page.text)
        assert csrf is None
    async with httpx.AsyncClient(base_url=inbox.url) as other:
        await login(other, "sam")
        # sam forges lee's form: a CSRF token is bound to the session that got it.
        forged = await other.post(inbox.page_url, data={"decision": "approve", "csrf": "0" * 64})
        assert forged.status_code == 403
    assert await inbox.status() is ApprovalStatus.PENDING


async def test_a_tampered_session_cookie_is_signed_out(inbox: Inbox) -> None:
    async with httpx.AsyncClient(base_url=inbox.url) as http:
        await login(http, "sam")
        cookie = http.cookies.get("inbox_session", path="/inbox")
        assert cookie
        http.cookies.clear()
        http.cookies.set("inbox_session", cookie.replace("sam|", "lee|"), path="/inbox")
        assert (await http.get("/inbox")).status_code == 303


async def test_browser_approve_completes_the_session(inbox: Inbox, browser: object) -> None:
    from playwright.async_api import Page

    page = await browser_login(browser, inbox, "lee")
    assert isinstance(page, Page)
    title = "Refund 42.50 EUR to the customer of order A-1001"
    await page.get_by_role("link", name=title).wait_for()
    await page.get_by_role("link", name=title).click()
    await page.get_by_role("button", name="Approve", exact=True).wait_for()
    assert await page.locator("svg[aria-label='plan steps']").count() == 1
    await page.get_by_role("button", name="Approve", exact=True).click()
    await page.locator("p.approved").wait_for()
    assert "approved by lee" in await page.locator("p.approved").inner_text()
    result = await inbox.result()
    assert result.status is SessionStatus.COMPLETED


async def test_browser_reject_needs_and_records_a_reason(inbox: Inbox, browser: object) -> None:
    from playwright.async_api import Page

    page = await browser_login(browser, inbox, "lee")
    assert isinstance(page, Page)
    await page.goto(inbox.page_url)
    await page.get_by_role("button", name="Reject", exact=True).click()
    await page.get_by_role("alert").wait_for()
    assert "needs a reason" in await page.get_by_role("alert").inner_text()
    assert await inbox.status() is ApprovalStatus.PENDING
    await page.fill("textarea[name=reason]", "order is still under warranty")
    await page.get_by_role("button", name="Reject", exact=True).click()
    await page.locator("p.rejected").wait_for()
    record = await inbox.env.runtime.store.get_approval(inbox.pending.approval_id)
    assert record is not None and record.reason == "order is still under warranty"
    assert (await inbox.result()).status is SessionStatus.COMPLETED


async def test_browser_outsider_sees_no_button(inbox: Inbox, browser: object) -> None:
    from playwright.async_api import Page

    page = await browser_login(browser, inbox, "sam")
    assert isinstance(page, Page)
    await page.goto(inbox.page_url)
    await page.locator("p.note").wait_for()
    assert await page.get_by_role("button", name="Approve", exact=True).count() == 0
    assert "not in the group" in await page.locator("p.note").inner_text()
    assert await inbox.status() is ApprovalStatus.PENDING


async def test_request_page_shows_progress_and_delegates_within_the_group(
    filed_inbox: InboxFactory,
) -> None:
    inbox = await filed_inbox({"two_person_risks": ["irreversible_write"]})
    async with httpx.AsyncClient(base_url=inbox.url) as lee:
        await login(lee, "lee")
        csrf = csrf_of(await lee.get(inbox.page_url))
        first = await lee.post(inbox.page_url, data={"csrf": csrf, "decision": "approve"})
        assert first.status_code == 303
        page = (await lee.get(inbox.page_url)).text
        assert "<th>approvals</th><td>1 of 2 (lee)</td>" in page
        # The delegate form offers finance's other members, not lee (who approved).
        options = re.findall(r'<option value="([^"]+)">', page.split("Delegate to")[1])
        assert options == ["kim", "max"]
        delegate_url = f"{inbox.page_url}/delegate"
        outside = await lee.post(delegate_url, data={"csrf": csrf, "to": "ode"})
        assert outside.status_code == 422 and "ode is not in finance" in outside.text
        handed = await lee.post(delegate_url, data={"csrf": csrf, "to": "kim", "reason": "yours"})
        assert handed.status_code == 303, handed.text
        assert "<th>delegated to</th><td>kim, who alone" in (await lee.get(inbox.page_url)).text
    async with httpx.AsyncClient(base_url=inbox.url) as max_:
        await login(max_, "max")
        page = (await max_.get(inbox.page_url)).text
        assert "delegated to kim" in page and "Approve</button>" not in page
    async with httpx.AsyncClient(base_url=inbox.url) as kim:
        await login(kim, "kim")
        csrf = csrf_of(await kim.get(inbox.page_url))
        second = await kim.post(inbox.page_url, data={"csrf": csrf, "decision": "approve"})
        assert second.status_code == 303
    assert (await inbox.result()).status is SessionStatus.COMPLETED
    record = await inbox.env.runtime.store.get_approval(inbox.pending.approval_id)
    assert record is not None and record.decided_by == "lee, kim"


async def test_browser_edit_arguments_then_approve_runs_the_changed_call(
    filed_inbox: InboxFactory, browser: object
) -> None:
    from playwright.async_api import Page

    inbox = await filed_inbox({"escalation": {"finance": "ops"}, "timeout_seconds": 3600})
    page = await browser_login(browser, inbox, "lee")
    assert isinstance(page, Page)
    await page.goto(inbox.page_url)
    gate = await page.locator("table.gate").inner_text()
    assert "finance → ops" in gate and "then it moves to ops" in gate and "in 60 minutes" in gate
    text = await page.locator("main").inner_text()
    assert "Refund 42.50 EUR to the customer of order A-1001" in text
    assert "Cannot be undone" in text and "cracked base, so a full refund is due" in text
    assert await page.get_by_text("Order A-1001", exact=True).count() == 1  # the evidence
    assert "{" not in text and "cost so far" not in text
    await page.get_by_text("Change the arguments before approving").click()
    amount = page.locator("input[name='arg.amount']")
    assert await amount.input_value() == "42.5"
    await amount.fill("20000")
    await page.get_by_role("button", name="Approve with these arguments").click()
    await page.get_by_role("alert").wait_for()
    assert "amount" in await page.get_by_role("alert").inner_text()
    assert await inbox.status() is ApprovalStatus.PENDING

    assert await page.locator("details.edit[open]").count() == 1  # still open, beside the error
    amount = page.locator("input[name='arg.amount']")
    assert await amount.input_value() == "20000"  # the refused attempt is kept to correct
    await amount.fill("30")
    await page.get_by_role("button", name="Approve with these arguments").click()
    await page.locator("p.edited").wait_for()
    assert "Amount: 42.50 EUR → 30.00 EUR" in await page.locator("p.edited").inner_text()
    assert "Refund 30.00 EUR to the customer" in await page.locator("h1").inner_text()
    assert (await inbox.result()).status is SessionStatus.COMPLETED
    store = inbox.env.runtime.store
    calls = await store.list_events(inbox.pending.session_id, kind=EventKind.TOOL_CALL)
    [refund] = [c for c in calls if c.skill == "payments.refund"]
    assert refund.payload["arguments"] == {**inbox.pending.arguments, "amount": 30.0}


async def test_the_queue_shows_the_group_an_escalation_moved_a_request_to(
    filed_inbox: InboxFactory,
) -> None:
    inbox = await filed_inbox({"escalation": {"finance": "ops"}, "timeout_seconds": 2.0})
    card = re.compile(
        rf'data-approval="{inbox.pending.approval_id}">.*?<dt>Decided by group</dt><dd>([a-z-]+)<'
    )
    async with httpx.AsyncClient(base_url=inbox.url) as ode:
        await login(ode, "ode")
        assert "Nothing for you to decide. 1 waiting on others" in (await ode.get("/inbox")).text
        before = card.search((await ode.get("/inbox?show=pending")).text)
        assert before is not None and before[1] == "finance"

        async def escalated() -> bool | None:
            events = await inbox.env.runtime.store.list_events(
                inbox.pending.session_id, kind=EventKind.APPROVAL_ESCALATED
            )
            return True if events else None

        await eventually(escalated, timeout=60, what="the escalation to ops")
        after = card.search((await ode.get("/inbox")).text)  # ops decides it now: ode's
        assert after is not None and after[1] == "ops"
