"""One live MCP session per connector server in a worker, shared by every call.

Starting a stdio server (a process, often an interpreter) or opening an HTTP session for
each call costs far more than the call; a worker keeps one connection per connector and
every activity on the event loop uses it (the SDK's session multiplexes requests). The
connection is keyed by the connector's settings, so an edited connector file or a rotated
token opens a new one and closes the old. A connection that died (a killed process, an
HTTP session the server forgot) is noticed by the next call's first request, closed and
opened again. `close_connector_pool` closes them all; `Runtime.close` calls it when a
worker shuts down, so no server process outlives its worker.

Each connection lives in a task of its own: the SDK's client runs task groups that must
be entered and left in one task, which an activity (that ends) cannot be.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from dataclasses import dataclass
from pathlib import Path

from mcp import Client

from orchestrator.connectors.client import connect
from orchestrator.connectors.models import Connector
from orchestrator.logs import get_logger

__all__ = ["ConnectorPool", "close_connector_pool", "connector_pool"]

log = get_logger(__name__)

CLOSE_TIMEOUT = 10.0
"""Seconds a connection gets to close (the SDK stops a stdio server within this)."""


@dataclass
class _Live:
    key: str
    client: Client
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def close(self) -> None:
        self.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), CLOSE_TIMEOUT)
        except TimeoutError:
            self.task.cancel()
            log.warning("mcp connection did not close in time; cancelled")


def _key(connector: Connector, project_dir: Path) -> str:
    """What makes a connection: the connector's settings, the project, the token's digest."""
    headers = connector.http_headers() if connector.transport == "http" else {}
    text = "|".join([connector.model_dump_json(), str(project_dir), repr(sorted(headers.items()))])
    return hashlib.sha256(text.encode()).hexdigest()


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside the SDK's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class ConnectorPool:
    """The live connections of one event loop, by connector name."""

    def __init__(self) -> None:
        self._live: dict[str, _Live] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        """One per connector: a server that is slow to start holds up only its own calls."""

    def __len__(self) -> int:
        return len(self._live)

    async def client(self, connector: Connector, project_dir: Path) -> Client:
        """The connector's live client, connecting (or reconnecting after a change) first.

        Raises:
            ConfigError: an HTTP connector's token variable is not set.
            Exception: the server could not be started or reached (the SDK's error).
        """
        key = _key(connector, project_dir)
        async with self._lock(connector.name):
            live = self._live.get(connector.name)
            if live is not None and live.key == key and not live.task.done():
                return live.client
            if live is not None:
                del self._live[connector.name]
                await live.close()
            live = await self._open(connector, project_dir, key)
            self._live[connector.name] = live
            return live.client

    async def discard(self, name: str, client: Client) -> None:
        """Close a connection found dead, unless another call already replaced it."""
        async with self._lock(name):
            live = self._live.get(name)
            if live is None or live.client is not client:
                return
            del self._live[name]
        log.info("mcp connection lost; the next call reconnects", connector=name)
        await live.close()

    async def close(self) -> None:
        """Close every connection (stopping every stdio server)."""
        for name in list(self._live):
            async with self._lock(name):
                live = self._live.pop(name, None)
            if live is not None:
                await live.close()

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    @staticmethod
    async def _open(connector: Connector, project_dir: Path, key: str) -> _Live:
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()

        async def hold() -> None:
            try:
                async with connect(connector, project_dir) as client:
                    if ready.done():  # the caller gave up while this connected
                        return
                    ready.set_result(client)
                    await stop.wait()
            except BaseException as exc:  # the connection's own task: nobody else sees it
                if not ready.done():
                    ready.set_exception(_leaf(exc))
                elif not isinstance(exc, asyncio.CancelledError):
                    log.warning("mcp connection closed with an error", error=str(_leaf(exc)))

        task = asyncio.create_task(hold(), name=f"mcp-connector-{connector.name}")
        try:
            client = await ready
        except BaseException:
            stop.set()
            await asyncio.gather(task, return_exceptions=True)
            raise
        log.info("mcp connection opened", connector=connector.name)
        return _Live(key=key, client=client, stop=stop, task=task)


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConnectorPool] = (
    weakref.WeakKeyDictionary()
)


def connector_pool() -> ConnectorPool:
    """The pool of the running event loop (a worker's activities share one loop)."""
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = ConnectorPool()
    return pool


async def close_connector_pool() -> None:
    """Close every connection the running event loop holds."""
    pool = _POOLS.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()
