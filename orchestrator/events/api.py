"""The session API: a session, its events (Server-Sent Events), and feedback on it.

`GET /api/sessions/{id}`, `GET /api/sessions/{id}/events` and
`POST /api/sessions/{id}/feedback` (see `orchestrator.session.feedback`).

Authenticated like the approvals API (`Authorization: Bearer <token>` of a person in
`approvers.yaml`). A session that does not exist and a session of a tenant the person
may not see get the same 404, so the answer never tells that a session exists.

The event stream:
- each durable event is an SSE message with `id: <seq>` and no `event:` field (so a
  browser's `EventSource.onmessage` gets it) and the `AuditEvent` as JSON data;
- each delta is `event: delta` without an `id:`, which leaves the client's last event id
  alone: deltas are never resumed, only durable events are;
- `Last-Event-ID: N` (what `EventSource` sends when it reconnects) or `?after=N`
  resumes after event N; the header wins when both are given;
- after the session's last event (`session_completed`/`session_failed`) comes
  `event: end` and the stream closes; connecting again after that gets 204, which tells
  `EventSource` to stop reconnecting;
- a watcher that falls too far behind gets `event: dropped` with `{"resume_after": N}`
  and the stream closes; one that stops reading for `send_timeout` seconds is
  disconnected;
- `: keepalive` comments every `heartbeat` seconds keep proxies from closing the stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Final

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client
from temporalio.service import RPCError

from orchestrator.approvals.people import Approver, ApproverDirectory
from orchestrator.approvals.reloading import Approvers, current
from orchestrator.events.hub import EventHub, SharedItem
from orchestrator.events.models import TERMINAL_KINDS, Dropped
from orchestrator.events.sse import EventStreamResponse, comment, frame
from orchestrator.session import names
from orchestrator.session.feedback import Feedback, FeedbackError, give_feedback
from orchestrator.session.names import workflow_id_for
from orchestrator.session.types import SessionState
from orchestrator.store.outcomes import OutcomeKeyConflict
from orchestrator.store.records import AuditEvent, SessionRecord, SessionStatus
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = ["HEARTBEAT_S", "parse_after", "session_routes"]

HEARTBEAT_S: Final = 15.0
"""Seconds between keepalive comments on an idle stream."""

_NO_TOKEN = "a valid API token is required (Authorization: Bearer ...)"
_FINISHED = frozenset({SessionStatus.COMPLETED, SessionStatus.FAILED})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def parse_after(request: Request) -> int | str:
    """The `seq` to resume after (`Last-Event-ID`, else `?after=`, else 0), or an error."""
    header = request.headers.get("last-event-id")
    raw, where = (
        (header, "Last-Event-ID header") if header else (request.query_params.get("after"), "after")
    )
    if raw is None or raw == "":
        return 0
    if not raw.strip().isdigit():
        return f"{where}: {raw[:40]!r} is not an event number (a whole number >= 0)"
    return int(raw)


class _Handlers:
    """The two endpoints over a hub, the approvers and (optionally) Temporal."""

    def __init__(
        self,
        hub: EventHub,
        directory: Approvers,
        client: Callable[[], Awaitable[Client]] | None,
        heartbeat: float,
        send_timeout: float,
    ) -> None:
        self.hub = hub
        self.store = hub.store
        self.approvers = directory
        self.client = client
        self.heartbeat = heartbeat
        self.send_timeout = send_timeout

    @property
    def directory(self) -> ApproverDirectory:
        """The approvers in force now (the file is re-read when it changed)."""
        return current(self.approvers)

    def person_of(self, request: Request) -> Approver | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.directory.by_token(token.strip())

    async def visible(self, request: Request) -> SessionRecord | Response:
        """The session if the caller may see it; else 401, or the same 404 as unknown."""
        person = self.person_of(request)
        if person is None:
            return _error(401, _NO_TOKEN)
        session_id = request.path_params["session_id"]
        record = await self.store.get_session(session_id)
        if record is None or not person.sees_tenant(record.tenant):
            return _error(404, f"no session {session_id!r}")
        return record

    async def live_state(self, record: SessionRecord) -> JsonObject | None:
        """The workflow's `state` query, when Temporal is at hand and the session runs."""
        if self.client is None or record.status in _FINISHED:
            return None
        try:
            handle = (await self.client()).get_workflow_handle(workflow_id_for(record.session_id))
            state = await handle.query(names.STATE_QUERY, result_type=SessionState)
        except RPCError:
            return None  # closed meanwhile, or no worker yet: the stored record stands
        dumped: JsonObject = state.model_dump(mode="json")
        return dumped

    async def show(self, request: Request) -> Response:
        record = await self.visible(request)
        if isinstance(record, Response):
            return record
        view: dict[str, object] = {
            **record.model_dump(mode="json"),
            "last_seq": await _last_seq(self.store, record.session_id),
            "state": await self.live_state(record),
        }
        return JSONResponse(view)

    async def feedback(self, request: Request) -> Response:
        """Record feedback on the session: `{"key", "score", "step_id"?, "comment"?}`."""
        record = await self.visible(request)
        if isinstance(record, Response):
            return record
        person = self.person_of(request)
        try:
            body = Feedback.model_validate_json(await request.body())
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            return _error(400, f"bad feedback: {where}")
        try:
            written = await give_feedback(
                self.store, record.session_id, body, given_by=person.name if person else "-"
            )
        except FeedbackError as exc:
            return _error(400, str(exc))
        except OutcomeKeyConflict as exc:
            return _error(409, str(exc))
        return JSONResponse(
            {"recorded": [{"step_id": o.step_id, "deployment": o.deployment} for o in written]}
        )

    async def events(self, request: Request) -> Response:
        record = await self.visible(request)
        if isinstance(record, Response):
            return record
        after = parse_after(request)
        if isinstance(after, str):
            return _error(400, after)
        last = await self.store.stream.last_event(record.session_id)
        # Feedback may be audited after a session ended: then its record says it is over.
        ended = record.status in (SessionStatus.COMPLETED, SessionStatus.FAILED)
        if last is not None and (ended or last.kind in TERMINAL_KINDS) and (last.seq or 0) <= after:
            return Response(status_code=204)
        # An ended session's stream stops at its last event even when that is feedback
        # audited after the end (a resume between the two would otherwise never see `end`).
        end_at = (last.seq or 0) if ended and last is not None else None
        return EventStreamResponse(
            _stream(self.hub, record.session_id, after, self.heartbeat, end_at),
            send_timeout=self.send_timeout,
        )


async def _last_seq(store: Store, session_id: str) -> int:
    last = await store.stream.last_event(session_id)
    return 0 if last is None else last.seq or 0


def session_routes(
    hub: EventHub,
    directory: Approvers,
    client: Callable[[], Awaitable[Client]] | None = None,
    *,
    heartbeat: float = HEARTBEAT_S,
    send_timeout: float = 30.0,
) -> list[Route]:
    """The session routes over a hub, the approvers (for tokens) and Temporal (live state).

    Args:
        hub: The process's event hub (`live_hub`).
        directory: People and their tokens.
        client: Temporal, for the live `state` in `GET /api/sessions/{id}`; None leaves
            it out.
        heartbeat: Seconds between keepalive comments.
        send_timeout: Seconds a client may take to accept one chunk before it is dropped.
    """
    handlers = _Handlers(hub, directory, client, heartbeat, send_timeout)
    return [
        Route("/api/sessions/{session_id}", handlers.show, methods=["GET"]),
        Route("/api/sessions/{session_id}/events", handlers.events, methods=["GET"]),
        Route("/api/sessions/{session_id}/feedback", handlers.feedback, methods=["POST"]),
    ]


async def _stream(
    hub: EventHub, session_id: str, after: int, heartbeat: float, end_at: int | None = None
) -> AsyncGenerator[bytes, None]:
    """The SSE chunks of one watcher: everything at hand goes out in one write.

    Each item's frame is encoded once for all the session's watchers (`SharedItem.sse`);
    under load a wake-up carries many frames, so the per-write costs (the HTTP layer, a
    syscall, the client's wake-up) are paid per batch, not per token.
    """
    with hub.watch(session_id, after=after) as watch:
        yield b"retry: 1000\n\n"
        while True:
            batch = await watch.next_batch(heartbeat)
            if not batch:
                yield comment("keepalive")
                continue
            chunk, ended = _frames(batch, end_at)
            yield chunk
            if ended:
                return


def _frames(batch: list[SharedItem], end_at: int | None = None) -> tuple[bytes, bool]:
    """The frames of `batch`, up to its end: a drop, the session's last event, or `end_at`.

    `end_at` is the last event of a session that had ended when the watcher came.
    """
    frames = []
    for shared in batch:
        frames.append(shared.sse)
        item = shared.item
        if isinstance(item, Dropped):
            return b"".join(frames), True
        if isinstance(item, AuditEvent) and (
            item.kind in TERMINAL_KINDS or (end_at is not None and (item.seq or 0) >= end_at)
        ):
            frames.append(frame(json.dumps({"last_seq": item.seq}), event="end"))
            return b"".join(frames), True
    return b"".join(frames), False
