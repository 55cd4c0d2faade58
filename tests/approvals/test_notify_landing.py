"""A notice's link, followed through sign-in to the request page, on a real waiting session.

The demo refund waits on the dev server; the notifier e-mails finance through aiosmtpd
and posts to a Slack receiver; the links are followed over HTTP against the inbox served
on loopback: signed out, the page moves on to the sign-in form, which returns to the
request; a link for someone else, for another request, or altered opens nothing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from _demo import DEMO_SCRIPT, client_of, waiting_refund
from _inbox_harness import browser  # noqa: F401 - the fixture
from _notify_seed import SECRET, SMTP_PASSWORD, Mailbox, plain_text, smtp_server, smtp_settings
from conftest import Env
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from orchestrator.approvals.inbox import inbox_routes
from orchestrator.approvals.notify.landing import safe_next
from orchestrator.approvals.notify.notifier import Channels, Notifier
from orchestrator.approvals.people import ApproverDirectory, hash_password
from orchestrator.scripted_model import LoopbackServer
from orchestrator.store.records import ApprovalRecord


@dataclass
class Landing:
    url: str
    pending: ApprovalRecord
    box: Mailbox
    slack: list[dict[str, Any]]
    notifier: Notifier
    mail_url: str
    """A page on another site (`localhost`, not `127.0.0.1`) linking to `mailed[-1]`: a
    web mail client, for the browser."""
    mailed: list[str]


@pytest.fixture
async def landing(env_factory: Callable[[Path], Awaitable[Env]]) -> AsyncIterator[Landing]:
    env = await env_factory(DEMO_SCRIPT)
    pending = await waiting_refund(env, "support-bot")
    slack: list[dict[str, Any]] = []
    mailed: list[str] = []

    async def hook(request: Request) -> PlainTextResponse:
        slack.append(await request.json())
        return PlainTextResponse("ok")

    async def mail(request: Request) -> HTMLResponse:
        return HTMLResponse(f'<a id=open href="{escape(mailed[-1])}">Open the request</a>')

    with smtp_server() as (box, port):
        async with LoopbackServer(
            Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/mail", mail)])
        ) as chat:
            people: dict[str, Any] = {
                name: {
                    "groups": groups,
                    "email": f"{name}@example.test",
                    "password": hash_password(f"{name}-pass"),
                }
                for name, groups in {"lee": ["finance"], "kim": ["finance"], "ode": ["ops"]}.items()
            }

            def directory(base_url: str) -> ApproverDirectory:
                return ApproverDirectory.model_validate(
                    {
                        "groups": ["finance", "ops"],
                        "policy": {"skills": {"payments.refund": "finance"}},
                        "users": people,
                        "notifications": {
                            "base_url": base_url,
                            "digest_seconds": 0,
                            "email": smtp_settings(port),
                            "chat": {"finance": {"slack": "SLACK_FINANCE"}},
                        },
                    }
                )

            store, client, skills = env.runtime.store, client_of(env), env.runtime.skills
            # The inbox is served first: its address is the links' base_url.
            routes = inbox_routes(store, directory("http://unused.test"), client, SECRET, skills)
            async with LoopbackServer(Starlette(routes=routes)) as inbox:
                channels = Channels(
                    smtp=directory(inbox.url).notifications.email,  # type: ignore[union-attr]
                    smtp_password=SMTP_PASSWORD,
                    hooks={("finance", "slack"): f"{chat.url}/hook"},
                )
                notifier = Notifier(
                    store, directory(inbox.url), channels, inbox_secret=SECRET, skills=skills
                )
                mail_url = chat.url.replace("127.0.0.1", "localhost") + "/mail"
                yield Landing(inbox.url, pending, box, slack, notifier, mail_url, mailed)


def _link(box: Mailbox, person: str) -> str:
    [message] = box.for_(f"{person}@example.test")
    found = re.search(r"Open: (\S+)", plain_text(message))
    assert found
    return found[1]


async def _follow_signed_out(http: httpx.AsyncClient, link: str, person: str) -> httpx.Response:
    """Open `link` signed out, follow the page's refresh to sign-in, sign in as `person`."""
    target = urlsplit(link)
    first = await http.get(f"{target.path}?{target.query}")
    assert first.status_code == 200
    refresh = re.search(r'http-equiv=refresh content="0;url=([^"]+)"', first.text)
    assert refresh, first.text
    form = await http.get(refresh[1].replace("&amp;", "&"))
    csrf = re.search(r'name=csrf value="([^"]+)"', form.text)
    back = re.search(r'name=next value="([^"]+)"', form.text)
    assert csrf and back
    signed = await http.post(
        "/inbox/login",
        data={
            "csrf": csrf[1],
            "user": person,
            "password": f"{person}-pass",
            "next": back[1].replace("&amp;", "&"),
        },
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == f"{target.path}?{target.query}"
    return await http.get(signed.headers["location"])


async def test_the_emailed_link_opens_the_request_after_sign_in(landing: Landing) -> None:
    report = await landing.notifier.run_once()
    assert report.sent == 3  # lee, kim by e-mail; the finance channel
    link = _link(landing.box, "lee")
    assert link.startswith(f"{landing.url}/inbox/requests/{landing.pending.approval_id}?n=")
    async with httpx.AsyncClient(base_url=landing.url) as http:
        page = await _follow_signed_out(http, link, "lee")
        assert page.status_code == 200
        assert "Refund" in page.text and "cannot be undone" in page.text.lower()
        assert 'value="approve"' in page.text or "Approve" in page.text
        # Signed in now, the same link goes straight to the page; the sign-in form too.
        again = await http.get(link.removeprefix(landing.url))
        assert again.status_code == 200 and "http-equiv=refresh" not in again.text
        form = await http.get("/inbox/login", params={"next": urlsplit(link).path})
        assert form.status_code == 303 and form.headers["location"] == urlsplit(link).path

    # kim's link, opened by lee, opens nothing; nor does lee's for another request.
    async with httpx.AsyncClient(base_url=landing.url) as http:
        kims = _link(landing.box, "kim")
        refused = await _follow_signed_out(http, kims, "lee")
        assert refused.status_code == 403
        assert "This link was sent to someone else." in refused.text
        assert "Refund" not in refused.text
        token = urlsplit(link).query
        other = await http.get(f"/inbox/requests/apr_other?{token}")
        assert other.status_code == 403 and "another request" in other.text
        forged = await http.get(f"{urlsplit(link).path}?{token[:-3]}xyz")
        assert forged.status_code == 403 and "not one the inbox sent" in forged.text


async def test_the_group_channel_link_opens_for_any_member(landing: Landing) -> None:
    await landing.notifier.run_once()
    [message] = landing.slack
    url = next(b["accessory"]["url"] for b in message["blocks"] if b["type"] == "section")
    async with httpx.AsyncClient(base_url=landing.url) as http:
        page = await _follow_signed_out(http, url, "kim")
        assert page.status_code == 200 and "Refund" in page.text
    async with httpx.AsyncClient(base_url=landing.url) as http:
        page = await _follow_signed_out(http, url, "ode")
        assert page.status_code == 403 and "sent to someone else" in page.text


def test_sign_in_returns_only_to_inbox_paths() -> None:
    assert safe_next("/inbox/requests/apr_1?n=x.y") == "/inbox/requests/apr_1?n=x.y"
    for outside in [
        "https://evil.test/inbox/",
        "//evil.test/inbox/",
        "/inbox\\..\\x",
        "/api",
        "/inboxes",
        None,
        "/inbox/\r\nSet-Cookie: x",
    ]:
        assert safe_next(outside) == "/inbox"


async def test_in_a_browser_a_link_from_another_site_reaches_the_request(
    landing: Landing,
    browser: object,  # noqa: F811 - the fixture imported above
) -> None:
    """Chromium withholds the SameSite=Strict cookie on the click from the mail page; the
    page's refresh to the sign-in form carries it, so a signed-in person goes straight on."""
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    await landing.notifier.run_once()
    link = _link(landing.box, "lee")
    landing.mailed.append(link)
    request_url = re.compile(re.escape(urlsplit(link).path) + r"\?n=")

    signed_in = await browser.new_context()
    page = await signed_in.new_page()
    await page.goto(f"{landing.url}/inbox/login")
    await page.fill("input[name=user]", "lee")
    await page.fill("input[name=password]", "lee-pass")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{landing.url}/inbox")
    await page.goto(landing.mail_url)
    await page.click("#open")
    await page.wait_for_url(request_url)
    text = await page.inner_text("main")
    assert "Refund" in text and "Sign in" not in text
    await signed_in.close()

    # Signed out: the sign-in form, then back to the request.
    fresh = await browser.new_context()
    page = await fresh.new_page()
    await page.goto(landing.mail_url)
    await page.click("#open")
    await page.wait_for_url(re.compile(r"/inbox/login\?next="))
    await page.fill("input[name=user]", "lee")
    await page.fill("input[name=password]", "lee-pass")
    await page.click("button[type=submit]")
    await page.wait_for_url(request_url)
    assert "Refund" in await page.inner_text("main")
    await fresh.close()
