"""Where a notice's link lands: sign-in first, then the request, if the link is the reader's.

The inbox's session cookie is `SameSite=Strict`, so a browser does not send it on the
first request of a link clicked in a mail client or a chat app (another site started the
navigation), nor after a redirect of that request. An unsigned request page therefore
answers with a page of its own that moves on, by a `<meta refresh>` (no script), to the
sign-in form with `next` set: that second navigation starts on our site, so the cookie is
sent, and a person already signed in goes straight on to the request; anyone else signs
in and comes back. `next` is only ever a path inside the inbox, never another site.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from orchestrator.approvals._pages import _layout
from orchestrator.approvals.notify.links import LinkCheck

__all__ = [
    "NEXT_FIELD",
    "link_refusal",
    "refused_page",
    "safe_next",
    "sign_in_first",
    "sign_in_url",
]

NEXT_FIELD = "next"

_REFUSALS = {
    LinkCheck.MALFORMED: "This link is not one the inbox sent, or it was changed.",
    LinkCheck.EXPIRED: "This link has expired.",
    LinkCheck.OTHER_REQUEST: "This link is for another request.",
    LinkCheck.OTHER_PERSON: "This link was sent to someone else.",
}


def safe_next(raw: object) -> str:
    """`raw` if it is a path inside the inbox, else the queue (never another site)."""
    text = raw if isinstance(raw, str) else ""
    inside = text.startswith("/inbox/") or text == "/inbox"
    if not inside or "\\" in text or any(ord(c) < 32 for c in text):
        return "/inbox"
    return text


def sign_in_url(next_path: str) -> str:
    """The sign-in form that returns to `next_path`."""
    return f"/inbox/login?{NEXT_FIELD}={quote(safe_next(next_path), safe='')}"


def sign_in_first(next_path: str) -> str:
    """The page an unsigned request page answers with (see the module's docstring)."""
    url = escape(sign_in_url(next_path))
    return _layout(
        "Sign in",
        f'<meta http-equiv=refresh content="0;url={url}">'
        f'<p>Sign in to open this request: <a href="{url}">continue</a>.</p>',
    )


def link_refusal(check: LinkCheck) -> str | None:
    """Why a link does not open the page, in one sentence; None when it does."""
    return _REFUSALS.get(check)


def refused_page(reason: str, user: str) -> str:
    """What a refused link shows: the reason and the way to the queue, nothing else."""
    return _layout(
        "Link not valid",
        f"<h1>This link does not open the request</h1><p>{escape(reason)}</p>"
        '<p><a href="/inbox">Go to your approvals</a></p>',
        user,
    )
