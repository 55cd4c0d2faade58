"""Screenshots of the approval inbox for the README, at desk and phone width.

The queue and a request page, 1100 px and 375 px wide. Runs what `orchestrator dev`
runs (the embedded Temporal dev server on free ports, the scripted model server on
`model_scripts/customer_refund.yaml`, a worker) over a temporary state folder and approvers
file (finance decides refunds, ops after an hour), parks two refund sessions on their
approvals (one started by `lee`, so the queue shows a request lee may not decide under
"All waiting"), serves the inbox on loopback, signs in as `lee` in Debian's Chromium
(driven by Playwright through `executable_path`; nothing is downloaded) and writes
`inbox-queue.png`, `inbox-queue-phone.png`, `inbox-request.png` and
`inbox-request-phone.png`.

    .venv/bin/python scripts/inbox_screenshots.py [--out docs]

`shoot` is the browser part alone; `tests/approvals/test_inbox_browser.py` runs it against
the test suite's inbox.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

import yaml
from starlette.applications import Starlette

from orchestrator.approvals.people import hash_password
from orchestrator.approvals.serve import routes_for
from orchestrator.events.live import live_hub
from orchestrator.plans import load_plan
from orchestrator.scripted_model import LoopbackServer
from orchestrator.settings import Settings
from orchestrator.stack import embedded_stack
from orchestrator.testing import start_until_approval

if TYPE_CHECKING:  # Playwright is imported only to shoot, so tests may borrow the rest
    from playwright.async_api import Browser, Page

REPO: Final = Path(__file__).resolve().parent.parent
CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTHS: Final = {"": (1100, 900), "-phone": (375, 812)}
"""File name suffix → viewport (width, height)."""


async def sign_in(page: Page, base_url: str, user: str, password: str) -> None:
    """Sign in through the form, as a person would."""
    await page.goto(f"{base_url}/inbox/login")
    await page.fill("input[name=user]", user)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base_url}/inbox")


async def shoot(
    browser: Browser, base_url: str, approval_id: str, out: Path, *, user: str, password: str
) -> list[Path]:
    """The queue and the request `approval_id`, at every width in `WIDTHS`, as PNGs in `out`."""
    written: list[Path] = []
    for suffix, (width, height) in WIDTHS.items():
        context = await browser.new_context(viewport={"width": width, "height": height})
        try:
            page = await context.new_page()
            await sign_in(page, base_url, user, password)
            await page.locator("ol.queue").wait_for()
            queue = out / f"inbox-queue{suffix}.png"
            await page.screenshot(path=str(queue), full_page=True)
            await page.goto(f"{base_url}/inbox/requests/{approval_id}")
            evidence = page.locator("section:has(h2:text('What the agent read')) summary")
            if await evidence.count():
                await evidence.last.click()  # the order the agent read, opened
            request = out / f"inbox-request{suffix}.png"
            await page.screenshot(path=str(request), full_page=True)
            written += [queue, request]
        finally:
            await context.close()
    return written


def _approvers(folder: Path) -> Path:
    path = folder / "approvers.yaml"
    people = {"lee": ["finance"], "kim": ["finance"], "ode": ["ops"]}
    path.write_text(
        yaml.safe_dump(
            {
                "groups": ["finance", "ops"],
                "policy": {
                    "skills": {"payments.refund": "finance"},
                    "escalation": {"finance": "ops"},
                    "timeout_seconds": 3600,
                },
                "users": {
                    name: {"groups": groups, "password": hash_password(f"{name}-pass")}
                    for name, groups in people.items()
                },
            }
        )
    )
    return path


async def main(out: Path) -> None:
    """Start the stack, park two refunds, shoot the inbox into `out`."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        os.environ["ORCHESTRATOR_APPROVERS_FILE"] = str(_approvers(state))
        os.environ.setdefault("ORCHESTRATOR_INBOX_SECRET", secrets.token_hex(16))
        settings = Settings(
            project_dir=REPO,
            state_dir=state,
            dev_server_port=0,
            dev_server_ui_port=0,
            metrics_port=None,
            task_queue=f"screenshots-{secrets.token_hex(4)}",
        )
        replay = REPO / "model_scripts/customer_refund.yaml"
        async with embedded_stack(settings, model_script=replay) as stack:
            plan = load_plan(REPO / "workflows/customer_refund.yaml")
            gated = []
            for requested_by in ("support-bot", "lee"):
                gated.append(
                    await start_until_approval(
                        stack.client,
                        stack.runtime.store,
                        plan,
                        {"ticket_id": "T-1001"},
                        task_queue=settings.task_queue,
                        requested_by=requested_by,
                    )
                )
            store = stack.runtime.store
            async with live_hub(store, None) as hub:
                reach = settings.model_copy(update={"temporal_address": stack.temporal_address})
                app = Starlette(routes=routes_for(reach, store, hub))
                async with LoopbackServer(app) as server, async_playwright() as p:
                    browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    try:
                        shots = await shoot(
                            browser,
                            server.url,
                            gated[0].pending.approval_id,
                            out,
                            user="lee",
                            password="lee-pass",
                        )
                    finally:
                        await browser.close()
    for path in shots:
        print(path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder for the PNGs")
    asyncio.run(main(parser.parse_args().out))
