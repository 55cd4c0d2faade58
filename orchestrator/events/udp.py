"""Deltas and durable-event notices between processes of one machine: loopback UDP.

The embedded default.

Deltas are best effort by definition, and a datagram is the natural carrier for them: no
server to run, nothing written to the SQLite file (so no contention with the durable
writes of the session), and the kernel bounds what is buffered: a send never blocks,
and when a receiver's buffer is full the datagram is dropped, not queued.

Each API process (each `EventHub` that wants deltas) binds `127.0.0.1:0` and registers
itself in `<state_dir>/stream/<random>.json` (mode 0600): its port and a random key. A
worker sends each batch to every registered receiver with the key in front; a receiver
ignores datagrams without its key, so another local user cannot inject text. A sender
removes the registration of a receiver whose process no longer exists (killed before it
could unregister).

The same path carries notices of durable events: after the worker's store commits audit
events it sends `{"moved": {session: newest seq}}` (`UdpDeltaSender.moved`), so an API
process reads them at once instead of at its next poll. A notice is a hint like any other
(`orchestrator.events.hub`): a lost one delays an event until the poll, never drops it.
An older receiver takes a notice for an unreadable delta batch and ignores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mmap
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from orchestrator.events.models import StreamDelta
from orchestrator.events.wire import decode_deltas, encode_deltas
from orchestrator.logs import get_logger

__all__ = ["MAX_DATAGRAM", "Moved", "UdpDeltaReceiver", "UdpDeltaSender", "registry_dir"]

log = get_logger(__name__)

MAX_DATAGRAM: Final = 60_000
"""Bytes per datagram, under loopback UDP's 65 507."""

_REFRESH_S: Final = 1.0
"""How long a sender trusts its list of receivers, while the registry's change word stays
the same, before reading the folder again (a changed word makes it read at once)."""

_CHANGES: Final = "changes"
"""The registry's change word: 8 bytes that each receiver rewrites (at random) when it
registers and when it leaves. Senders read it through a shared memory map, which costs no
system call: a sender used to `stat` the folder for every delta, and each system call lets
the interpreter's lock go, so in a worker the threads that run Python (workflow tasks,
the store's driver threads) took it and the event loop waited for it back, for the 5 ms
switch interval or longer, in the middle of a crowd's first tokens (bench/README.md,
`stream.py`, "stalls")."""


_MOVED: Final = b'{"moved":'
"""How a notice's body starts (a delta batch is a JSON array)."""

Moved = Callable[[Mapping[str, int]], None]
"""Told which sessions have new durable events, with the newest `seq` of each."""


def registry_dir(state_dir: Path) -> Path:
    """Where receivers register, inside the project's state folder."""
    return state_dir / "stream"


_DRAIN: Final = 256
"""Datagrams a receiver reads at most per wake-up. (asyncio's datagram transport reads one
per turn of the event loop: under a crowd's thousands of deltas a second, that is a turn
of a busy loop per delta.)"""


class _Reader:
    """Reads every datagram at hand when the socket is readable, and hands each on."""

    def __init__(
        self,
        sock: socket.socket,
        key: bytes,
        deliver: Callable[[list[StreamDelta]], None],
        moved: Moved | None,
    ) -> None:
        self._sock = sock
        self._prefix = key + b"\n"
        self._deliver = deliver
        self._moved = moved

    def ready(self) -> None:
        for _ in range(_DRAIN):
            try:
                data = self._sock.recv(1 << 16)
            except OSError:  # nothing more at hand (BlockingIOError), or closed
                return
            self.received(data)

    def received(self, data: bytes) -> None:
        if not data.startswith(self._prefix):
            return
        body = data[len(self._prefix) :]
        if not body.startswith(_MOVED):
            self._deliver(decode_deltas(body))
        elif self._moved is not None:
            notice = _decode_moved(body)
            if notice:
                self._moved(notice)


def _decode_moved(body: bytes) -> dict[str, int]:
    """The sessions of a notice and their newest `seq`; none if it is unreadable."""
    try:
        moved = json.loads(body)["moved"]
        return {str(session): int(seq) for session, seq in moved.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


class UdpDeltaReceiver:
    """Receives deltas (and notices, given `moved`) for one process.

    `start` binds and registers, `close` undoes both.
    """

    def __init__(
        self,
        state_dir: Path,
        deliver: Callable[[list[StreamDelta]], None],
        moved: Moved | None = None,
    ) -> None:
        self._dir = registry_dir(state_dir)
        self._deliver = deliver
        self._moved = moved
        self._key = secrets.token_hex(16).encode()
        self._file = self._dir / f"{secrets.token_hex(8)}.json"
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Bind a loopback port and register it for workers to find."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", 0))
        loop.add_reader(sock.fileno(), _Reader(sock, self._key, self._deliver, self._moved).ready)
        self._sock, self._loop = sock, loop
        port = int(sock.getsockname()[1])
        self._dir.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"port": port, "key": self._key.decode(), "pid": os.getpid()})
        # Written aside, then renamed into place: a sender never reads half a record.
        draft = self._file.with_suffix(".draft")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(record)
        os.replace(draft, self._file)
        _change(self._dir)

    async def close(self) -> None:
        """Unregister and unbind."""
        self._file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            _change(self._dir)
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = self._loop = None


def _change(folder: Path) -> None:
    """Rewrite the registry's change word: every sender reads the folder again."""
    fd = os.open(folder / _CHANGES, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, secrets.token_bytes(8), 0)
    finally:
        os.close(fd)


def _map_changes(folder: Path) -> mmap.mmap | None:
    """The registry's change word, mapped (made, with the folder, if need be).

    None if the folder cannot be written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / _CHANGES, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size < 8:
            os.ftruncate(fd, 8)  # new bytes are zeros; a word written meanwhile stays
        return mmap.mmap(fd, 8)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    """Whether a process with this id exists.

    A receiver killed with SIGKILL never unregisters; its file would aim deltas at a dead
    port for ever.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


class UdpDeltaSender:
    """Sends delta batches to every registered receiver; never blocks, never raises."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = registry_dir(state_dir)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._targets: list[tuple[int, bytes]] = []
        self._read_at = -_REFRESH_S
        self._changes: mmap.mmap | None = None
        self._word: bytes | None = None

    def _look(self) -> bytes | None:
        """The registry's change word now: no system call once mapped.

        Where it cannot be mapped, the folder's mtime.
        """
        if self._changes is None:
            self._changes = _map_changes(self._dir)
        if self._changes is not None:
            return self._changes[:8]
        try:
            return self._dir.stat().st_mtime_ns.to_bytes(8, "little")
        except OSError:
            return None

    def _receivers(self) -> list[tuple[int, bytes]]:
        """The registered receivers, read again whenever one came or left.

        A receiver that just came gets the very next batch; the folder is also read at
        least every `_REFRESH_S`, in case a receiver did not say it left (killed).
        """
        now = time.monotonic()
        word = self._look()
        if word == self._word and now - self._read_at < _REFRESH_S:
            return self._targets
        self._read_at, self._word = now, word
        targets = []
        for path in sorted(self._dir.glob("*.json")) if self._dir.is_dir() else []:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                if not _alive(int(record["pid"])):
                    path.unlink(missing_ok=True)  # its process was killed: nobody listens
                    continue
                targets.append((int(record["port"]), str(record["key"]).encode()))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # half-written, or removed meanwhile
        self._targets = targets
        return targets

    async def send(self, deltas: Sequence[StreamDelta]) -> None:
        """Send `deltas` to each receiver; a full or gone receiver just misses them."""
        self.send_now(deltas)

    def send_now(self, deltas: Sequence[StreamDelta]) -> None:
        """`send`, as a plain call: a system call per datagram and receiver, never blocks."""
        targets = self._receivers()
        if not targets:
            return
        # Encoded once for every receiver, with room for the longest key.
        room = MAX_DATAGRAM - max(len(key) for _, key in targets) - 1
        bodies = list(encode_deltas(deltas, room))
        for port, key in targets:
            for body in bodies:
                try:
                    self._sock.sendto(key + b"\n" + body, ("127.0.0.1", port))
                except OSError:
                    break  # buffer full, or nobody there any more

    def moved(self, sessions: Mapping[str, int]) -> None:
        """Tell each receiver that `sessions` have durable events up to the given `seq`.

        Called by the store after a commit (`Store.on_events_committed`): a system call
        per receiver, never blocks, never raises.
        """
        try:
            targets = self._receivers()
        except OSError:
            return
        body = _MOVED + json.dumps(dict(sessions), separators=(",", ":")).encode() + b"}"
        if len(body) > MAX_DATAGRAM - 64:
            return  # too many sessions at once for one datagram: the poll finds them
        for port, key in targets:
            try:
                self._sock.sendto(key + b"\n" + body, ("127.0.0.1", port))
            except OSError:
                continue  # buffer full, closed, or nobody there any more

    async def close(self) -> None:
        """Close the socket and the change word's map."""
        self._sock.close()
        if self._changes is not None:
            self._changes.close()
            self._changes = None
