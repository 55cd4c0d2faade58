"""The notifier: a loop in the API process that tells approvers what waits for them.

Each pass reads the pending requests and their audit trails from the store, records the
notices they call for (`plan_notices`; idempotent per key, so every API replica may run
the loop), claims the notices that are due, and sends each recipient's notices on a
channel as one digest. It runs beside the workflows, never in them: a slow SMTP server or
a broken webhook delays a notice, never an approval. A transient failure is retried with
a growing delay up to `max_attempts`; a notice whose request was decided or moved on
before it went out is dropped, not sent. Edits to the approvers file are taken up
between passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from orchestrator.approvals.notify.config import Notifications, SmtpSettings, env_secret
from orchestrator.approvals.notify.links import GROUP_PREFIX, deep_link, link_key
from orchestrator.approvals.notify.plan import Stage, deadline_words, plan_notices, stage_of
from orchestrator.approvals.notify.render import (
    Digest,
    Item,
    email_message,
    slack_payload,
    teams_payload,
)
from orchestrator.approvals.notify.senders import SendError, post_webhook, retry_delay, send_email
from orchestrator.approvals.people import ApproverDirectory, approvers_file, load_approvers
from orchestrator.approvals.wording import read_request
from orchestrator.exceptions import ConfigError
from orchestrator.logs import get_logger, register_secret
from orchestrator.settings import Settings
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.notices import (
    NoticeKeyConflict,
    NoticeRecord,
    NoticeStatus,
    notice_differences,
)
from orchestrator.store.records import ApprovalRecord, ApprovalStatus, AuditEvent, EventKind
from orchestrator.store.store import Store

__all__ = ["Channels", "Notifier", "PassReport", "notifier_for", "resolve_channels"]

log = get_logger(__name__)

LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class Channels:
    """The channels' secrets, read from the environment once, kept out of every message."""

    smtp: SmtpSettings | None = None
    smtp_password: str | None = field(default=None, repr=False)
    hooks: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    """(group, `slack`|`teams`) → webhook URL."""


def resolve_channels(path: Path, notifications: Notifications) -> Channels:
    """Read the secrets the notifications section names.

    Raises:
        ConfigError: a variable is not set, naming file, field and variable.
    """
    smtp = notifications.email
    password = None
    if smtp is not None and smtp.password_env:
        password = env_secret(path, "notifications.email.password_env", smtp.password_env)
    if smtp is not None and smtp.ca_file:
        ca_file = path.parent / smtp.ca_file
        if not ca_file.is_file():
            raise ConfigError(f"{path}: notifications.email.ca_file: no file {ca_file}")
        smtp = smtp.model_copy(update={"ca_file": str(ca_file)})
    hooks: dict[tuple[str, str], str] = {}
    for group, chat in notifications.chat.items():
        for channel in ("slack", "teams"):
            variable = getattr(chat, channel)
            if variable:
                where = f"notifications.chat.{group}.{channel}"
                hooks[group, channel] = env_secret(path, where, variable)
    for secret in (password, *hooks.values()):
        register_secret(secret)  # scrubbed from every log line, should one slip through
    return Channels(smtp, password, hooks)


@dataclass
class PassReport:
    """What one pass did, for tests and the log."""

    recorded: int = 0
    sent: int = 0
    dropped: int = 0
    retried: int = 0
    failed: int = 0
    conflicts: int = 0
    """Notices whose key holds different content (`NoticeKeyConflict`): logged as errors,
    and neither one sent, since one of the two is not what it claims to be."""


def _status(stage: Stage) -> str:
    if stage.delegate is not None:
        by = f" by {stage.delegated_by}" if stage.delegated_by else ""
        return f"Delegated to you{by}"
    if stage.key.startswith("escalated:"):
        return f"Escalated to {stage.group}: nobody decided in time"
    return f"Waiting for {stage.group}"


def _stamp(path: Path) -> str | None:
    """What the approvers file holds now, in short (None: no file)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass
class _Request:
    record: ApprovalRecord
    events: list[AuditEvent]
    stage: Stage | None


class Notifier:
    """One process's notifier over the store, the approvers file and the channels."""

    def __init__(
        self,
        store: Store,
        directory: ApproverDirectory,
        channels: Channels,
        *,
        inbox_secret: bytes,
        skills: SkillRegistry | None = None,
    ) -> None:
        if directory.notifications is None:
            raise ConfigError("the approvers file has no notifications section")
        self.store = store
        self.directory = directory
        self.settings: Notifications = directory.notifications
        self.channels = channels
        self.skills = skills
        self._key = link_key(inbox_secret)
        self._stamp: str | None = None

    async def run_once(self, now: datetime | None = None) -> PassReport:
        """Record the notices pending requests call for, and send the due digests."""
        now = now or datetime.now(UTC)
        report = PassReport()
        requests, wanted = await self._plan(now)
        # One read of what is recorded already, so a pass writes only new notices.
        known = {
            n.notice_key: n
            for n in await self.store.notices.list_notices(approval_ids=list(requests))
        }
        for notice in list(wanted.values()):
            try:
                stored = known.get(notice.notice_key)
                if stored is None:
                    report.recorded += await self.store.notices.record([notice])
                elif differ := notice_differences(stored, notice):
                    raise NoticeKeyConflict(notice.notice_key, differ)
            except NoticeKeyConflict as exc:
                # Loud, and contained: the other notices of this pass still go out.
                log.error("notice key conflict", error=str(exc), approval_id=notice.approval_id)
                report.conflicts += 1
                del wanted[notice.notice_key]
        claimed = await self.store.notices.claim_due(now, LEASE)
        batches: dict[tuple[str, str], list[NoticeRecord]] = defaultdict(list)
        for notice in claimed:
            batches[notice.channel, notice.recipient].append(notice)
        for (channel, recipient), notices in batches.items():
            keep = [n for n in notices if n.notice_key in wanted]
            gone = [n.notice_key for n in notices if n.notice_key not in wanted]
            await self.store.notices.finish(gone, NoticeStatus.DROPPED, now)
            report.dropped += len(gone)
            if keep:
                await self._send(channel, recipient, keep, requests, now, report)
        return report

    async def _plan(self, now: datetime) -> tuple[dict[str, _Request], dict[str, NoticeRecord]]:
        requests: dict[str, _Request] = {}
        wanted: dict[str, NoticeRecord] = {}
        trails: dict[str, list[AuditEvent]] = {}
        for record in await self.store.list_approvals(status=ApprovalStatus.PENDING):
            if record.session_id not in trails:
                trails[record.session_id] = await self.store.list_events(record.session_id)
            events = trails[record.session_id]
            session = await self.store.get_session(record.session_id)
            requester = next(
                (
                    e.payload["requested_by"]
                    for e in events
                    if e.kind is EventKind.SESSION_STARTED
                    and isinstance(e.payload.get("requested_by"), str)
                ),
                None,
            )
            notices = plan_notices(
                record,
                events,
                self.directory,
                requester=requester if isinstance(requester, str) else None,
                tenant=session.tenant if session else "default",
                now=now,
            )
            wanted.update({n.notice_key: n for n in notices})
            requests[record.approval_id] = _Request(
                record, events, stage_of(record, events, self.directory)
            )
        return requests, wanted

    def _item(self, request: _Request, recipient: str, now: datetime) -> Item:
        record = request.record
        reading = read_request(record, request.events, self.skills)
        expires = now + timedelta(seconds=self.settings.link_seconds)
        link = deep_link(self.settings.base_url, self._key, record.approval_id, recipient, expires)
        stage = request.stage or Stage("", None)
        deadline = deadline_words(stage, self.directory, now)
        return Item(
            approval_id=record.approval_id,
            title=reading.title,
            sentence=reading.sentence,
            risk=reading.risk,
            status=_status(stage) + (f". {deadline}." if deadline else ""),
            link=link,
        )

    async def _send(
        self,
        channel: str,
        recipient: str,
        notices: list[NoticeRecord],
        requests: dict[str, _Request],
        now: datetime,
        report: PassReport,
    ) -> None:
        ids = sorted(
            {n.approval_id for n in notices}, key=lambda a: (requests[a].record.requested_at, a)
        )
        digest = Digest(recipient, tuple(self._item(requests[a], recipient, now) for a in ids))
        keys = [n.notice_key for n in notices]
        try:
            try:
                await self._deliver(channel, recipient, digest)
            except (ValueError, TypeError) as exc:
                # A message the channel's library refused to build: retrying cannot help,
                # and it must not stop the other recipients' digests in this pass.
                raise SendError(
                    f"{channel} message refused ({type(exc).__name__})", transient=False
                ) from None
        except SendError as exc:
            attempts = max(n.attempts for n in notices)
            again = exc.transient and attempts < self.settings.max_attempts
            log.warning(
                "notice not delivered",
                channel=channel,
                recipient=recipient,
                error=str(exc),
                attempts=attempts,
                retry=again,
            )
            if again:
                retry_at = now + timedelta(seconds=retry_delay(attempts))
                await self.store.notices.finish(
                    keys, NoticeStatus.QUEUED, now, error=str(exc), retry_at=retry_at
                )
                report.retried += len(keys)
            else:
                await self.store.notices.finish(keys, NoticeStatus.FAILED, now, error=str(exc))
                report.failed += len(keys)
            return
        await self.store.notices.finish(keys, NoticeStatus.SENT, now)
        report.sent += len(keys)
        log.info("notice sent", channel=channel, recipient=recipient, requests=len(ids))

    async def _deliver(self, channel: str, recipient: str, digest: Digest) -> None:
        if channel == "email":
            person = self.directory.users.get(recipient)
            smtp = self.channels.smtp
            if smtp is None or person is None or not person.email:
                raise SendError(f"no e-mail address or server for {recipient}", transient=False)
            message = email_message(digest, sender=smtp.sender, to=person.email)
            await send_email(smtp, self.channels.smtp_password, message)
            return
        url = self.channels.hooks.get((recipient.removeprefix(GROUP_PREFIX), channel))
        if url is None:
            raise SendError(f"no {channel} webhook for {recipient}", transient=False)
        payload = slack_payload(digest) if channel == "slack" else teams_payload(digest)
        async with httpx.AsyncClient(timeout=10.0) as http:
            await post_webhook(http, channel, url, payload)

    def reload(self, path: Path) -> bool:
        """Take up an edited approvers file (people, addresses, channels) between passes.

        A file that no longer loads, or whose secrets' variables are unset, is logged with
        its error (file and field) and the last good configuration stays in use; a file
        without a notifications section stops the notices. Returns whether it changed.
        """
        stamp = _stamp(path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            directory = load_approvers(path)
            settings = directory.notifications
            channels = resolve_channels(path, settings) if settings else Channels()
        except ConfigError as exc:
            log.error("approvers file not taken up; notices go on as before", error=str(exc))
            return False
        self.directory, self.channels = directory, channels
        self.settings = settings or self.settings.model_copy(update={"email": None, "chat": {}})
        return True

    async def run(self, source: Path | None = None) -> None:
        """Pass after pass, every `poll_seconds`, until cancelled; a failed pass is logged.

        With `source` (the approvers file), edits to it are taken up before each pass.
        """
        if source is not None:
            self._stamp = _stamp(source)
        while True:
            try:
                if source is not None:
                    self.reload(source)
                report = await self.run_once()
                if report.sent or report.failed or report.conflicts:
                    log.info("notifier pass", **vars(report))
            except Exception as exc:  # the loop must outlive any one pass
                log.error("notifier pass failed", error=str(exc), kind=type(exc).__name__)
            await asyncio.sleep(self.settings.poll_seconds)


@contextlib.asynccontextmanager
async def notifier_for(settings: Settings, store: Store) -> AsyncIterator[Notifier | None]:
    """Run the project's notifier while the block runs; None when notices are off.

    Raises:
        ConfigError: the approvers file is malformed, a secret's variable is unset, or
            `ORCHESTRATOR_INBOX_SECRET` is unset (links must verify in every API process).
    """
    path = approvers_file(settings.project_dir)
    directory = load_approvers(path)
    if directory.notifications is None:
        yield None
        return
    secret = os.environ.get("ORCHESTRATOR_INBOX_SECRET", "").encode()
    if not secret:
        raise ConfigError(
            f"{path}: notifications: set ORCHESTRATOR_INBOX_SECRET, the key that signs the"
            " notices' links, so every API process and restart accepts them"
        )
    notifier = Notifier(
        store,
        directory,
        resolve_channels(path, directory.notifications),
        inbox_secret=secret,
        skills=SkillRegistry.load_directory(settings.project_dir / "skills"),
    )
    task = asyncio.create_task(notifier.run(path), name="approval-notifier")
    try:
        yield notifier
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
