"""The loopback UDP registry: a receiver killed before it could unregister (SIGKILL) is
dropped by the next sender that reads the registry; live receivers keep getting deltas."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from orchestrator.events import StreamDelta
from orchestrator.events.udp import UdpDeltaReceiver, UdpDeltaSender, registry_dir


async def test_a_dead_receivers_registration_is_removed_and_live_ones_still_get_deltas(
    tmp_path: Path,
) -> None:
    got: list[StreamDelta] = []
    receiver = UdpDeltaReceiver(tmp_path, got.extend)
    await receiver.start()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    stale = registry_dir(tmp_path) / "stale.json"
    stale.write_text(json.dumps({"port": 9, "key": "k", "pid": child.pid}))
    sender = UdpDeltaSender(tmp_path)
    delta = StreamDelta(
        session_id="s", step_id="a", round=0, step_attempt=0, attempt=1, n=1, kind="text", text="hi"
    )
    try:
        async with asyncio.timeout(10):
            while not got:  # UDP is best effort: send until one arrives
                await sender.send([delta])
                await asyncio.sleep(0.01)
    finally:
        await sender.close()
        await receiver.close()
    assert got[0] == delta
    assert not stale.exists()


async def test_a_sender_finds_receivers_by_the_registrys_change_word(
    tmp_path: Path,
) -> None:
    """Each delta reads the registry's change word through a memory map; a receiver that
    comes or goes rewrites it, and the next batch goes to the receivers registered then."""
    sender = UdpDeltaSender(tmp_path)
    await sender.send([_delta(1)])  # nobody registered: the word is made and mapped
    word = (registry_dir(tmp_path) / "changes").read_bytes()
    assert len(word) == 8
    first: asyncio.Queue[list[StreamDelta]] = asyncio.Queue()
    second: asyncio.Queue[list[StreamDelta]] = asyncio.Queue()
    one, two = (
        UdpDeltaReceiver(tmp_path, first.put_nowait),
        UdpDeltaReceiver(tmp_path, second.put_nowait),
    )
    await one.start()
    assert (registry_dir(tmp_path) / "changes").read_bytes() != word
    try:
        await sender.send([_delta(2)])
        async with asyncio.timeout(5):
            assert [d.n for d in await first.get()] == [2]
        await two.start()  # a second receiver, well within the sender's refresh period
        await sender.send([_delta(3)])
        async with asyncio.timeout(5):
            assert [d.n for d in await second.get()] == [3]
            assert [d.n for d in await first.get()] == [3]
    finally:
        await sender.close()
        await one.close()
        await two.close()


def _delta(n: int) -> StreamDelta:
    return StreamDelta(
        session_id="s", step_id="a", round=0, step_attempt=0, attempt=1, n=n, kind="text", text="x"
    )
