"""`orchestrator sessions watch` and `orchestrator run --stream` as real processes beside a
worker: durable events printed once each in seq order, the model's text as it streams,
the end of the session ending the command."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from conftest import REPO, Env
from test_cli import cli_env
from test_run_progress import PLAN

from orchestrator import SessionHandle, StartOptions, start
from orchestrator.cli.live import LivePrinter, describe
from orchestrator.events import StreamDelta
from orchestrator.store import SessionRecord, Store
from orchestrator.testing import eventually, wait_for_pending_approval

SCRIPT = REPO / "model_scripts/customer_refund.yaml"


async def orchestrator_cli(env: Env, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "orchestrator", *args),
        env=cli_env(env.settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def lines_until(proc: asyncio.subprocess.Process, marker: str) -> list[str]:
    """Read the process's lines until one contains `marker`."""
    assert proc.stdout is not None
    seen: list[str] = []
    with anyio.fail_after(60):
        while not seen or marker not in seen[-1]:
            line = (await proc.stdout.readline()).decode()
            assert line, f"ended before {marker!r}: {seen}"
            seen.append(line.rstrip("\n"))
    return seen


async def event_lines(store: Store, session_id: str) -> list[str]:
    """What `sessions watch` prints for the session's stored events, in seq order."""
    events = sorted(await store.list_events(session_id), key=lambda e: e.seq or 0)
    return [describe(event) for event in events]


async def test_watch_prints_each_event_once_and_the_streamed_text(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await env_factory(SCRIPT)
    plan = tmp_path / "follow.yaml"
    plan.write_text(PLAN)
    store = env.runtime.store
    handle = await start(
        env.client, store, plan, {"t": "T-1001"}, task_queue=env.settings.task_queue
    )
    await wait_for_pending_approval(store, handle.session_id)
    proc = await orchestrator_cli(env, "sessions", "watch", handle.session_id)
    as_json = await orchestrator_cli(env, "sessions", "watch", handle.session_id, "--json")
    seen = await lines_until(proc, "approval_requested gate")
    seen_json = await lines_until(as_json, '"approval_requested"')
    await handle.approve(by="maria")
    result = await handle.result()
    with anyio.fail_after(60):
        rest, err = await proc.communicate()
        rest_json, _ = await as_json.communicate()
    assert proc.returncode == 0, err.decode()
    assert as_json.returncode == 0
    out = seen + rest.decode().splitlines()
    assert [line for line in out if line.startswith("#")] == await event_lines(
        store, handle.session_id
    )
    assert f"  reply> {result.final_output}" in out
    objects = [json.loads(line) for line in seen_json + rest_json.decode().splitlines()]
    stored = sorted(await store.list_events(handle.session_id), key=lambda e: e.seq or 0)
    assert [o["event"]["event_key"] for o in objects if "event" in o] == [
        e.event_key for e in stored
    ]
    text = "".join(o["delta"]["text"] for o in objects if "delta" in o)
    assert text == result.final_output


async def test_run_stream_prints_the_text_and_keeps_its_lines(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await env_factory(SCRIPT)
    plan = tmp_path / "follow.yaml"
    plan.write_text(PLAN)
    proc = await orchestrator_cli(env, "run", str(plan), "-i", '{"t": "T-1001"}', "--stream")
    seen = await lines_until(proc, "waiting for approval")
    session_id = seen[0].removeprefix("session ")
    await SessionHandle(env.client, env.runtime.store, session_id).approve(by="maria")
    with anyio.fail_after(60):
        rest, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    out = seen + rest.decode().splitlines()
    (answer,) = [line for line in out if line.startswith("  reply> ")]
    (final,) = [line for line in out if line.startswith("completed: ")]
    assert final == f'completed: "{answer.removeprefix("  reply> ")}"'
    assert "step reply (agent): completed on demo-fast after 1 model call(s)" in out


def delta(attempt: int, n: int, text: str = "", kind: str = "text") -> StreamDelta:
    return StreamDelta.model_validate(
        {
            "session_id": "s",
            "step_id": "reply",
            "round": 0,
            "step_attempt": 0,
            "attempt": attempt,
            "n": n,
            "kind": kind,
            "text": text,
        }
    )


def test_the_printer_keeps_lines_and_text_apart_and_voids_a_failed_attempt(
    tmp_path: Path,
) -> None:
    with (tmp_path / "out.txt").open("w+") as out:
        printer = LivePrinter(out)
        printer.delta(delta(1, 1, "Dear "))
        printer.delta(delta(1, 2, "An"))
        printer.delta(delta(1, 3, kind="abandoned"))
        printer.delta(delta(2, 1, "Dear "))
        printer.line("step reply (agent): running")
        printer.delta(delta(2, 2, "Ana"))
        printer.close()
        out.seek(0)
        assert out.read().splitlines() == [
            "  reply> Dear An",
            "  (attempt 1 of reply failed: the text above is void)",
            "  reply> Dear ",
            "step reply (agent): running",
            "  reply> Ana",
        ]


async def test_run_streams_by_default_on_a_terminal_and_not_into_a_pipe(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await env_factory(SCRIPT)
    plan = tmp_path / "follow.yaml"
    plan.write_text(PLAN)
    command = (sys.executable, "-m", "orchestrator", "run", str(plan), "-i", '{"t": "T-1001"}')
    primary, secondary = pty.openpty()
    on_terminal = await asyncio.create_subprocess_exec(
        *command, env=cli_env(env.settings), stdout=secondary, stderr=subprocess.PIPE
    )
    os.close(secondary)
    piped = await orchestrator_cli(env, *command[3:])
    loop = asyncio.get_running_loop()
    screen = bytearray()

    async def read_screen() -> None:
        while True:
            try:
                chunk = await loop.run_in_executor(None, os.read, primary, 4096)
            except OSError:  # EIO: the process closed the terminal
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = asyncio.create_task(read_screen())
    seen = await lines_until(piped, "waiting for approval")
    store = env.runtime.store

    async def both() -> list[SessionRecord] | None:
        records = await store.list_sessions(limit=10)
        return records if len(records) == 2 else None

    for record in await eventually(both, what="both sessions"):
        pending = await wait_for_pending_approval(store, record.session_id)
        await SessionHandle(env.client, store, record.session_id).approve(
            pending.approval_id, by="maria"
        )
    with anyio.fail_after(60):
        rest, _err = await piped.communicate()
        assert await on_terminal.wait() == 0
        await reader
    os.close(primary)
    assert not [line for line in seen + rest.decode().splitlines() if "reply> " in line]
    shown = screen.decode(errors="replace").replace("\r", "")
    assert "  reply> Dear Ana" in shown, shown


async def test_watch_waits_for_a_session_that_starts_after_it(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await env_factory(SCRIPT)
    plan = tmp_path / "follow.yaml"
    plan.write_text(PLAN)
    session_id = f"late-{os.urandom(4).hex()}"
    proc = await orchestrator_cli(env, "sessions", "watch", session_id)
    assert proc.stderr is not None
    with anyio.fail_after(60):
        note = (await proc.stderr.readline()).decode()
    assert f"no session {session_id!r}" in note and "waiting for it to start" in note
    assert proc.returncode is None  # still waiting, not failed

    store = env.runtime.store
    handle = await start(
        env.client,
        store,
        plan,
        {"t": "T-1001"},
        StartOptions(session_id=session_id),
        task_queue=env.settings.task_queue,
    )
    seen = await lines_until(proc, "approval_requested gate")
    await handle.approve(by="maria")
    result = await handle.result()
    with anyio.fail_after(60):
        rest, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "waiting" not in err.decode()  # said once
    out = seen + rest.decode().splitlines()
    assert [line for line in out if line.startswith("#")] == await event_lines(store, session_id)
    assert f"  reply> {result.final_output}" in out
