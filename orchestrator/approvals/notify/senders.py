"""The I/O of notices: SMTP for e-mail, HTTPS POSTs for chat webhooks.

Each failure is a `SendError` saying whether trying again may help (`transient`): a
connection or timeout failure, an SMTP 4xx reply, HTTP 429 or 5xx are transient; an SMTP
5xx, a refused sign-in or another HTTP 4xx is not, and retrying would only repeat it.
Messages name the channel and what went wrong, never a password or a webhook URL (the
URL is the credential), so they are safe to log and to store on the notice.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage

import httpx

from orchestrator.approvals.notify.config import SmtpSettings
from orchestrator.types import JsonObject

__all__ = ["SendError", "post_webhook", "retry_delay", "send_email"]


class SendError(Exception):
    """A notice could not be delivered; `transient` says whether a retry may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` tries: 15 s doubling, at most an hour."""
    return float(min(15 * 2 ** max(attempts - 1, 0), 3600))


def _send_blocking(settings: SmtpSettings, password: str | None, message: EmailMessage) -> None:
    context = ssl.create_default_context(cafile=settings.ca_file)
    smtp: smtplib.SMTP
    if settings.security == "tls":
        smtp = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout_seconds, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
    with smtp:
        if settings.security == "starttls":
            smtp.starttls(context=context)
        if settings.username:
            smtp.login(settings.username, password or "")
        smtp.send_message(message)


async def send_email(settings: SmtpSettings, password: str | None, message: EmailMessage) -> None:
    """Send one message through the configured SMTP server.

    Raises:
        SendError: the server could not be reached or refused the message.
    """
    server = f"SMTP {settings.host}:{settings.port}"
    try:
        await asyncio.to_thread(_send_blocking, settings, password, message)
    except smtplib.SMTPAuthenticationError as exc:
        raise SendError(
            f"{server} refused the sign-in (code {exc.smtp_code})", transient=False
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        transient = all(400 <= code < 500 for code in codes)
        raise SendError(
            f"{server} refused the recipient (codes {codes})", transient=transient
        ) from None
    except smtplib.SMTPResponseException as exc:
        transient = 400 <= exc.smtp_code < 500
        raise SendError(f"{server} answered {exc.smtp_code}", transient=transient) from None
    except ssl.SSLCertVerificationError:
        raise SendError(
            f"{server}: its certificate is not trusted (notifications.email.ca_file names"
            " a private CA)",
            transient=False,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(f"{server} unreachable ({type(exc).__name__})", transient=True) from None


async def post_webhook(
    http: httpx.AsyncClient, channel: str, url: str, payload: JsonObject
) -> None:
    """POST a chat message to an incoming webhook.

    Raises:
        SendError: naming the channel and the HTTP status or failure kind, not the URL.
    """
    try:
        answer = await http.post(url, json=payload)
    except httpx.HTTPError as exc:
        raise SendError(
            f"{channel} webhook unreachable ({type(exc).__name__})", transient=True
        ) from None
    if answer.is_success:
        return
    code = answer.status_code
    raise SendError(
        f"{channel} webhook answered HTTP {code}", transient=code == 429 or code >= 500
    ) from None
