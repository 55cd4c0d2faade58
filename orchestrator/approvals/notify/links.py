"""Signed, expiring deep links from a notice to its request page.

A link is `<base_url>/inbox/requests/<id>?n=<token>`. The token carries the request, the
recipient (a person, or `group:<name>` for a group's chat channel) and an expiry, signed
with HMAC-SHA256 under a key derived from the inbox secret (`ORCHESTRATOR_INBOX_SECRET`)
for this purpose only, so a link token can never pass as a session cookie or CSRF token.

A link grants nothing by itself. The request page still needs the person signed in (the
inbox's own sign-in, which returns to the link afterwards); the token then has to match
the page's request and the signed-in person (or a group they are in), and be unexpired,
or the page says why and shows nothing of the request. So a forwarded or altered link
opens nothing for anyone else, and a link to one request cannot open another. The
secret and tokens are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Collection
from datetime import datetime
from enum import StrEnum
from urllib.parse import quote

__all__ = ["GROUP_PREFIX", "LinkCheck", "check_link", "deep_link", "link_key", "sign_link"]

GROUP_PREFIX = "group:"


class LinkCheck(StrEnum):
    """What a link's token says about opening a request page now."""

    OK = "ok"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    OTHER_REQUEST = "other_request"
    OTHER_PERSON = "other_person"


def link_key(inbox_secret: bytes) -> bytes:
    """The key that signs deep links, derived from the inbox secret for this use alone."""
    return hmac.new(inbox_secret, b"orchestrator/notify/deep-link/v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_link(key: bytes, approval_id: str, recipient: str, expires: datetime) -> str:
    """A token for `recipient` to open request `approval_id` until `expires`."""
    body = json.dumps(
        {"a": approval_id, "r": recipient, "e": int(expires.timestamp())},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    return f"{_b64(body)}.{_b64(hmac.new(key, body, hashlib.sha256).digest())}"


def deep_link(
    base_url: str, key: bytes, approval_id: str, recipient: str, expires: datetime
) -> str:
    """The full link a notice carries."""
    token = sign_link(key, approval_id, recipient, expires)
    return f"{base_url.rstrip('/')}/inbox/requests/{quote(approval_id, safe='')}?n={token}"


def check_link(
    key: bytes,
    token: str,
    *,
    approval_id: str,
    user: str,
    groups: Collection[str],
    now: datetime,
) -> LinkCheck:
    """Whether `token` lets the signed-in `user` (in `groups`) open `approval_id` now."""
    body_b64, _, signature = token.partition(".")
    try:
        body = _unb64(body_b64)
        given = _unb64(signature)
    except (ValueError, TypeError):
        return LinkCheck.MALFORMED
    if not hmac.compare_digest(given, hmac.new(key, body, hashlib.sha256).digest()):
        return LinkCheck.MALFORMED
    try:
        claims = json.loads(body)
        link_request, recipient, expires = str(claims["a"]), str(claims["r"]), int(claims["e"])
    except (ValueError, KeyError, TypeError):
        return LinkCheck.MALFORMED
    if link_request != approval_id:
        return LinkCheck.OTHER_REQUEST
    if expires < now.timestamp():
        return LinkCheck.EXPIRED
    if recipient.startswith(GROUP_PREFIX):
        if recipient.removeprefix(GROUP_PREFIX) not in groups:
            return LinkCheck.OTHER_PERSON
    elif recipient != user:
        return LinkCheck.OTHER_PERSON
    return LinkCheck.OK
