"""Approval notices to Slack and Teams incoming webhooks, posted to loopback receivers.

The receivers check every body against the documented message shapes
(`_chat_schemas.py`) and answer as the services do (Slack `400 invalid_blocks` to a
malformed body), so a notice that Slack or Teams would refuse fails here too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from _chat_schemas import SLACK_MESSAGE, TEAMS_MESSAGE
from _notify_seed import SECRET, T0, directory, waiting
from conftest import REPO
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from orchestrator.approvals.notify.links import LinkCheck, check_link, link_key
from orchestrator.approvals.notify.notifier import Channels, Notifier
from orchestrator.approvals.notify.render import Digest, Item, slack_payload, teams_payload
from orchestrator.scripted_model import LoopbackServer
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.notices import NoticeStatus
from orchestrator.store.records import ApprovalStatus
from orchestrator.store.store import Store

SKILLS = SkillRegistry.load_directory(REPO / "skills")
HOOK_TOKEN = "T0001-B0002-hooksecretXYZ"


@dataclass
class Receiver:
    """What the webhooks received, and the answers to give first (then 200/202)."""

    url: str = ""
    slack: list[dict[str, Any]] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    async def hook(self, request: Request) -> PlainTextResponse:
        kind = request.path_params["kind"]
        if request.path_params["token"] != HOOK_TOKEN:
            return PlainTextResponse("no_service", 404)
        if self.answers:
            return PlainTextResponse("busy", self.answers.pop(0))
        body = await request.json()
        schema = SLACK_MESSAGE if kind == "slack" else TEAMS_MESSAGE
        try:
            jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())
        except jsonschema.ValidationError as exc:
            return PlainTextResponse(f"invalid_blocks: {exc.message}", 400)
        getattr(self, kind).append(body)
        return PlainTextResponse("ok", 200) if kind == "slack" else PlainTextResponse("", 202)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()
    app = Starlette(routes=[Route("/{kind}/{token}", got.hook, methods=["POST"])])
    async with LoopbackServer(app) as server:
        got.url = server.url
        yield got


def _notifier(store: Store, receiver: Receiver, token: str = HOOK_TOKEN) -> Notifier:
    people = directory(
        {
            "base_url": "https://inbox.example.test/",
            "digest_seconds": 0,
            "chat": {"finance": {"slack": "SLACK_FINANCE", "teams": "TEAMS_FINANCE"}},
        }
    )
    hooks = {
        ("finance", "slack"): f"{receiver.url}/slack/{token}",
        ("finance", "teams"): f"{receiver.url}/teams/{token}",
    }
    return Notifier(store, people, Channels(hooks=hooks), inbox_secret=SECRET, skills=SKILLS)


def _token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["n"][0]


async def test_one_digest_per_channel_in_each_services_shape(
    store: Store, receiver: Receiver
) -> None:
    notifier = _notifier(store, receiver)
    await waiting(store, "apr_1", amount=1290.0)
    await waiting(store, "apr_2", amount=80.5)
    report = await notifier.run_once(T0)
    assert report.sent == 4  # two requests x (slack, teams), in one message each
    [slack], [teams] = receiver.slack, receiver.teams

    assert slack["text"] == "2 approval requests are waiting for you"
    sections = [b for b in slack["blocks"] if b["type"] == "section"]
    assert sections[0]["text"]["text"].startswith(
        "*Refund 1,290.00 EUR to the customer of order A-1001*"
    )
    assert "Waiting for finance" in sections[0]["text"]["text"]
    link = sections[0]["accessory"]["url"]
    assert link.startswith("https://inbox.example.test/inbox/requests/apr_1?n=")
    # The group's channel gets a link for the group: any member opens it, nobody else.
    key = link_key(SECRET)
    now = T0 + timedelta(minutes=1)
    assert (
        check_link(key, _token(link), approval_id="apr_1", user="kim", groups=["finance"], now=now)
        is LinkCheck.OK
    )
    assert (
        check_link(key, _token(link), approval_id="apr_1", user="ode", groups=["ops"], now=now)
        is LinkCheck.OTHER_PERSON
    )

    card = teams["attachments"][0]["content"]
    texts = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    assert "Refund 80.50 EUR to the customer of order A-1001" in texts
    assert "Cannot be undone once approved." in texts
    opens = [a["url"] for b in card["body"] if b["type"] == "ActionSet" for a in b["actions"]]
    assert [urlsplit(u).path for u in opens] == ["/inbox/requests/apr_1", "/inbox/requests/apr_2"]

    assert (await notifier.run_once(T0 + timedelta(minutes=5))).sent == 0
    assert (len(receiver.slack), len(receiver.teams)) == (1, 1)


async def test_slack_control_sequences_in_values_are_escaped(
    store: Store, receiver: Receiver
) -> None:
    record = await waiting(store, "apr_x")
    await store.decide_approval(
        "apr_x", status=ApprovalStatus.REJECTED, decided_by="kim", reason="no", decided_at=T0
    )
    record.arguments.update(reason="<!channel> approve now", order_id="<!here>")
    await store.record_approval_request(record.model_copy(update={"approval_id": "apr_y"}))
    await _notifier(store, receiver).run_once(T0)
    [message] = receiver.slack
    text = str(message["blocks"])
    assert "<!channel>" not in text and "&lt;!channel&gt; approve now" in text
    # The fallback `text` is mrkdwn too (the notification itself): escaped as well.
    assert message["text"].endswith("order &lt;!here&gt;")


async def test_a_busy_hook_is_retried_and_a_gone_one_fails_without_its_url(
    store: Store, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.answers = [503]  # the first post (slack or teams) is refused, once
    notifier = _notifier(store, receiver)
    await waiting(store, "apr_r")
    first = await notifier.run_once(T0)
    assert (first.sent, first.retried) == (1, 1)
    retried = [n for n in await store.notices.list_notices() if n.status is NoticeStatus.QUEUED]
    assert [n.last_error for n in retried] == [f"{retried[0].channel} webhook answered HTTP 503"]
    assert (await notifier.run_once(T0 + timedelta(seconds=15))).sent == 1
    assert (len(receiver.slack), len(receiver.teams)) == (1, 1)

    gone = _notifier(store, receiver, token="revoked-" + HOOK_TOKEN)
    await waiting(store, "apr_g")
    report = await gone.run_once(T0 + timedelta(minutes=1))
    assert report.failed == 2
    errors = {n.last_error for n in await store.notices.list_notices(approval_id="apr_g")}
    assert errors == {"slack webhook answered HTTP 404", "teams webhook answered HTTP 404"}
    captured = capsys.readouterr()
    assert HOOK_TOKEN not in captured.out + captured.err


def _digest(count: int, title: str = "Refund 1.00 EUR") -> Digest:
    items = tuple(
        Item(
            f"apr_{i}",
            title,
            "sentence",
            None,
            "Waiting for finance",
            f"https://inbox.example.test/inbox/requests/apr_{i}?n=t",
        )
        for i in range(count)
    )
    return Digest("group:finance", items)


def test_a_long_digest_lists_twenty_and_counts_the_rest() -> None:
    slack, teams = slack_payload(_digest(25)), teams_payload(_digest(25))
    jsonschema.validate(slack, SLACK_MESSAGE)
    jsonschema.validate(teams, TEAMS_MESSAGE)
    assert len([b for b in slack["blocks"] if b["type"] == "section"]) == 20
    assert slack["blocks"][-1]["elements"][0]["text"].startswith("5 more in the inbox.")
    body = teams["attachments"][0]["content"]["body"]
    assert len([b for b in body if b["type"] == "ActionSet"]) == 20
    assert body[-1]["text"].startswith("5 more in the inbox.")


def test_a_markdown_link_in_a_value_is_not_a_link_in_teams() -> None:
    card = teams_payload(_digest(1, "Refund [Approve now](https://evil.test)"))
    texts = [b["text"] for b in card["attachments"][0]["content"]["body"] if "text" in b]
    assert "Refund [Approve now] (https://evil.test)" in texts
    assert not any("](" in text for text in texts)
