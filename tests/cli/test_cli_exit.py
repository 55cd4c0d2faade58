"""The CLI ends cleanly: rc 0 every time, never `Fatal Python error: PyGILState_Release`.

The Temporal SDK's Rust threads may still hold the GIL, finishing the last call's answer,
when the command returns; if CPython finalized then, the process aborted (rc 134) or
segfaulted after printing a completed session. `orchestrator.cli._exit.leave` ends the
process without finalizing. A few processes run at a time against the one dev server of
the test session, to keep this cheap.

The race is a matter of chance, so the mechanism is run thirty times in a process as short
as the race allows (`CLIENT`); the CLI itself is run fewer times, and each run also shows
that it ended through `os._exit` (`ENTRY`), which finalization never reaches: that holds
or fails every time, not one run in five.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from conftest import REPO, Env
from test_cli import cli_env

from orchestrator.devserver import DevServer

RUNS = 30
CLI_RUNS = 6
AT_ONCE = 3
LEFT = "left through os._exit"

PLAN = """
name: exit-cleanly
steps:
  - {id: ticket, type: skill, skill: tickets.get, arguments: {ticket_id: "{{ input.t }}"}}
"""

# A client-only process as short as the race allows: a few calls, then out. Exiting by
# interpreter finalization instead of `leave` aborts about one run in five here. The
# module is loaded from its file: importing the whole CLI would slow every run down.
CLIENT = f"""
import asyncio, importlib.util, sys
spec = importlib.util.spec_from_file_location("_exit", {str(REPO / "orchestrator/cli/_exit.py")!r})
assert spec is not None and spec.loader is not None
_exit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(_exit)
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

async def calls() -> None:
    client = await Client.connect(sys.argv[1])
    for _ in range(3):
        await client.workflow_service.get_system_info(GetSystemInfoRequest())

asyncio.run(calls())
_exit.leave(0)
"""


# `python -m orchestrator`, with `os._exit` wrapped to say on stderr that it was called.
ENTRY = f"""
import os, runpy, sys
_real_exit = os._exit

def _exit(code: int) -> None:
    sys.stderr.write({LEFT!r} + "\\n")
    sys.stderr.flush()
    _real_exit(code)

os._exit = _exit
sys.argv[0] = "orchestrator"
runpy.run_module("orchestrator", run_name="__main__", alter_sys=True)
"""


async def _many(
    argv: Sequence[str], env: dict[str, str] | None = None, runs: int = RUNS
) -> list[tuple[int, str, str]]:
    """Run `argv` `runs` times, AT_ONCE at a time: (rc, stdout, stderr) of each."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def once() -> tuple[int, str, str]:
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode is not None
            return proc.returncode, out.decode(), err.decode()

    return await asyncio.gather(*(once() for _ in range(runs)))


@pytest.mark.timeout(600)  # CLI processes; a minute on a loaded 2-core machine
async def test_orchestrator_run_leaves_through_os_exit_with_rc_0(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await env_factory(REPO / "model_scripts/customer_refund.yaml")
    plan = tmp_path / "exit.yaml"
    plan.write_text(PLAN)
    argv = [sys.executable, "-c", ENTRY, "run", str(plan), "-i", '{"t": "T-1001"}']
    results = await _many(argv, cli_env(env.settings), CLI_RUNS)
    failed = [(rc, err[-2000:]) for rc, _, err in results if rc != 0]
    assert not failed, f"{len(failed)} of {CLI_RUNS} runs failed: {failed}"
    for _, out, err in results:
        assert "completed: " in out, out
        # Ended without finalizing the interpreter, whatever the race did this time.
        assert err.rstrip().endswith(LEFT), err[-2000:]


async def test_a_client_process_leaving_after_its_calls_exits_0(dev_server: DevServer) -> None:
    results = await _many([sys.executable, "-c", CLIENT, dev_server.address])
    failed = [(rc, err[-2000:]) for rc, _, err in results if rc != 0]
    assert not failed, f"{len(failed)} of {RUNS} runs failed: {failed}"
