"""With no Temporal reachable, the CLI says so in one line naming the address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from orchestrator.devserver import free_port


def test_run_names_the_address_it_could_not_reach(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env |= {
        "ORCHESTRATOR_PROJECT_DIR": str(REPO),
        "ORCHESTRATOR_STATE_DIR": str(tmp_path / "state"),
        "ORCHESTRATOR_TEMPORAL_ADDRESS": address,
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            "workflows/customer_refund.yaml",
            "--input",
            '{"ticket_id": "T-1001"}',
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot reach Temporal at {address}" in lines[0]
    assert "orchestrator dev" in lines[0] and "ORCHESTRATOR_TEMPORAL_ADDRESS" in lines[0]
