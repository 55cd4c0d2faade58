"""The inbox over real HTTP: headers and CSRF, then real headless Chromium end to end.

The browser tests drive Debian's `/usr/bin/chromium` through Playwright's
`executable_path` (never a downloaded browser); they skip, naming why, when either is
missing, and the HTTP-level tests still cover the same refusals.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _demo import DEMO_SCRIPT, client_of, waiting_refund
from conftest import REPO, Env
from starlette.applications import Starlette

from orchestrator.approvals.api import approval_routes
from orchestrator.approvals.inbox import inbox_routes
from orchestrator.approvals.people import ApproverDirectory, hash_password
from orchestrator.replay import LoopbackServer
from orchestrator.session.types import SessionResult
from orchestrator.store.records import ApprovalRecord, ApprovalStatus, SessionStatus

CHROMIUM = "/usr/bin/chromium"


def _shots(tmp_path: Path) -> Path:
    """Where screenshots go: `docs/` when ORCHESTRATOR_SCREENSHOTS=1 (for the README)."""
    return REPO / "docs" if os.environ.get("ORCHESTRATOR_SCREENSHOTS") == "1" else tmp_path


PASSWORDS = {"lee": "lee-pass", "sam": "sam-pass"}
DIRECTORY = ApproverDirectory.model_validate(
    {
        "groups": ["finance", "support-leads"],
        "policy": {"default_group": "support-leads", "skills": {"payments.refund": "finance"}},
        "users": {
            "lee": {"groups": ["finance"], "password": hash_password(PASSWORDS["lee"])},
            "sam": {"groups": ["support-leads"], "password": hash_password(PASSWORDS["sam"])},
        },
    }
)


@dataclass
class Inbox:
    env: Env
    url: str
    pending: ApprovalRecord

    @property
    def page_url(self) -> str:
        return f"{self.url}/inbox/requests/{self.pending.approval_id}"

    async def status(self) -> ApprovalStatus:
        record = await self.env.runtime.store.get_approval(self.pending.approval_id)
        assert record is not None
        return record.status

    async def result(self) -> SessionResult:
        handle = self.env.client.get_workflow_handle(
            self.pending.workflow_id, result_type=SessionResult
        )
        return await handle.result()


@pytest.fixture
async def inbox(env_factory: Callable[[Path], Awaitable[Env]]) -> AsyncIterator[Inbox]:
    """The inbox served on loopback, and a demo refund waiting for finance's approval."""
    env = await env_factory(DEMO_SCRIPT)
    pending = await waiting_refund(env, "support-bot")
    client = client_of(env)

    store = env.runtime.store
    routes = [
        *approval_routes(store, DIRECTORY, client),
        *inbox_routes(store, DIRECTORY, client, b"test-secret"),
    ]
    async with LoopbackServer(Starlette(routes=routes)) as server:
        yield Inbox(env, server.url, pending)


async def _login(http: httpx.AsyncClient, user: str) -> str:
    """Sign in; returns the decision form's CSRF token from the request page."""
    form = await http.get("/inbox/login")
    csrf = re.search(r'name=csrf value="([^"]+)"', form.text)
    assert csrf
    answer = await http.post(
        "/inbox/login", data={"csrf": csrf[1], "user": user, "password": PASSWORDS[user]}
    )
    assert answer.status_code == 303, answer.text
    return csrf[1]


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
        await _login(http, "lee")
        no_token = await http.post(inbox.page_url, data={"decision": "approve"})
        assert no_token.status_code == 403 and "CSRF" in no_token.text
        stale = await http.post(inbox.page_url, data={"decision": "approve", "csrf": "x" * 64})
        assert stale.status_code == 403
    async with httpx.AsyncClient(base_url=inbox.url) as http:
        await _login(http, "sam")
        page = await http.get(inbox.page_url)
        assert "You cannot decide this request" in page.text and "Approve</button>" not in page.text
        csrf = re.search(r'name=csrf value="([^"]+)"', page.text)
        assert csrf is None
    async with httpx.AsyncClient(base_url=inbox.url) as other:
        await _login(other, "sam")
        # sam forges lee's form: a CSRF token is bound to the session that got it.
        forged = await other.post(inbox.page_url, data={"decision": "approve", "csrf": "0" * 64})
        assert forged.status_code == 403
    assert await inbox.status() is ApprovalStatus.PENDING


async def test_a_tampered_session_cookie_is_signed_out(inbox: Inbox) -> None:
    async with httpx.AsyncClient(base_url=inbox.url) as http:
        await _login(http, "sam")
        cookie = http.cookies.get("inbox_session", path="/inbox")
        assert cookie
        http.cookies.clear()
        http.cookies.set("inbox_session", cookie.replace("sam|", "lee|"), path="/inbox")
        assert (await http.get("/inbox")).status_code == 303


def _chromium_or_skip() -> object:
    playwright = pytest.importorskip("playwright.async_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return playwright


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    _chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def _browser_login(browser: object, inbox: Inbox, user: str) -> object:
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    await page.goto(f"{inbox.url}/inbox/login")
    await page.fill("input[name=user]", user)
    await page.fill("input[name=password]", PASSWORDS[user])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{inbox.url}/inbox")
    return page


async def test_browser_approve_completes_the_session(
    inbox: Inbox, browser: object, tmp_path: Path
) -> None:
    from playwright.async_api import Page

    page = await _browser_login(browser, inbox, "lee")
    assert isinstance(page, Page)
    await page.get_by_role("link", name=inbox.pending.approval_id).wait_for()
    await page.screenshot(path=str(_shots(tmp_path) / "inbox-queue.png"), full_page=True)
    await page.get_by_role("link", name=inbox.pending.approval_id).click()
    await page.get_by_role("button", name="Approve").wait_for()
    assert await page.locator("svg[aria-label='plan steps']").count() == 1
    await page.screenshot(path=str(_shots(tmp_path) / "inbox-request.png"), full_page=True)
    await page.get_by_role("button", name="Approve").click()
    await page.locator("p.approved").wait_for()
    assert "approved by lee" in await page.locator("p.approved").inner_text()
    result = await inbox.result()
    assert result.status is SessionStatus.COMPLETED


async def test_browser_reject_needs_and_records_a_reason(inbox: Inbox, browser: object) -> None:
    from playwright.async_api import Page

    page = await _browser_login(browser, inbox, "lee")
    assert isinstance(page, Page)
    await page.goto(inbox.page_url)
    await page.get_by_role("button", name="Reject").click()
    await page.get_by_role("alert").wait_for()
    assert "needs a reason" in await page.get_by_role("alert").inner_text()
    assert await inbox.status() is ApprovalStatus.PENDING
    await page.fill("textarea[name=reason]", "order is still under warranty")
    await page.get_by_role("button", name="Reject").click()
    await page.locator("p.rejected").wait_for()
    record = await inbox.env.runtime.store.get_approval(inbox.pending.approval_id)
    assert record is not None and record.reason == "order is still under warranty"
    assert (await inbox.result()).status is SessionStatus.COMPLETED


async def test_browser_outsider_sees_no_button(inbox: Inbox, browser: object) -> None:
    from playwright.async_api import Page

    page = await _browser_login(browser, inbox, "sam")
    assert isinstance(page, Page)
    await page.goto(inbox.page_url)
    await page.locator("p.note").wait_for()
    assert await page.get_by_role("button", name="Approve").count() == 0
    assert "not in the group" in await page.locator("p.note").inner_text()
    assert await inbox.status() is ApprovalStatus.PENDING
