"""`orchestrator approvals notices`: what was sent, retried or failed, read from the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _notify_seed import SECRET, T0, directory, free_port, waiting
from conftest import REPO

from orchestrator.approvals.notify.notifier import Channels, Notifier
from orchestrator.cli.notices import NOTICE_FIELDS
from orchestrator.settings import Settings
from orchestrator.store.store import Store


def notices_cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ORCHESTRATOR_PROJECT_DIR": str(REPO),
        "ORCHESTRATOR_STATE_DIR": str(state),
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "approvals", "notices", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_notices_show_each_try_and_error_without_secrets(tmp_path: Path) -> None:
    state = tmp_path / "state"
    closed = free_port()  # nothing listens: every try is refused
    people = directory(
        {
            "base_url": "https://inbox.example.test",
            "digest_seconds": 0,
            "email": {
                "host": "127.0.0.1",
                "port": closed,
                "security": "none",
                "username": "orchestrator",
                "password_env": "PW",
                "sender": "approvals@example.test",
            },
        }
    )
    people.users.pop("kim")
    assert people.notifications is not None
    channels = Channels(smtp=people.notifications.email, smtp_password="pw-do-not-print")
    url = Settings(project_dir=REPO, state_dir=state).resolved_database_url
    async with await Store.open(url) as store:
        await waiting(store, "apr_n")
        report = await Notifier(store, people, channels, inbox_secret=SECRET).run_once(T0)
        assert report.retried == 1

    shown = notices_cli(state)
    assert shown.returncode == 0, shown.stderr
    assert "apr_n  email -> lee  queued (1 tries)" in shown.stdout
    assert f"SMTP 127.0.0.1:{closed} unreachable (ConnectionRefusedError)" in shown.stdout
    assert "pw-do-not-print" not in shown.stdout + shown.stderr

    rows = json.loads(
        notices_cli(state, "--json", "--status", "queued", "--approval", "apr_n").stdout
    )
    assert [tuple(row) for row in rows] == [NOTICE_FIELDS]
    assert rows[0]["recipient"] == "lee" and rows[0]["status"] == "queued"
