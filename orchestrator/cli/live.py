"""A session as it happens, on a terminal: `sessions watch`, and `run --stream`'s text.

`LivePrinter` writes durable events as one line each (`#seq kind step: what`) and model
text inline as it streams, under a `step>` prefix; an attempt that failed is marked void
on its own line, and its retry streams again. Lines never interleave with text: a line
that arrives mid-answer ends the answer's line first.

`sessions watch ID` reads the session's stream from the store, as the handle does
(`SessionHandle.events`): on SQLite from this machine (deltas over loopback UDP), on
PostgreSQL from anywhere (`NOTIFY`). With `--api URL` it follows the API process's
Server-Sent Events instead (`orchestrator.events.client.follow`). Either way it resumes
after a lost connection from the last event it printed, so each durable event is printed
once, and it ends when the session ends: exit 0 when it completed, 1 when it failed.
Reading the store, it waits for a session that is not there yet (started a moment later,
or from elsewhere), saying so once on stderr.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Final, TextIO

import httpx
import typer
from rich.console import Console
from temporalio.client import Client, WorkflowHandle

from orchestrator.cli._common import err_console, load_settings, run_async
from orchestrator.cli.progress import follow as follow_progress
from orchestrator.client import connect
from orchestrator.events.client import follow
from orchestrator.events.models import StreamDelta
from orchestrator.exceptions import OrchestratorError, StoreError
from orchestrator.handle import SessionHandle
from orchestrator.session.types import SessionResult
from orchestrator.settings import Settings
from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.store.store import Store

__all__ = ["LivePrinter", "describe", "follow_streaming", "watch"]

RETRY_S: Final = 1.0
"""Seconds between attempts to reach the store again after it failed."""
APPEAR_POLL_S: Final = 0.5
"""Seconds between looks for a session that is not in the store yet (`sessions watch`)."""
TEXT_GRACE_S: Final = 2.0
"""How long `run` waits, after the result, for the text stream to reach the last event."""


def describe(event: AuditEvent) -> str:
    """One line for a durable event: its number, kind, step and the fact that matters."""
    head = f"#{event.seq} {event.kind.value}"
    if event.step_id:
        head += f" {event.step_id}"
    payload = event.payload
    what = ""
    match event.kind:
        case EventKind.MODEL_CALL:
            calls = payload.get("tool_calls") or []
            what = f"{event.model}, {event.input_tokens}+{event.output_tokens} tokens"
            if isinstance(calls, list) and calls:
                what += f", calls {', '.join(str(c) for c in calls)}"
        case EventKind.MODEL_PINNED:
            what = str(event.model or payload.get("model") or "")
        case EventKind.TOOL_CALL | EventKind.TOOL_ERROR:
            what = str(event.skill or payload.get("skill") or "")
        case EventKind.APPROVAL_REQUESTED | EventKind.APPROVAL_DECIDED:
            what = str(payload.get("approval_id") or "")
            if payload.get("decided_by"):
                what += f" by {payload['decided_by']}"
        case EventKind.SESSION_FAILED | EventKind.STEP_FAILED:
            what = str(payload.get("error") or "")
    return f"{head}: {what}" if what else head


class LivePrinter:
    """Durable events as lines and model text inline, on one text stream.

    Args:
        out: Where to write (stdout).
        events: Print durable events (False: only text, for `run`, which prints its
            own progress lines through `line`).
    """

    def __init__(self, out: TextIO | None = None, *, events: bool = True) -> None:
        self._out = out or sys.stdout
        self._events = events
        self._open: tuple[str | None, int, int, int] | None = None

    def _end_text(self) -> None:
        if self._open is not None:
            self._out.write("\n")
            self._open = None

    def line(self, text: str) -> None:
        """Print a whole line (ending the answer being streamed, if any)."""
        self._end_text()
        self._out.write(text + "\n")
        self._out.flush()

    def event(self, event: AuditEvent) -> None:
        """Print a durable event's line."""
        if self._events:
            self.line(describe(event))

    def delta(self, delta: StreamDelta) -> None:
        """Print a piece of model text as it comes, or mark a failed attempt's text void."""
        key = (delta.step_id, delta.round, delta.step_attempt, delta.attempt)
        if delta.kind == "abandoned":
            self.line(
                f"  (attempt {delta.attempt} of {delta.step_id} failed: the text above is void)"
            )
            return
        if delta.kind != "text" or not delta.text:
            return
        if key != self._open:
            self._end_text()
            self._out.write(f"  {delta.step_id or '-'}> ")
            self._open = key
        self._out.write(delta.text)
        self._out.flush()

    def close(self) -> None:
        """End a line left open."""
        self._end_text()
        self._out.flush()


async def _from_store(
    project: Path | None, session_id: str, deltas: bool
) -> AsyncIterator[AuditEvent | StreamDelta]:
    settings = load_settings(project)
    client = await connect(settings)
    async with await Store.open(settings.resolved_database_url) as store:
        await _until_recorded(store, session_id, settings.resolved_database_url)
        handle = SessionHandle(client, store, session_id, state_dir=settings.resolved_state_dir)
        cursor = 0
        while True:
            try:
                async for item in handle.events(after=cursor, deltas=deltas):
                    if isinstance(item, AuditEvent):
                        cursor = item.seq or cursor
                    yield item
                return
            except StoreError as exc:
                err_console.print(f"store unreachable ({exc}); retrying", highlight=False)
                await asyncio.sleep(RETRY_S)


async def _until_recorded(store: Store, session_id: str, where: str) -> None:
    """Return once the session is in the store, saying once that it is waited for.

    A watcher started before its session (a script that starts both, a session started
    from another machine a moment later) follows it from its first event instead of
    failing; a mistyped id waits until Ctrl-C, and the message says where to look.
    """
    told = False
    while True:
        try:
            if await store.get_session(session_id) is not None:
                return
        except StoreError as exc:
            err_console.print(f"store unreachable ({exc}); retrying", highlight=False)
        else:
            if not told:
                err_console.print(
                    f"no session {session_id!r} in the store at {where} yet; waiting for it"
                    " to start (orchestrator sessions list shows the sessions there;"
                    " Ctrl-C stops)",
                    highlight=False,
                )
                told = True
        await asyncio.sleep(APPEAR_POLL_S)


async def _from_api(
    url: str, token: str | None, session_id: str, deltas: bool
) -> AsyncIterator[AuditEvent | StreamDelta]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, headers=headers) as http:

        def resumed(last: int) -> None:
            err_console.print(f"reconnected to {url}; resuming after event {last}", highlight=False)

        async for message in follow(http, session_id, on_resume=resumed):
            if message.event == "message":
                yield AuditEvent.model_validate_json(message.data)
            elif message.event == "delta" and deltas:
                yield StreamDelta.model_validate_json(message.data)


@run_async
async def watch(
    session_id: Annotated[str, typer.Argument(help="The session's id.")],
    api: Annotated[
        str | None,
        typer.Option(
            envvar="ORCHESTRATOR_API_URL",
            help="Follow over HTTP from this API process (e.g. http://127.0.0.1:8000).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="ORCHESTRATOR_API_TOKEN", help="Bearer token for --api."),
    ] = None,
    text: Annotated[bool, typer.Option(help="Show the model's text as it streams.")] = True,
    as_json: Annotated[
        bool,
        typer.Option("--json", help='One JSON object a line: {"event": ...} or {"delta": ...}.'),
    ] = False,
    project: Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")] = None,
) -> None:
    """Follow a session live (events and model text) until it ends; resumes after a drop.

    A session not in the store yet is waited for (it may be about to start).

    Exit 0 when the session completed, 1 when it failed.
    """
    items = (
        _from_api(api, token, session_id, text) if api else _from_store(project, session_id, text)
    )
    printer = LivePrinter()
    failed = False
    try:
        async for item in items:
            if as_json:
                name = "delta" if isinstance(item, StreamDelta) else "event"
                printer.line(f'{{"{name}": {item.model_dump_json()}}}')
            elif isinstance(item, StreamDelta):
                printer.delta(item)
            else:
                printer.event(item)
            if isinstance(item, AuditEvent):
                failed = failed or item.kind is EventKind.SESSION_FAILED
    finally:
        printer.close()
    if failed:
        raise typer.Exit(1)


async def follow_streaming(
    settings: Settings,
    client: Client,
    handle: WorkflowHandle[object, SessionResult],
    session_id: str,
    console: Console,
) -> SessionResult:
    """`orchestrator run`'s progress lines, with the model's text printed as it streams.

    The text is best effort (a delta lost on the way is a gap in it); the lines and the
    result are what they are without it.
    """
    printer = LivePrinter(events=False)
    async with await Store.open(settings.resolved_database_url) as store:
        session = SessionHandle(client, store, session_id, state_dir=settings.resolved_state_dir)

        async def text() -> None:
            async for item in session.events():
                if isinstance(item, StreamDelta):
                    printer.delta(item)

        streaming = asyncio.create_task(text())
        try:
            return await follow_progress(handle, console, emit=printer.line)
        finally:
            try:  # the text came before the session's last event: it ends by itself
                await asyncio.wait_for(streaming, TEXT_GRACE_S)
            except TimeoutError:
                pass
            except OrchestratorError as exc:
                err_console.print(f"model text not shown: {exc}", highlight=False)
            printer.close()
