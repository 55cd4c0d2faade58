"""The delta sender thread: order kept, queue bounded and drops counted, close flushes,
notices in line with deltas, a failing send survived, and a stalled event loop does not
hold a delta back (real loopback UDP)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator.events import DeltaPublisher, StreamDelta
from orchestrator.events.sender_thread import SenderThread
from orchestrator.events.udp import UdpDeltaSender, registry_dir
from orchestrator.events.wire import decode_deltas


def delta(session: str, n: int) -> StreamDelta:
    return StreamDelta(
        session_id=session, step_id="s1", round=1, step_attempt=0, attempt=1, n=n, kind="text"
    )


class Recorder:
    """A carrier's `send_now` and `moved` that keep what they were given, in order."""

    def __init__(self) -> None:
        self.got: list[object] = []

    def send_now(self, deltas: Sequence[StreamDelta]) -> None:
        self.got.extend((d.session_id, d.n) for d in deltas)

    def moved(self, sessions: Mapping[str, int]) -> None:
        self.got.append(dict(sessions))


def test_deltas_leave_in_the_order_they_were_put_and_close_sends_the_rest() -> None:
    recorder = Recorder()
    sender = SenderThread(recorder.send_now)
    put = [delta(f"s{n % 3}", n) for n in range(2000)]
    assert all(sender.put(d) for d in put)
    sender.close().join(30)
    assert recorder.got == [(d.session_id, d.n) for d in put]
    assert not sender.put(delta("s0", 9999))  # closed: nothing more is taken
    assert sender.flushed().result(30) is None  # and a flush after the end does not hang


def test_notices_go_out_in_line_with_the_deltas_put_before_them() -> None:
    recorder = Recorder()
    sender = SenderThread(recorder.send_now)
    notify = sender.notifier(recorder.moved)
    sender.put(delta("a", 1))
    notify({"a": 3})
    sender.put(delta("a", 2))
    sender.flushed().result(30)
    sender.close().join(30)
    assert recorder.got == [("a", 1), {"a": 3}, ("a", 2)]


def test_a_full_queue_drops_and_counts_the_delta_and_never_waits() -> None:
    sent: list[int] = []
    taken, gate = threading.Event(), threading.Event()

    def send_now(deltas: Sequence[StreamDelta]) -> None:
        taken.set()
        assert gate.wait(30)
        sent.extend(d.n for d in deltas)

    sender = SenderThread(send_now, max_queued=8)
    sender.put(delta("a", 0))
    assert taken.wait(30)  # the thread is inside its send: the queue is empty
    accepted = [sender.put(delta("a", n)) for n in range(1, 11)]
    assert accepted == [True] * 8 + [False, False]
    assert sender.dropped == 2
    gate.set()
    sender.flushed().result(30)
    sender.close().join(30)
    assert sent == list(range(9))  # a gap in `n` from 9: the watcher sees what was lost


def test_a_send_that_raises_does_not_end_the_thread() -> None:
    sent: list[int] = []

    def send_now(deltas: Sequence[StreamDelta]) -> None:
        if not sent:
            sent.append(-1)
            raise OSError("gone")
        sent.extend(d.n for d in deltas)

    sender = SenderThread(send_now)
    sender.put(delta("a", 1))
    sender.flushed().result(30)
    sender.put(delta("a", 2))
    sender.flushed().result(30)
    sender.close().join(30)
    assert sent == [-1, 2]


async def test_a_delta_reaches_the_receiver_while_the_event_loop_is_stalled(
    tmp_path: Path,
) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(30)
    folder = registry_dir(tmp_path)
    folder.mkdir(parents=True)
    record = {"port": receiver.getsockname()[1], "key": "k" * 32, "pid": os.getpid()}
    (folder / "r.json").write_text(json.dumps(record))
    publisher = DeltaPublisher(UdpDeltaSender(tmp_path))
    try:
        publisher.put(delta("a", 1))
        # The loop's thread now blocks in `recv` and runs nothing else until a datagram
        # arrives: only the sender thread can have sent it.
        data = receiver.recv(1 << 16)
    finally:
        await publisher.close()
        receiver.close()
    key, body = data.split(b"\n", 1)
    assert key == b"k" * 32
    assert [(d.session_id, d.n) for d in decode_deltas(body)] == [("a", 1)]
