"""The inbox in headless Chromium for any device and any hand (issue 17, items 3 and 5).

The queue updating itself while open; phone width (375 px) without sideways scrolling;
axe-core's automated accessibility check on every page at desk and phone width; a
decision taken with the keyboard alone; and the README's screenshot script's browser part.

axe-core comes from npm into `.cache/npm` (`make axe`, part of `make test`); it is read
from there and injected into the page (the context bypasses the inbox's CSP for that one
script, as a browser extension would). Tests skip, naming why, without it or Chromium.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from _demo import waiting_refund
from _inbox_harness import (
    InboxFactory,
    browser,
    decide_over_http,
    filed_inbox,
    sign_in,
)
from conftest import REPO

from orchestrator.session.types import SessionResult
from orchestrator.store.records import SessionStatus

__all__ = ["browser", "filed_inbox"]  # fixtures this module uses

AXE = REPO / ".cache/npm/node_modules/axe-core/axe.min.js"
PHONE = {"width": 375, "height": 812}
DESK = {"width": 1100, "height": 900}
POLICY: dict[str, object] = {"escalation": {"finance": "ops"}, "timeout_seconds": 3600}
TITLE = "Refund 42.50 EUR to the customer of order A-1001"


async def _page(browser: object, viewport: dict[str, int], *, bypass_csp: bool = False) -> Any:
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    context = await browser.new_context(viewport=viewport, bypass_csp=bypass_csp)  # type: ignore[arg-type]
    return await context.new_page()


async def test_the_open_queue_updates_itself_when_requests_arrive_and_are_decided(
    filed_inbox: InboxFactory, browser: object
) -> None:
    inbox = await filed_inbox(POLICY)
    page = await _page(browser, DESK)
    await sign_in(page, inbox.url, "kim", "kim-pass")
    await page.locator("html[data-live=on]").wait_for()
    cards = page.locator("ol.queue > li")
    assert await cards.count() == 1
    await page.evaluate("window.stayed = true")  # gone if the page reloads
    second = await waiting_refund(inbox.env, "support-bot")
    await page.locator(f"li[data-approval='{second.approval_id}']").wait_for()
    assert await cards.count() == 2
    assert "To decide 2" in await page.locator("nav").inner_text()
    await decide_over_http(
        inbox.url, "lee", second.approval_id, decision="reject", reason="a duplicate"
    )
    await page.locator(f"li[data-approval='{second.approval_id}']").wait_for(state="detached")
    assert "Rejected 1" in await page.locator("nav").inner_text()
    assert await page.evaluate("window.stayed === true")


async def _no_sideways_scroll(page: Any) -> bool:
    return bool(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


async def test_at_phone_width_nothing_scrolls_sideways(
    filed_inbox: InboxFactory, browser: object
) -> None:
    inbox = await filed_inbox(POLICY)
    page = await _page(browser, PHONE)
    await sign_in(page, inbox.url, "lee", "lee-pass")
    assert await _no_sideways_scroll(page), "the queue is wider than a phone"
    await page.get_by_role("link", name=TITLE).click()
    await page.get_by_role("button", name="Approve", exact=True).wait_for()
    await page.get_by_text("Change the arguments before approving").click()
    for summary in await page.locator("section summary").all():
        await summary.click()  # the evidence, opened
    assert await _no_sideways_scroll(page), "the request page is wider than a phone"
    approve = await page.get_by_role("button", name="Approve", exact=True).bounding_box()
    assert approve is not None and approve["x"] + approve["width"] <= PHONE["width"]


def _axe_source() -> str:
    if not AXE.exists():
        pytest.skip(f"{AXE.relative_to(REPO)} is missing: run `make axe` (npm, into .cache/npm)")
    return AXE.read_text(encoding="utf-8")


AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 3),
  }));
}"""


async def _serious(page: Any, where: str) -> list[str]:
    """axe-core's serious and critical violations on the page as it is, one line each."""
    await page.add_script_tag(content=_axe_source())
    assert await page.evaluate("axe.version") == "4.14.1"  # the pinned one (Makefile)
    violations = await page.evaluate(AXE_RUN)
    return [
        f"{where}: {v['id']} ({v['impact']}): {v['help']} at {v['nodes']}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


async def test_axe_finds_nothing_serious_on_any_page_at_desk_or_phone_width(
    filed_inbox: InboxFactory, browser: object
) -> None:
    _axe_source()
    inbox = await filed_inbox(POLICY)
    await waiting_refund(inbox.env, "lee")  # a request lee may not decide, under All waiting
    found: list[str] = []
    checked = 0
    for name, viewport in (("desk", DESK), ("phone", PHONE)):
        page = await _page(browser, viewport, bypass_csp=True)
        await page.goto(f"{inbox.url}/inbox/login")
        found += await _serious(page, f"{name} sign-in")
        await sign_in(page, inbox.url, "lee", "lee-pass")
        for show in ("mine", "pending", "all"):
            await page.goto(f"{inbox.url}/inbox?show={show}")
            found += await _serious(page, f"{name} queue {show}")
        await page.goto(inbox.page_url)
        await page.get_by_text("Change the arguments before approving").click()
        for summary in await page.locator("section summary").all():
            await summary.click()
        found += await _serious(page, f"{name} request page")
        checked += 5
    assert checked == 10 and found == []
    # The check can fail: an image without a text alternative is a critical violation.
    await page.evaluate("document.querySelector('main').append(document.createElement('img'))")
    assert any("image-alt (critical)" in line for line in await _serious(page, "broken"))


async def test_a_request_is_approved_with_the_keyboard_alone(
    filed_inbox: InboxFactory, browser: object
) -> None:
    inbox = await filed_inbox(POLICY)
    page = await _page(browser, DESK)
    keys = page.keyboard

    async def tab_to(test: str, what: str, limit: int = 40) -> int:
        """Press Tab until `test` (JS over the focused element) holds; how many presses."""
        for presses in range(1, limit + 1):
            await keys.press("Tab")
            if await page.evaluate(f"(el => {test})(document.activeElement)"):
                return presses
        raise AssertionError(f"{what} is not reachable with Tab ({limit} presses)")

    await page.goto(f"{inbox.url}/inbox/login")
    await tab_to("el.name === 'user'", "the name field")
    await keys.type("lee")
    await keys.press("Tab")
    await keys.type("lee-pass")
    await keys.press("Enter")
    await page.wait_for_url(f"{inbox.url}/inbox")
    await tab_to(f"el.textContent === '{TITLE}'", "the request's link")
    await keys.press("Enter")
    await page.wait_for_url(inbox.page_url)
    visible = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    await tab_to("el.value === 'approve' && el.textContent === 'Approve'", "Approve")
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", f"the focused button shows no outline ({visible} before)"
    await keys.press("Enter")
    await page.locator("p.approved").wait_for()
    assert "approved by lee" in await page.locator("p.approved").inner_text()
    handle = inbox.env.client.get_workflow_handle(
        inbox.pending.workflow_id, result_type=SessionResult
    )
    assert (await handle.result()).status is SessionStatus.COMPLETED


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


async def test_the_screenshot_script_shoots_the_queue_and_the_request_at_both_widths(
    filed_inbox: InboxFactory, browser: object, tmp_path: Path
) -> None:
    from inbox_screenshots import shoot  # on sys.path through _inbox_harness

    inbox = await filed_inbox(POLICY)
    shots = await shoot(
        browser,  # type: ignore[arg-type]
        inbox.url,
        inbox.pending.approval_id,
        tmp_path,
        user="lee",
        password="lee-pass",
    )
    sizes = {p.name: _png_size(p)[0] for p in shots}
    assert sizes == {
        "inbox-queue.png": 1100,
        "inbox-request.png": 1100,
        "inbox-queue-phone.png": 375,
        "inbox-request-phone.png": 375,
    }
