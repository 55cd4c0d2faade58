"""`orchestrator approvals list`: ids whole at any terminal width, and `--json` for scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from conftest import REPO

from orchestrator.cli.approvals import LIST_FIELDS
from orchestrator.settings import Settings
from orchestrator.store.records import ApprovalRecord, ApprovalStatus
from orchestrator.store.store import Store

SESSION = "3f2a9c4e-1b2c-4d5e-8f90-0123456789ab-with-a-long-tenant-suffix"


def approvals_list(state: Path, columns: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ORCHESTRATOR_PROJECT_DIR": str(REPO),
        "ORCHESTRATOR_STATE_DIR": str(state),
        "COLUMNS": str(columns),
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "approvals", "list", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def request(approval_id: str, step_id: str, minute: int, **fields: object) -> ApprovalRecord:
    return ApprovalRecord.model_validate(
        {
            "approval_id": approval_id,
            "session_id": SESSION,
            "workflow_id": f"session-{SESSION}",
            "run_id": "run-1",
            "step_id": step_id,
            "binding_hash": approval_id[-1] * 64,
            "requested_at": datetime(2026, 12, 1, 9, minute, tzinfo=UTC),
            **fields,
        }
    )


async def seed(state: Path) -> list[ApprovalRecord]:
    url = Settings(project_dir=REPO, state_dir=state).resolved_database_url
    records = [
        request(
            "apr_0123456789ab",
            "investigate",
            0,
            kind="tool_call",
            skill="payments.refund",
            skill_version="1.0.0",
            arguments={"order_id": "O-1", "amount": 120.5, "reason": "damaged in transit"},
            summary="refund 120.5",
        ),
        request("apr_fedcba987654", "sign-off", 5, kind="step", summary="Ship the release?"),
    ]
    async with await Store.open(url) as store:
        for rec in records:
            assert await store.record_approval_request(rec)
        await store.decide_approval(
            "apr_fedcba987654",
            status=ApprovalStatus.APPROVED,
            decided_by="maria",
            reason="tests green",
            decided_at=datetime(2026, 12, 1, 9, 6, tzinfo=UTC),
        )
    return records


async def test_ids_are_never_cut_at_any_width(tmp_path: Path) -> None:
    await seed(tmp_path)
    for columns in (200, 80, 40):
        done = approvals_list(tmp_path, columns, "--all")
        assert done.returncode == 0, done.stderr
        for whole in ("apr_0123456789ab", "apr_fedcba987654", SESSION, "payments.refund@1.0.0"):
            assert whole in done.stdout, (columns, whole, done.stdout)
        assert "…" not in done.stdout
        assert "approve|reject apr_0123456789ab --as NAME" in done.stdout
        assert "maria: tests green" in done.stdout
    pending = approvals_list(tmp_path, 80)
    assert "apr_0123456789ab" in pending.stdout and "apr_fedcba987654" not in pending.stdout


async def test_json_lists_the_documented_fields(tmp_path: Path) -> None:
    records = await seed(tmp_path)
    done = approvals_list(tmp_path, 40, "--all", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [list(row) for row in listed] == [list(LIST_FIELDS)] * 2
    first, second = listed
    assert first["approval_id"] == records[0].approval_id
    assert first["session_id"] == SESSION
    assert first["arguments"] == records[0].arguments
    assert (first["status"], first["decided_by"]) == ("pending", None)
    assert (second["status"], second["decided_by"], second["reason"]) == (
        "approved",
        "maria",
        "tests green",
    )
    assert second["requested_at"].startswith("2026-12-01T09:05:00")
    readme = (REPO / "README.md").read_text()
    for field in LIST_FIELDS:
        assert f"`{field}`" in readme, field
