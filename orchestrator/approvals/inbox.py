"""The approval inbox: server-rendered pages for business users, under `/inbox`.

Sign-in checks the approvers file's scrypt hash and sets a session cookie signed with
HMAC-SHA256 that expires (`SESSION_SECONDS`). Failed sign-ins are throttled per name and
per client address (`orchestrator.approvals.throttle`: a 429 with `Retry-After`). Cookies
are marked `Secure` when the request came over https: its own scheme, or the
`X-Forwarded-Proto` of a proxy uvicorn trusts (`FORWARDED_ALLOW_IPS`, loopback by
default). Every form carries a CSRF token: on the sign-in form a double-submit cookie, on
decision forms an HMAC of the session cookie, so a form posted from elsewhere, or by
someone else, is refused. Pages are sent with `X-Frame-Options: DENY` and a content
security policy that allows no script, except on the queue and request pages when the
process has an event hub: the inbox's own script file (`static/live.js`), which keeps
them current from `/inbox/queue/events` (see `queue_stream`) and
`/inbox/requests/{id}/events` (see `request_stream`).
A request of a session whose tenant the person may not see (`Approver.tenants`) is
answered like an unknown one, 404, as by the session events API.
Decisions go through the same checks and service call as the JSON API; so do the two
forms beside Approve and Reject: approve with changed arguments (checked against the
skill's contract, the change recorded on the decision) and delegate to another member
of the group.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html import escape
from importlib import resources
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from orchestrator.approvals import _pages
from orchestrator.approvals.api import Standing, delegation_refusal, standing
from orchestrator.approvals.delegation import delegate_approval, live_state
from orchestrator.approvals.edits import FIELD_PREFIX, check_edit, parse_edit
from orchestrator.approvals.notify import landing
from orchestrator.approvals.notify.links import check_link, link_key
from orchestrator.approvals.people import Approver, ApproverDirectory, sees_session
from orchestrator.approvals.queue import Queue, Show, load_queue, parse_show
from orchestrator.approvals.queue_stream import queue_events, version
from orchestrator.approvals.reloading import Approvers, current
from orchestrator.approvals.request_stream import request_events
from orchestrator.approvals.rules import check_content, delegates
from orchestrator.approvals.throttle import SignInThrottle
from orchestrator.approvals.wording import read_request
from orchestrator.events.api import parse_after
from orchestrator.events.hub import EventHub
from orchestrator.events.models import TERMINAL_KINDS
from orchestrator.events.sse import EventStreamResponse
from orchestrator.exceptions import ApprovalError
from orchestrator.service import decide_approval
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.records import ApprovalRecord, ApprovalStatus, SessionRecord
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = ["LIVE_CSP", "SECURITY_HEADERS", "SESSION_SECONDS", "inbox_routes"]

SESSION_SECONDS = 8 * 3600
SESSION_COOKIE = "inbox_session"
LOGIN_CSRF_COOKIE = "inbox_login_csrf"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
LIVE_CSP = SECURITY_HEADERS["Content-Security-Policy"] + "; script-src 'self'; connect-src 'self'"
"""A live page's policy (the queue, a request): the inbox's own script file, and fetches
and the event stream from the inbox itself; still no inline script."""
LIVE_JS = (resources.files("orchestrator.approvals") / "static" / "live.js").read_text("utf-8")


def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _html(text: str, status: int = 200) -> Response:
    return _secure(HTMLResponse(text, status_code=status))


def _redirect(url: str) -> Response:
    return _secure(RedirectResponse(url, status_code=303))


def _https(request: Request) -> bool:
    """Whether the browser reached us over https (so cookies must never go over http).

    uvicorn has already applied a trusted proxy's `X-Forwarded-Proto` to the scheme.
    """
    return request.url.scheme == "https"


class _Inbox:
    def __init__(
        self,
        store: Store,
        directory: Approvers,
        client: Callable[[], Awaitable[Client]],
        secret: bytes,
        skills: SkillRegistry | None,
        hub: EventHub | None,
    ) -> None:
        self.store = store
        self.approvers = directory
        self.client = client
        self.secret = secret
        self.skills = skills
        self.hub = hub
        self.throttle = SignInThrottle()

    @property
    def directory(self) -> ApproverDirectory:
        """The approvers in force now (the file is re-read when it changed)."""
        return current(self.approvers)

    def _sign(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, user: str) -> str:
        payload = f"{user}|{int(time.time()) + SESSION_SECONDS}"
        return f"{payload}|{self._sign(payload)}"

    def user_of(self, request: Request) -> str | None:
        """The signed-in person, if the cookie is genuine, unexpired and still an approver."""
        raw = request.cookies.get(SESSION_COOKIE, "")
        user, _, rest = raw.partition("|")
        expires, _, signature = rest.partition("|")
        if not (user and expires.isdigit() and signature):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{user}|{expires}")):
            return None
        if int(expires) < time.time() or user not in self.directory.users:
            return None
        return user

    def csrf_for(self, request: Request) -> str:
        return self._sign("csrf:" + request.cookies.get(SESSION_COOKIE, ""))

    async def style(self, request: Request) -> Response:
        return _secure(Response(_pages.CSS, media_type="text/css"))

    async def login_form(self, request: Request) -> Response:
        asked = request.query_params.get(landing.NEXT_FIELD)
        next_path = landing.safe_next(asked)
        if asked is not None and self.user_of(request) is not None:
            return _redirect(next_path)  # signed in already: a notice's link goes on
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
        response = _html(_pages.login_page(token, next_path=next_path))
        self._set_login_csrf(request, response, token)
        return response

    def _set_login_csrf(self, request: Request, response: Response, token: str) -> None:
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            path="/inbox",
            secure=_https(request),
        )

    async def login(self, request: Request) -> Response:
        form = await request.form()
        token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        sent = str(form.get("csrf", ""))
        if not token or not hmac.compare_digest(token, sent):
            return _html("<p>Refused: the form's CSRF token is missing or wrong.</p>", 403)
        next_path = landing.safe_next(form.get(landing.NEXT_FIELD))
        name, now = str(form.get("user", "")), time.monotonic()
        address = request.client.host if request.client else "-"
        wait = self.throttle.retry_after(name, address, now)
        if wait:
            minutes = math.ceil(wait / 60)
            message = f"Too many failed sign-ins; try again in {minutes} minute(s)."
            response = _html(_pages.login_page(token, message, next_path), 429)
            response.headers["Retry-After"] = str(wait)
            self._set_login_csrf(request, response, token)
            return response
        person = self.directory.login(name, str(form.get("password", "")))
        if person is None:
            self.throttle.failed(name, address, now)
            response = _html(_pages.login_page(token, "Wrong name or password.", next_path), 401)
            self._set_login_csrf(request, response, token)
            return response
        self.throttle.succeeded(name)
        response = _redirect(next_path)
        response.set_cookie(
            SESSION_COOKIE,
            self.session_cookie(person.name),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            path="/inbox",
            secure=_https(request),
        )
        return response

    async def logout(self, request: Request) -> Response:
        response = _redirect("/inbox/login")
        response.delete_cookie(SESSION_COOKIE, path="/inbox", secure=_https(request))
        return response

    async def queue(self, request: Request) -> Response:
        user = self.user_of(request)
        if user is None:
            return _redirect("/inbox/login")
        queue = await self.load(user, parse_show(request.query_params.get("show")))
        page = _pages.queue_page(
            user, queue, datetime.now(UTC), version=version(queue), live=self.hub is not None
        )
        response = _html(page)
        if self.hub is not None:
            response.headers["Content-Security-Policy"] = LIVE_CSP
        return response

    async def load(self, user: str, show: Show, *, words: bool = True) -> Queue:
        """`user`'s queue under `show` (`words`: with each shown request in words)."""
        person = self.directory.users[user]
        return await load_queue(self.store, self.directory, person, show, self.skills, words=words)

    async def script(self, request: Request) -> Response:
        return _secure(Response(LIVE_JS, media_type="text/javascript"))

    async def queue_events(self, request: Request) -> Response:
        """The queue's live stream (`queue_stream`); 204 when the process has no hub."""
        user = self.user_of(request)
        if user is None:
            return _html("<p>Refused: sign in first.</p>", 401)
        if self.hub is None:
            return Response(status_code=204)
        show = parse_show(request.query_params.get("show"))

        async def load() -> Queue | None:
            if self.user_of(request) is None:
                return None
            return await self.load(user, show, words=False)

        since = request.query_params.get("version", "")
        return EventStreamResponse(queue_events(self.hub, load, since))

    def members_for(self, user: str, now: Standing) -> list[str]:
        """Whom `user` may hand a request to (`rules.delegates`); none without a live view."""
        if now.live is None:
            return []
        return delegates(
            user,
            group=now.group,
            members={name: person.groups for name, person in self.directory.users.items()},
            requested_by=now.requested_by,
            approved_by=now.live.approved_by,
        )

    async def show(
        self,
        request: Request,
        error: str | None = None,
        code: int = 200,
        draft: JsonObject | None = None,
    ) -> Response:
        user = self.user_of(request)
        if user is None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return _html(landing.sign_in_first(here))
        approval_id = request.path_params["approval_id"]
        person = self.directory.users[user]
        token = request.query_params.get("n")
        if token is not None:
            check = check_link(
                link_key(self.secret),
                token,
                approval_id=approval_id,
                user=user,
                groups=person.groups,
                now=datetime.now(UTC),
            )
            refusal = landing.link_refusal(check)
            if refusal is not None:
                return _html(landing.refused_page(refusal, user), 403)
        found = await self.visible(person, approval_id)
        if found is None:
            return _html(f"<p>No approval request {escape(approval_id)}.</p>", 404)
        record, session = found
        client = await self.client()
        now = await standing(self.store, self.directory, client, person, record)
        live, group, refusal = now.live, now.group, now.refusal
        may = refusal is None and record.status is ApprovalStatus.PENDING
        events = await self.store.list_events(record.session_id)
        after = max((e.seq or 0 for e in events), default=0)
        stream = f"/inbox/requests/{quote(approval_id)}/events?after={after}"
        page = _pages.request_page(
            user,
            record,
            read_request(record, events, self.skills),
            group=group,
            session=session,
            events=events,
            steps=_pages.plan_steps(await live_state(client, record), events, record),
            refusal=refusal,
            csrf=self.csrf_for(request),
            now=datetime.now(UTC),
            error=error,
            live=live,
            editable=may and bool(record.skill and record.arguments and self.skills),
            draft=draft,
            members=self.members_for(user, now) if may else [],
            stream=stream if self.hub is not None else None,
        )
        response = _html(page, code)
        if self.hub is not None:
            response.headers["Content-Security-Policy"] = LIVE_CSP
        return response

    async def visible(
        self, person: Approver, approval_id: str
    ) -> tuple[ApprovalRecord, SessionRecord | None] | None:
        """The request and its session; None when unknown or not `person`'s to see.

        Another tenant's (`sees_session`) gets the same None, so it never tells that
        one exists.
        """
        record = await self.store.get_approval(approval_id)
        if record is None:
            return None
        session = await self.store.get_session(record.session_id)
        return (record, session) if sees_session(person, session) else None

    async def request_events(self, request: Request) -> Response:
        """The request page's live stream (`request_stream`).

        204 without a hub, or once the session's last event is behind `after` or
        `Last-Event-ID` (which tells `EventSource` to stop).
        """
        user = self.user_of(request)
        if user is None:
            return _html("<p>Refused: sign in first.</p>", 401)
        approval_id = request.path_params["approval_id"]
        found = await self.visible(self.directory.users[user], approval_id)
        if found is None:
            return _html(f"<p>No approval request {escape(approval_id)}.</p>", 404)
        if self.hub is None:
            return Response(status_code=204)
        after = parse_after(request)
        if isinstance(after, str):
            return _html(f"<p>{escape(after)}.</p>", 400)
        session_id = found[0].session_id
        # The session's end, not its newest event: an event audited after the end (an MCP
        # call's record, feedback) must not hold a finished page's stream open.
        end = await self.store.stream.last_event(session_id, kinds=TERMINAL_KINDS)
        if end is not None and (end.seq or 0) <= after:
            return Response(status_code=204)

        def signed_in() -> bool:
            return self.user_of(request) is not None

        return EventStreamResponse(request_events(self.hub, session_id, after, signed_in))

    async def admitted(
        self, request: Request
    ) -> tuple[str, ApprovalRecord, FormData, Standing] | Response:
        """What a POST needs once checked, or the response refusing it.

        The signed-in person, the request, the form, and where the person stands on it.
        """
        user = self.user_of(request)
        if user is None:
            return _html("<p>Refused: sign in first.</p>", 401)
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")), self.csrf_for(request)):
            return _html("<p>Refused: the form's CSRF token is missing or wrong.</p>", 403)
        approval_id = request.path_params["approval_id"]
        person = self.directory.users[user]
        found = await self.visible(person, approval_id)
        if found is None:
            return _html(f"<p>No approval request {escape(approval_id)}.</p>", 404)
        record = found[0]
        now = await standing(self.store, self.directory, await self.client(), person, record)
        if now.refusal is not None:
            return _html(f"<p>Refused: {escape(now.refusal)}.</p>", 403)
        return user, record, form, now

    async def decide(self, request: Request) -> Response:
        admitted = await self.admitted(request)
        if isinstance(admitted, Response):
            return admitted
        user, record, form, _ = admitted
        decision = form.get("decision")
        reason = str(form.get("reason", "")).strip() or None
        if decision not in ("approve", "reject"):
            return await self.show(request, "Choose Approve or Reject.", 422)
        try:
            check_content(approve=decision == "approve", reason=reason, edited=False, kind=None)
        except ApprovalError as exc:
            return await self.show(request, f"Refused: {exc}.", 422)
        arguments: JsonObject | None = None
        if form.get("edit") and decision == "approve":
            fields = {k: str(v) for k, v in form.items() if k.startswith(FIELD_PREFIX)}
            draft: JsonObject = {k.removeprefix(FIELD_PREFIX): v for k, v in fields.items()}
            edited = parse_edit(fields, record.arguments)
            checked = (
                check_edit(self.skills, record, edited) if isinstance(edited, dict) else edited
            )
            if isinstance(checked, str):
                message = f"The changed arguments were refused: {checked}"
                return await self.show(request, message, 422, draft)
            arguments = checked
        try:
            await decide_approval(
                await self.client(),
                self.store,
                record.approval_id,
                approve=decision == "approve",
                decided_by=user,
                reason=reason,
                groups=self.directory.users[user].groups,
                arguments=arguments,
            )
        except ApprovalError as exc:
            return await self.show(request, str(exc), 409)
        return _redirect(f"/inbox/requests/{quote(record.approval_id)}")

    async def delegate(self, request: Request) -> Response:
        admitted = await self.admitted(request)
        if isinstance(admitted, Response):
            return admitted
        user, record, form, now = admitted
        to = str(form.get("to", ""))
        wrong = delegation_refusal(self.directory, record, now.group, to)
        if wrong is not None:
            return await self.show(request, wrong.removeprefix("to: "), 422)
        try:
            await delegate_approval(
                await self.client(),
                self.store,
                record.approval_id,
                delegated_by=user,
                groups=self.directory.users[user].groups,
                to=to,
                to_groups=self.directory.users[to].groups,
                reason=str(form.get("reason", "")).strip() or None,
            )
        except ApprovalError as exc:
            return await self.show(request, str(exc), 409)
        return _redirect(f"/inbox/requests/{quote(record.approval_id)}")


def inbox_routes(
    store: Store,
    directory: Approvers,
    client: Callable[[], Awaitable[Client]],
    secret: bytes,
    skills: SkillRegistry | None = None,
    hub: EventHub | None = None,
) -> list[Route]:
    """The inbox's routes; `secret` signs session cookies and CSRF tokens.

    `skills` checks approvers' argument edits against contracts; without it the page
    offers no edit form. `hub` (the process's `live_hub`) keeps the queue and request
    pages current; without it they fall back to a Refresh link and reloading now and then.
    """
    inbox = _Inbox(store, directory, client, secret, skills, hub)
    return [
        Route("/inbox/style.css", inbox.style),
        Route("/inbox/live.js", inbox.script),
        Route("/inbox/queue/events", inbox.queue_events),
        Route("/inbox/login", inbox.login_form, methods=["GET"]),
        Route("/inbox/login", inbox.login, methods=["POST"]),
        Route("/inbox/logout", inbox.logout),
        Route("/inbox", inbox.queue),
        Route("/inbox/requests/{approval_id}", inbox.show, methods=["GET"]),
        Route("/inbox/requests/{approval_id}/events", inbox.request_events, methods=["GET"]),
        Route("/inbox/requests/{approval_id}", inbox.decide, methods=["POST"]),
        Route("/inbox/requests/{approval_id}/delegate", inbox.delegate, methods=["POST"]),
    ]
