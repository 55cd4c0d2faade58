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
