"""`orchestrator dev` refuses a busy port instead of moving to another one.

The other commands dial the configured port, so a dev server that silently moved would
leave `run` and `approvals` talking to whatever holds the port (on a shared machine,
someone else's server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

from orchestrator.devserver import free_port, port_in_use


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something listens on for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("which", ["PORT", "UI_PORT"])
def test_dev_refuses_a_busy_port_naming_it(busy_port: int, tmp_path: Path, which: str) -> None:
    ports = {"PORT": free_port(), "UI_PORT": free_port(), which: busy_port}
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env |= {
        "ORCHESTRATOR_PROJECT_DIR": str(REPO),
        "ORCHESTRATOR_STATE_DIR": str(tmp_path / "state"),
        "ORCHESTRATOR_DEV_SERVER_PORT": str(ports["PORT"]),
        "ORCHESTRATOR_DEV_SERVER_UI_PORT": str(ports["UI_PORT"]),
        "ORCHESTRATOR_METRICS_PORT": "0",
        "COLUMNS": "200",
    }

    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{busy_port} (ORCHESTRATOR_DEV_SERVER_{which}) is already in use" in lines[0]
    if which == "PORT":  # the frontend that holds the port may be the one to use
        assert f"ORCHESTRATOR_TEMPORAL_ADDRESS=127.0.0.1:{busy_port}" in lines[0]
    # Nothing was started on the other, free port.
    other = ports["UI_PORT" if which == "PORT" else "PORT"]
    assert not port_in_use("127.0.0.1", other)
