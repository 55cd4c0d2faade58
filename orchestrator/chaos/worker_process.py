"""`orchestrator worker` as a subprocess that can be killed without warning and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from orchestrator.settings import Settings

__all__ = ["WorkerProcess"]


class WorkerProcess:
    """One worker at a time, on the settings' server, task queue, project and state.

    A real process, so a SIGKILL takes everything it held in memory (workflow cache,
    in-flight activities, open connections) the way a crashed machine would.

    Args:
        settings: Where the worker connects and what it serves.
        scripted_url: The model endpoint (`ORCHESTRATOR_REPLAY_URL` of the models file).
        log: File the worker's output is appended to (default: `worker.log` in the state
            folder).
    """

    def __init__(self, settings: Settings, scripted_url: str, log: Path | None = None) -> None:
        self.env = {
            **os.environ,
            "ORCHESTRATOR_PROJECT_DIR": str(settings.project_dir),
            "ORCHESTRATOR_STATE_DIR": str(settings.resolved_state_dir),
            "ORCHESTRATOR_TEMPORAL_ADDRESS": settings.temporal_address or "",
            "ORCHESTRATOR_TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "ORCHESTRATOR_TASK_QUEUE": settings.task_queue,
            "ORCHESTRATOR_DATABASE_URL": settings.resolved_database_url,
            "ORCHESTRATOR_REPLAY_URL": scripted_url,
            "ORCHESTRATOR_LOG_FORMAT": "json",
            # Several workers may run on one machine (tests in parallel): no fixed port.
            "ORCHESTRATOR_METRICS_PORT": "off",
        }
        self.log = log or settings.resolved_state_dir / "worker.log"
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        """The current process, if one was started."""

    @property
    def running(self) -> bool:
        """Whether the current process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start a new worker process (the previous one must be gone)."""
        if self.running:
            raise RuntimeError("a worker process is already running")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "worker"],
                env=self.env,
                stdout=out,
                stderr=out,
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the worker: no shutdown, no flush, no goodbye to the server."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop the worker gracefully (SIGTERM), killing it if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
