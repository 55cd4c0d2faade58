"""The inbox served on loopback over a real worker, signed in over HTTP or in Chromium.

Shared by the inbox's test modules. The browser is Debian's `/usr/bin/chromium` driven
through Playwright's `executable_path` (never a downloaded browser); browser tests skip,
naming why, when either is missing.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from _demo import DEMO_SCRIPT, client_of, waiting_refund, write_approvers
from conftest import REPO, Env
from starlette.applications import Starlette

from orchestrator.approvals.api import approval_routes
from orchestrator.approvals.inbox import inbox_routes
from orchestrator.approvals.people import ApproverDirectory, hash_password
from orchestrator.events.live import live_hub
from orchestrator.scripted_model import LoopbackServer
from orchestrator.session.types import SessionResult
from orchestrator.store.records import ApprovalRecord, ApprovalStatus

__all__ = [
    "CHROMIUM",
    "DIRECTORY",
    "Inbox",
    "InboxFactory",
    "browser",
    "browser_login",
    "csrf_of",
    "decide_over_http",
    "filed_inbox",
    "inbox",
    "login",
    "sign_in",
]

sys.path.insert(0, str(REPO / "scripts"))  # the README's screenshot script drives Chromium too
from inbox_screenshots import CHROMIUM, CHROMIUM_ARGS, sign_in

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
        *inbox_routes(store, DIRECTORY, client, b"test-secret", env.runtime.skills),
    ]
    async with LoopbackServer(Starlette(routes=routes)) as server:
        yield Inbox(env, server.url, pending)


class InboxFactory(Protocol):
    """`filed_inbox`: an inbox under `policy`, `tenants` limiting who sees which sessions."""

    async def __call__(
        self, policy: dict[str, object], tenants: dict[str, list[str]] | None = None
    ) -> Inbox: ...


@pytest.fixture
async def filed_inbox(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[InboxFactory]:
    """The inbox over an approvers file the worker reads too (`_demo.PEOPLE`), under a
    policy; a demo refund waiting for finance."""
    async with AsyncExitStack() as stack:

        async def make(
            policy: dict[str, object], tenants: dict[str, list[str]] | None = None
        ) -> Inbox:
            directory = write_approvers(tmp_path, monkeypatch, policy, tenants)
            env = await env_factory(DEMO_SCRIPT)
            pending = await waiting_refund(env, "support-bot")
            store, client, skills = env.runtime.store, client_of(env), env.runtime.skills
            hub = await stack.enter_async_context(live_hub(store, None))
            routes = [
                *approval_routes(store, directory, client, skills),
                *inbox_routes(store, directory, client, b"test-secret", skills, hub),
            ]
            server = await stack.enter_async_context(LoopbackServer(Starlette(routes=routes)))
            return Inbox(env, server.url, pending)

        yield make


async def login(http: httpx.AsyncClient, user: str) -> str:
    """Sign in; returns the login form's CSRF token."""
    form = await http.get("/inbox/login")
    csrf = re.search(r'name=csrf value="([^"]+)"', form.text)
    assert csrf
    answer = await http.post(
        "/inbox/login", data={"csrf": csrf[1], "user": user, "password": f"{user}-pass"}
    )
    assert answer.status_code == 303, answer.text
    return csrf[1]


def chromium_or_skip() -> object:
    playwright = pytest.importorskip("playwright.async_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return playwright


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def browser_login(browser: object, inbox: Inbox, user: str) -> object:
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    await sign_in(page, inbox.url, user, f"{user}-pass")
    return page


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token of the page's first form."""
    found = re.search(r'name=csrf value="([^"]+)"', page.text)
    assert found, page.text
    return found[1]


async def decide_over_http(url: str, user: str, approval_id: str, **form: str) -> None:
    """`user` signs in over HTTP and posts a decision (`form`) on the request's page."""
    async with httpx.AsyncClient(base_url=url) as http:
        await login(http, user)
        csrf = csrf_of(await http.get(f"/inbox/requests/{approval_id}"))
        answer = await http.post(f"/inbox/requests/{approval_id}", data={"csrf": csrf, **form})
        assert answer.status_code == 303, answer.text
