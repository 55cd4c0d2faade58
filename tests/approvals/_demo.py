"""The demo refund, started and waiting for its approval: what every approvals test needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Env
from temporalio.client import Client

from orchestrator.approvals.people import (
    ApproverDirectory,
    hash_password,
    hash_token,
    load_approvers,
)
from orchestrator.plans import load_plan
from orchestrator.session_start import StartOptions
from orchestrator.store.records import ApprovalRecord
from orchestrator.testing import start_until_approval

DEMO_PLAN = REPO / "workflows/customer_refund.yaml"
DEMO_SCRIPT = REPO / "model_scripts/customer_refund.yaml"


async def waiting_refund(env: Env, requested_by: str) -> ApprovalRecord:
    """Start the demo refund as `requested_by`; its payments.refund approval, pending."""
    gated = await start_until_approval(
        env.client,
        env.runtime.store,
        load_plan(DEMO_PLAN),
        {"ticket_id": "T-1001"},
        StartOptions(requested_by=requested_by),
        task_queue=env.settings.task_queue,
    )
    return gated.pending


def client_of(env: Env) -> Callable[[], Awaitable[Client]]:
    """The connected-on-first-use client getter the API and inbox take."""

    async def client() -> Client:
        return env.client

    return client


PEOPLE = {
    "lee": ["finance"],
    "kim": ["finance"],
    "max": ["finance"],
    "ode": ["ops"],
    "sam": ["support-leads"],
}
"""Approvers of `write_approvers`; each one's API token is `tok-<name>`, password `<name>-pass`."""


def write_approvers(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy: dict[str, object],
    tenants: dict[str, list[str]] | None = None,
) -> ApproverDirectory:
    """An approvers file the worker reads (payments.refund → finance, plus `policy`).

    `tenants` limits the named people to those tenants' sessions (`Approver.tenants`).
    """
    limits = tenants or {}
    path = tmp_path / "approvers.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "groups": ["finance", "ops", "support-leads"],
                "policy": {"skills": {"payments.refund": "finance"}, **policy},
                "users": {
                    name: {
                        "groups": groups,
                        "tokens": [hash_token(f"tok-{name}")],
                        "password": hash_password(f"{name}-pass"),
                        **({"tenants": limits[name]} if name in limits else {}),
                    }
                    for name, groups in PEOPLE.items()
                },
            }
        )
    )
    monkeypatch.setenv("ORCHESTRATOR_APPROVERS_FILE", str(path))
    return load_approvers(path)
