"""`orchestrator sessions watch --api` through the death of the API process it follows.

The watcher is a real CLI process reading Server-Sent Events from a real `orchestrator
api`. That process is killed (SIGKILL) while the session waits at its gate, and another
starts on the same port; the watcher connects again with `Last-Event-ID`, prints every
durable event once, in order, exactly as stored, then the model's streamed text, and
ends with the session.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from conftest import Env
from event_processes import TOKEN, approvers_file
from event_serving import GATED_PLAN, answer_script
from process_helpers import process_env, start_serving

from orchestrator import start
from orchestrator.cli.live import describe
from orchestrator.devserver import free_port
from orchestrator.settings import Settings
from orchestrator.testing import wait_for_pending_approval

ANSWER = "Your parcel left the depot this morning."


async def api_on(settings: Settings, approvers: Path, port: int) -> asyncio.subprocess.Process:
    """`orchestrator api` on `port`, once it says it serves."""
    return await start_serving(
        process_env(settings, ORCHESTRATOR_APPROVERS_FILE=str(approvers)), port
    )


@pytest.fixture
async def reaped() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Processes the test starts; any still running at the end are killed."""
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_watch_over_http_resumes_after_the_api_process_dies(
    env_factory: Callable[[Path], Awaitable[Env]],
    tmp_path: Path,
    reaped: list[asyncio.subprocess.Process],
) -> None:
    env = await env_factory(answer_script(tmp_path, ANSWER))
    store = env.runtime.store
    handle = await start(env.client, store, GATED_PLAN, {}, task_queue=env.settings.task_queue)
    await wait_for_pending_approval(store, handle.session_id)
    approvers = approvers_file(tmp_path)
    port = free_port()
    reaped.append(await api_on(env.settings, approvers, port))
    watcher = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "orchestrator", "sessions", "watch", handle.session_id),
        *("--api", f"http://127.0.0.1:{port}", "--token", TOKEN),
        env=process_env(env.settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reaped.append(watcher)
    assert watcher.stdout is not None
    seen: list[str] = []
    with anyio.fail_after(60):
        while not seen or "approval_requested gate" not in seen[-1]:
            line = (await watcher.stdout.readline()).decode()
            assert line, f"watch ended early: {seen}"
            seen.append(line.rstrip("\n"))

    reaped[0].kill()  # the watcher's connection drops mid-stream
    await reaped[0].wait()
    reaped.append(await api_on(env.settings, approvers, port))
    # Deltas are never replayed: approve only once the watcher is back, or the answer's
    # text could stream while nobody listens.
    assert watcher.stderr is not None
    with anyio.fail_after(60):
        note = b""
        while b"reconnected" not in note:
            note = await watcher.stderr.readline()
            assert note, "watch ended before it reconnected"
    await handle.approve(by="maria")
    await handle.result()
    with anyio.fail_after(60):
        rest, err = await watcher.communicate()
    assert watcher.returncode == 0, err.decode()

    out = seen + rest.decode().splitlines()
    stored = sorted(await store.list_events(handle.session_id), key=lambda e: e.seq or 0)
    assert [line for line in out if line.startswith("#")] == [describe(e) for e in stored]
    assert f"  answer> {ANSWER}" in out
