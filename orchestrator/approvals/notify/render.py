"""The words of a notice: one digest per recipient and channel, in each channel's format.

Every item reads as the request page does (`orchestrator.approvals.wording`): the
contract's plain title and sentence, the risk in words, and where the request stands.
E-mail is plain text with an HTML alternative; Slack gets Block Kit JSON (`text` as the
notification fallback, `blocks` with a button per request); Teams gets a message with one
Adaptive Card attachment (`Action.OpenUrl` per request). Chat limits are kept: a Slack
section's text at most 3,000 characters, a header 150, a button label 75, a message 50
blocks; longer digests list the first requests and say how many more wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from html import escape

from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "Digest",
    "Item",
    "email_message",
    "slack_payload",
    "subject",
    "teams_payload",
]

_CHAT_ITEMS = 20
"""Requests listed in one chat message: Slack's 50 blocks (2 each, plus header and
context), and well under Teams' 28 KB card; the rest are counted, not listed."""


@dataclass(frozen=True)
class Item:
    """One request in a digest."""

    approval_id: str
    title: str
    sentence: str
    risk: str | None
    status: str
    """Where it stands, e.g. "Waiting for finance" or "Delegated to you by lee"."""
    link: str


@dataclass(frozen=True)
class Digest:
    """Everything one message says."""

    recipient: str
    """A person's name, or `group:<name>` for a chat channel."""
    items: tuple[Item, ...]


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def subject(digest: Digest) -> str:
    """The e-mail subject / chat headline: one line (values may hold line breaks)."""
    if len(digest.items) == 1:
        return _cut(" ".join(f"Approval needed: {digest.items[0].title}".split()), 150)
    return f"{len(digest.items)} approval requests are waiting for you"


def _lines(item: Item) -> list[str]:
    return [item.title, item.sentence, *([item.risk] if item.risk else []), item.status]


def email_message(digest: Digest, *, sender: str, to: str) -> EmailMessage:
    """The e-mail: plain text and an HTML alternative, one link per request."""
    message = EmailMessage()
    message["Subject"] = subject(digest)
    message["From"] = sender
    message["To"] = to
    text = ["These requests wait for your decision:", ""]
    html = ["<p>These requests wait for your decision:</p>"]
    for item in digest.items:
        text += [*_lines(item), f"Open: {item.link}", ""]
        rows = "".join(f"<br>{escape(line)}" for line in _lines(item)[1:])
        html.append(
            f'<p><a href="{escape(item.link)}"><strong>{escape(item.title)}</strong></a>{rows}</p>'
        )
    footer = "The link opens the request after you sign in; it is yours alone and expires."
    text.append(footer)
    html.append(f"<p><small>{escape(footer)}</small></p>")
    message.set_content("\n".join(text))
    message.add_alternative("\n".join(html), subtype="html")
    return message


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped, so a value cannot inject a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(digest: Digest) -> JsonObject:
    """A Slack incoming-webhook body: fallback `text` and Block Kit `blocks`."""
    shown = digest.items[:_CHAT_ITEMS]
    blocks: list[JsonValue] = [
        {"type": "header", "text": {"type": "plain_text", "text": subject(digest)}}
    ]
    for item in shown:
        body = "\n".join(
            [f"*{_mrkdwn(item.title)}*", *(_mrkdwn(line) for line in _lines(item)[1:])]
        )
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(body, 3000)},
                "accessory": {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open the request"},
                    "url": item.link,
                    "action_id": _cut(f"open-{item.approval_id}", 255),
                },
            }
        )
        blocks.append({"type": "divider"})
    more = len(digest.items) - len(shown)
    note = "Each link opens the request after you sign in."
    if more:
        note = f"{more} more in the inbox. {note}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return {"text": _mrkdwn(subject(digest)), "blocks": blocks}


def _plain_markdown(text: str) -> str:
    """`text` with Markdown link syntax broken apart, so it reads as the text it is.

    Teams renders Markdown links in a TextBlock: `[Approve](https://elsewhere)` in a value
    would show as a disguised link.
    """
    return text.replace("](", "] (")


def teams_payload(digest: Digest) -> JsonObject:
    """A Teams incoming-webhook body: a message with one Adaptive Card (version 1.4)."""
    body: list[JsonValue] = [
        {
            "type": "TextBlock",
            "text": _plain_markdown(subject(digest)),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    shown = digest.items[:_CHAT_ITEMS]
    for item in shown:
        body.append(
            {
                "type": "TextBlock",
                "text": _plain_markdown(item.title),
                "weight": "Bolder",
                "wrap": True,
                "separator": True,
            }
        )
        for line in _lines(item)[1:]:
            body.append(
                {
                    "type": "TextBlock",
                    "text": _plain_markdown(line),
                    "wrap": True,
                    "spacing": "None",
                }
            )
        body.append(
            {
                "type": "ActionSet",
                "actions": [
                    {"type": "Action.OpenUrl", "title": "Open the request", "url": item.link}
                ],
            }
        )
    more = len(digest.items) - len(shown)
    note = "Each link opens the request after you sign in."
    body.append(
        {
            "type": "TextBlock",
            "text": f"{more} more in the inbox. {note}" if more else note,
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )
    card: JsonObject = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }
