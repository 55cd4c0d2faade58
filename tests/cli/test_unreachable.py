"""With no Temporal reachable, every CLI command that dials it says so in one line naming
the address, and exits 1 without a traceback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from orchestrator.devserver import free_port

DIALLING = [
    ("run", "workflows/customer_refund.yaml", "--input", '{"ticket_id": "T-1001"}'),
    ("worker",),
    ("mcp", "serve"),
    ("approvals", "approve", "apr_x", "--as", "maria"),
    ("approvals", "reject", "apr_x", "--as", "maria", "--reason", "no"),
    ("approvals", "delegate", "apr_x", "--as", "maria", "--to", "lee"),
    ("sessions", "watch", "abc"),
]


async def _run(args: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        *args,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,  # `mcp serve` would read its client from stdin
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


async def test_every_dialling_command_names_the_address_it_could_not_reach(
    tmp_path: Path,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env |= {
        "ORCHESTRATOR_PROJECT_DIR": str(REPO),
        "ORCHESTRATOR_STATE_DIR": str(tmp_path / "state"),
        "ORCHESTRATOR_TEMPORAL_ADDRESS": address,
        "COLUMNS": "200",
    }
    results = await asyncio.gather(*(_run(args, env) for args in DIALLING))
    for result in results:
        command = " ".join(result.args)
        assert result.returncode == 1, (command, result.stdout + result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (command, result.stderr)
        assert f"cannot reach Temporal at {address}" in lines[0], command
        assert "orchestrator dev" in lines[0] and "ORCHESTRATOR_TEMPORAL_ADDRESS" in lines[0]
        assert "Traceback" not in result.stdout + result.stderr
