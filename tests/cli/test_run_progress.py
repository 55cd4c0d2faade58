"""`orchestrator run` follows a session: steps, pinned model, pending approvals, cost."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from conftest import REPO, Env
from test_cli import cli_env

from orchestrator.service import decide_approval

PLAN = """
name: follow-me
version: "3"
steps:
  - id: both
    type: parallel
    steps:
      - {id: ticket, type: skill, skill: tickets.get, arguments: {ticket_id: "{{ input.t }}"}}
      - {id: order, type: skill, skill: orders.get, arguments: {order_id: A-1001}}
  - id: gate
    type: approval
    summary: "Refund {{ steps.ticket.output.customer }}?"
  - id: reply
    type: agent
    model: demo-fast
    goal: Write the reply.
"""

SCRIPT = REPO / "model_scripts/customer_refund.yaml"


async def test_run_follows_the_session_until_it_ends(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await env_factory(SCRIPT)
    plan = tmp_path / "follow.yaml"
    plan.write_text(PLAN)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "run",
        str(plan),
        "-i",
        '{"t": "T-1001"}',
        env=cli_env(env.settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    with anyio.fail_after(60):
        while not seen or not seen[-1].startswith("waiting for approval"):
            line = (await proc.stdout.readline()).decode()
            assert line, f"run ended early: {seen}"
            seen.append(line.strip())
    approval_id = seen[-1].split()[3].rstrip(":")
    assert seen[-1] == (
        f"waiting for approval {approval_id}: Refund Ana Souza?"
        f" (orchestrator approvals approve {approval_id} --as NAME)"
    )
    await decide_approval(
        env.client, env.runtime.store, approval_id, approve=True, decided_by="maria"
    )
    with anyio.fail_after(60):
        rest, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    out = "\n".join(seen) + "\n" + rest.decode()
    for expected in (
        "step ticket (skill): completed",
        "step both (parallel): completed",
        "step gate (approval): completed",
        "step reply (agent): completed on demo-fast after 1 model call(s)",
        "model demo-fast pinned at",
        'completed: "Dear Ana',
    ):
        assert expected in out, (expected, out)
