"""Real processes for tests: `orchestrator api` (or `gateway`) as operators run it, and a
gate in front of the scripted model server that holds one request until the test lets go.

Workers run as `orchestrator.chaos.WorkerProcess`; this module is the serving side and the
environment both share, so a test that needs a process writes neither again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from conftest import REPO
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.settings import Settings

__all__ = ["Gate", "process_env", "serving", "start_serving", "stop_serving"]


def process_env(
    settings: Settings | None, state_dir: Path | None = None, **more: str
) -> dict[str, str]:
    """The environment of an `orchestrator` subprocess of this repository's project.

    With `settings`, it reaches the test's Temporal server, task queue, state and store;
    without, only `state_dir` (a process that needs no server). `more` adds or overrides
    variables (`ORCHESTRATOR_LOG_FORMAT="json"`, `ORCHESTRATOR_APPROVERS_FILE=...`).
    """
    env = {**os.environ, "ORCHESTRATOR_PROJECT_DIR": str(REPO)}
    if settings is not None:
        env |= {
            "ORCHESTRATOR_STATE_DIR": str(settings.resolved_state_dir),
            "ORCHESTRATOR_DATABASE_URL": settings.resolved_database_url,
            "ORCHESTRATOR_TEMPORAL_ADDRESS": settings.temporal_address or "",
            "ORCHESTRATOR_TASK_QUEUE": settings.task_queue,
        }
    if state_dir is not None:
        env["ORCHESTRATOR_STATE_DIR"] = str(state_dir)
    return env | more


async def start_serving(
    env: dict[str, str], port: int, command: str = "api", *args: str
) -> asyncio.subprocess.Process:
    """`orchestrator COMMAND --port PORT ARGS...` with `env`, once it says it serves.

    `command` is one that prints `<command> on <url>` when ready (`api`, `gateway`). Its
    output (stdout and stderr together) stays on the process's `stdout` pipe.
    """
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "orchestrator", command, "--port", str(port), *args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            line = ""
            while f"{command} on" not in line:
                line = (await proc.stdout.readline()).decode()
                assert line, f"orchestrator {command} exited early"
    except BaseException:
        await stop_serving(proc)
        raise
    return proc


async def stop_serving(proc: asyncio.subprocess.Process) -> int:
    """Stop it with SIGINT, as a person at a terminal would, and return its exit code."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode


@contextlib.asynccontextmanager
async def serving(
    env: dict[str, str], port: int, command: str = "api", *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`start_serving` for the block's length; stopped (`stop_serving`) when it ends."""
    proc = await start_serving(env, port, command, *args)
    try:
        yield proc
    finally:
        await stop_serving(proc)


class Gate:
    """ASGI middleware that holds the `hold`-th chat-completions request until `release`.

    Put in front of the scripted model app, it stops a session at a known point (a kill,
    a second watcher) without any sleep: wait for `arrived`, act, set `release`.
    """

    def __init__(self, app: ASGIApp, hold: int) -> None:
        self.app = app
        self.hold = hold
        self.seen = 0
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
            self.seen += 1
            if self.seen == self.hold:
                self.arrived.set()
                await self.release.wait()
        await self.app(scope, receive, send)
