"""PostgreSQL `LISTEN`/`NOTIFY`: durable-event notices and deltas across machines.

The store announces each committed audit event on `EVENTS_CHANNEL` as `<seq> <session>`
(`orchestrator.store.event_seq`); every API process listens and wakes that session's
watchers, which read the rows. Deltas travel whole on `DELTAS_CHANNEL` (JSON, split to
stay under the 8000-byte payload limit); they are never stored. Listeners and senders
use a dedicated asyncpg connection each, outside the store's pool: a `LISTEN` must stay
on one connection for its life.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Final

import asyncpg
from sqlalchemy.engine import make_url

from orchestrator.events.models import StreamDelta
from orchestrator.events.wire import decode_deltas, encode_deltas
from orchestrator.logs import get_logger
from orchestrator.store.event_seq import EVENTS_CHANNEL

__all__ = ["DELTAS_CHANNEL", "MAX_PAYLOAD", "PostgresDeltaSender", "PostgresListener", "dsn"]

log = get_logger(__name__)

DELTAS_CHANNEL: Final = "orchestrator_deltas"
MAX_PAYLOAD: Final = 7900
"""Bytes per notice, under PostgreSQL's 8000."""


def dsn(url: str) -> str:
    """An asyncpg DSN for a store URL (`postgresql+asyncpg://...`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresListener:
    """Listens on both channels; reconnects after a drop and then wakes every watcher.

    Args:
        url: The store's URL, password included.
        on_event: Called with a session id (or `*`: any) whose events moved.
        on_deltas: Called with received deltas.
        on_reconnect: Called after a (re)connection, when notices may have been missed.
    """

    def __init__(
        self,
        url: str,
        on_event: Callable[[str], None],
        on_deltas: Callable[[list[StreamDelta]], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._dsn = dsn(url)
        self._on_event = on_event
        self._on_deltas = on_deltas
        self._on_reconnect = on_reconnect
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Connect and listen; returns once listening (so no later notice is missed)."""
        self._task = asyncio.create_task(self._run(), name="pg-listener")
        ready = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready.cancel()
            self._task.result()

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _event(self, conn: object, pid: int, channel: str, payload: str) -> None:
        _seq, _, session_id = payload.partition(" ")
        self._on_event(session_id)

    def _deltas(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self._on_deltas(decode_deltas(payload))

    async def _run(self) -> None:
        first = True
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                if first:
                    raise
                log.warning("event listener cannot reconnect", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(_setter(lost))
            try:
                await conn.add_listener(EVENTS_CHANNEL, self._event)
                await conn.add_listener(DELTAS_CHANNEL, self._deltas)
                self._on_reconnect()
                self._ready.set()
                first = False
                await lost.wait()
                log.warning("event listener lost its connection; reconnecting")
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)


def _setter(flag: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: flag.set()


class PostgresDeltaSender:
    """Sends delta batches as notices on a connection of its own, opened on first use."""

    def __init__(self, url: str) -> None:
        self._dsn = dsn(url)
        self._conn: asyncpg.Connection | None = None

    async def send(self, deltas: Sequence[StreamDelta]) -> None:
        """Notify every listener; a failure loses these deltas only (logged once per drop)."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn)
            for body in encode_deltas(deltas, MAX_PAYLOAD):
                await self._conn.execute("SELECT pg_notify($1, $2)", DELTAS_CHANNEL, body.decode())
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("deltas not sent", error=str(exc))
            self._conn = None

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
