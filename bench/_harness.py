"""What a benchmark of the runtime needs besides its workload.

Dev-server configurations (the stock one `orchestrator dev` starts and the variants that
explain its latency), a `DevServer` that takes extra flags, CPU accounting, the replay
server without its Nagle stall, and summary statistics.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import temporalio

from orchestrator.devserver import DevServer, find_temporal_binary, free_port
from orchestrator.scripted_model import server as replay_server

__all__ = [
    "MEMORY",
    "MEMORY_POLL",
    "POLL",
    "SERVERS",
    "STOCK",
    "TUNED",
    "BenchDevServer",
    "ServerConfig",
    "Stats",
    "cpu_seconds",
    "machine",
    "replay_without_nagle",
]


@dataclass(frozen=True)
class ServerConfig:
    """One way of starting `temporal server start-dev`."""

    name: str
    description: str
    flags: tuple[str, ...] = ()
    in_memory: bool = False


# One history shard on the dev server, and its transfer queue (which hands every new
# workflow and activity task to matching) reads at most 20 times a second by default.
POLL_RPS = ("--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000")
# The default rollback journal fsyncs on every commit; WAL with synchronous=NORMAL syncs at
# checkpoints only: a server crash loses nothing, a power cut may lose the last commits.
WAL = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")

STOCK = ServerConfig("stock", "SQLite file, the dev server's own defaults")
MEMORY = ServerConfig("memory", "in-memory SQLite, otherwise stock", in_memory=True)
POLL = ServerConfig("poll-rps", "stock + transferProcessorMaxPollRPS=1000", POLL_RPS)
MEMORY_POLL = ServerConfig("memory+poll-rps", "in-memory + poll-rps", POLL_RPS, in_memory=True)
TUNED = ServerConfig(
    "tuned",
    "poll-rps + SQLite WAL, synchronous=NORMAL: what `orchestrator dev` passes",
    POLL_RPS + WAL,
)
SERVERS = (STOCK, MEMORY, POLL, MEMORY_POLL, TUNED)


class BenchDevServer(DevServer):
    """The project's `DevServer` on a free port, headless, with a configuration's flags."""

    def __init__(self, config: ServerConfig, folder: Path) -> None:
        super().__init__(
            db_file=folder / "temporal.db", port=free_port(), ui_port=None, tuned=False
        )
        self.config = config

    def command(self) -> list[str]:
        cmd = super().command()
        if self.config.in_memory:
            at = cmd.index("--db-filename")
            del cmd[at : at + 2]
        return [*cmd, *self.config.flags]

    @property
    def pid(self) -> int | None:
        """The server process, for CPU accounting."""
        return self._proc.pid if self._proc is not None else None


def cpu_seconds(pid: int | None = None) -> float | None:
    """CPU time used so far by a process (Linux `/proc`), or by this one when `pid` is None."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def replay_without_nagle() -> Iterator[None]:
    """Make scripted model servers started inside answer at once: TCP_NODELAY on their listener.

    `orchestrator.scripted_model.server._bind` makes the socket with `socket.create_server`, whose
    sockets have proto 0, so asyncio does not set TCP_NODELAY on accepted connections (it
    only does for proto IPPROTO_TCP). uvicorn writes a response's headers and body
    separately, and the body then waits for the client's delayed ACK: ~40 ms per request.
    Accepted sockets inherit the option from the listener. Harmless once `_bind` sets it.
    """
    original = replay_server._bind

    def bind(host: str, port: int) -> socket.socket:
        sock = original(host, port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    replay_server._bind = bind
    try:
        yield
    finally:
        replay_server._bind = original


@dataclass
class Stats:
    """Summary of a sample of durations, in milliseconds."""

    n: int
    median_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Stats:
        ms = sorted(s * 1000 for s in seconds)
        p95 = statistics.quantiles(ms, n=100, method="inclusive")[94] if len(ms) > 1 else ms[0]
        return cls(
            n=len(ms),
            median_ms=round(statistics.median(ms), 2),
            p95_ms=round(p95, 2),
            mean_ms=round(statistics.fmean(ms), 2),
            min_ms=round(ms[0], 2),
            max_ms=round(ms[-1], 2),
        )


async def machine() -> dict[str, object]:
    """What the figures were measured on."""
    proc = await asyncio.create_subprocess_exec(
        str(find_temporal_binary()), "--version", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "temporal_cli": out.decode().strip(),
    }
