"""The audit CLI after a demo run, checked against the events in the store.

`sessions show --json`, `sessions list --json`, `cost --by tenant|model|skill` and
`inventory` run as real subprocesses over the test's store; every figure they print must
be the one the audit events hold.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Env
from test_cli import cli

from orchestrator.cli.audit import parse_since
from orchestrator.exceptions import OrchestratorError
from orchestrator.plans import load_plan
from orchestrator.service import decide_approval
from orchestrator.session_start import StartOptions
from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.testing import start_until_approval

PLAN = REPO / "workflows/customer_refund.yaml"
SCRIPT = REPO / "model_scripts/customer_refund.yaml"


async def demo(env: Env, tenant: str = "default") -> tuple[str, list[AuditEvent]]:
    gated = await start_until_approval(
        env.client,
        env.runtime.store,
        load_plan(PLAN),
        {"ticket_id": "T-1001"},
        StartOptions(requested_by="audit-test", tenant=tenant),
        task_queue=env.settings.task_queue,
    )
    handle, session_id, pending = gated.handle, gated.session_id, gated.pending
    await decide_approval(
        env.client,
        env.runtime.store,
        pending.approval_id,
        approve=True,
        decided_by="maria",
        reason="refund within policy",
    )
    await handle.result()
    return session_id, await env.runtime.store.list_events(session_id)


async def run_json(env: Env, *args: str) -> Any:
    result = await cli(env.settings, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_audit_commands_tell_the_demo_story(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    session_id, events = await demo(env)
    of = lambda kind: [e for e in events if e.kind is kind]  # noqa: E731
    model_calls = of(EventKind.MODEL_CALL)
    total_cost = sum(e.cost_usd for e in model_calls)

    story = await run_json(env, "sessions", "show", session_id)

    started = of(EventKind.SESSION_STARTED)[0]
    assert story["plan"] == "customer-refund"
    assert story["requested_by"] == "audit-test"
    assert story["skills"] == started.payload["skills"]
    assert [s["status"] for s in story["steps"]] == ["completed", "completed"]
    pins = of(EventKind.MODEL_PINNED)
    assert [(p["step_id"], p["model"]) for p in story["model_timeline"]] == [
        (e.step_id, e.model) for e in pins
    ]
    assert [p["model"] for p in story["model_timeline"]] == ["demo-strong", "demo-fast"]
    switch = story["model_timeline"][1]
    assert switch["switched"] and switch["previous"] == "demo-strong"
    assert switch["boundary"] == pins[1].payload["boundary"]
    assert switch["reason"] == pins[1].payload["reason"]
    assert [(c["step_id"], c["round"], c["model"]) for c in story["model_calls"]] == [
        (e.step_id, e.payload["round"], e.model) for e in model_calls
    ]
    assert story["cost_usd"] == pytest.approx(total_cost)
    assert story["input_tokens"] == sum(e.input_tokens for e in model_calls)
    assert story["output_tokens"] == sum(e.output_tokens for e in model_calls)
    tool_events = of(EventKind.TOOL_CALL)
    assert [(t["skill"], t["version"], t["outcome"]) for t in story["tool_calls"]] == [
        (e.skill, e.payload["version"], "ok") for e in tool_events
    ]
    refund = next(t for t in story["tool_calls"] if t["skill"] == "payments.refund")
    [approval] = story["approvals"]
    assert refund["approval_id"] == approval["approval_id"]
    assert (approval["status"], approval["decided_by"], approval["reason"]) == (
        "approved",
        "maria",
        "refund within policy",
    )
    decided = of(EventKind.APPROVAL_DECIDED)[0]
    assert decided.payload["decided_by"] == "maria"
    # Tool calls numbered as people count: round 1 call 1 is 1.1 (ids stay 0-based).
    assert [(t["call"], t["call_id"], t["skill"]) for t in story["tool_calls"]] == [
        ("1.1", "0.0", "tickets.get"),
        ("2.1", "1.0", "orders.get"),
        ("3.1", "2.0", "payments.refund"),
    ]
    # Every step's output and the final output, as the session returned them.
    record = await env.runtime.store.get_session(session_id)
    assert record is not None and isinstance(record.output, str)
    assert record.output.startswith("Dear Ana")
    outputs = {s["step_id"]: s["output"] for s in story["steps"]}
    assert outputs["investigate"].startswith("Refunded 42.50 EUR for order A-1001")
    assert outputs["reply"] == record.output
    assert story["final_output"] == record.output

    text = await cli(env.settings, "sessions", "show", session_id)
    assert text.returncode == 0, text.stderr
    for expected in (
        "customer-refund v1",
        "demo-strong -> demo-fast",
        "payments.refund@1.0.0",
        "maria",
        "refund within policy",
        f"${total_cost:.6f}",
        outputs["investigate"],
        f"final output\n{record.output}",
    ):
        assert expected in text.stdout, expected
    tool_rows = [line for line in text.stdout.splitlines() if "│ investigate │ 2.1 " in line]
    assert len(tool_rows) == 1 and "orders.get" in tool_rows[0], tool_rows
    assert " 0.0 " not in text.stdout

    listed = await run_json(env, "sessions", "list")
    assert [(s["session_id"], s["tenant"]) for s in listed] == [(session_id, "default")]


async def test_cost_reports_match_the_model_call_events(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    session_id, events = await demo(env, tenant="acme")
    model_calls = [e for e in events if e.kind is EventKind.MODEL_CALL]
    total = sum(e.cost_usd for e in model_calls)

    by_model = await run_json(env, "cost", "--by", "model", "--since", "1h")
    per_model: dict[str, float] = {}
    for e in model_calls:
        per_model[str(e.model)] = per_model.get(str(e.model), 0.0) + e.cost_usd
    assert {r["key"]: r["cost_usd"] for r in by_model["rows"]} == pytest.approx(per_model)

    by_tenant = await run_json(env, "cost", "--by", "tenant")
    assert [(r["key"], r["sessions"]) for r in by_tenant["rows"]] == [("acme", 1)]
    assert by_tenant["total_usd"] == pytest.approx(total)
    listed = await run_json(env, "sessions", "list", "--tenant", "acme")
    assert [s["session_id"] for s in listed] == [session_id]
    assert await run_json(env, "sessions", "list", "--tenant", "globex") == []

    by_skill = await run_json(env, "cost", "--by", "skill")
    assert {r["key"] for r in by_skill["rows"]} == {
        "tickets.get",
        "orders.get",
        "payments.refund",
        "(no tool call)",
    }
    assert by_skill["total_usd"] == pytest.approx(total)

    later = await run_json(env, "cost", "--by", "model", "--since", "2999-01-01")
    assert later["rows"] == []


async def test_inventory_lists_models_skills_and_plans(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    assets = await run_json(env, "inventory")

    by_key = {(a["kind"], a["name"], a["version"]): a for a in assets}
    assert by_key["model", "demo-strong", None]["region"] == "eu"
    refund = by_key["skill", "payments.refund", "1.0.0"]
    assert (refund["risk"], refund["owner"]) == ("irreversible_write", "payments-team")
    assert refund["details"]["approval"] == "always"
    plan = by_key["plan", "customer-refund", "1"]
    assert plan["risk"] == "irreversible_write"
    assert "payments" in plan["data_classes"]
    assert {("skill", "tickets.get", "1.0.0"), ("skill", "tickets.get", "1.1.0")} <= set(by_key)

    text = await cli(env.settings, "inventory", "--kind", "skill")
    assert text.returncode == 0 and "payments-team" in text.stdout
    assert "demo-strong" not in text.stdout


def test_since_accepts_durations_and_iso_times() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 10, tzinfo=UTC)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since("30m", now=now) == now - timedelta(minutes=30)
    assert parse_since("2026-01-01") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(OrchestratorError, match="expected a duration"):
        parse_since("last tuesday")
