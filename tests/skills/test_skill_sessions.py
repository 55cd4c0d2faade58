"""Contracts at work in real sessions on the dev server: pinned versions, CEL approval
conditions, retries with idempotency keys, and outputs checked against the contract."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import REPO, Env
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestrator.plans.loader import parse_plan
from orchestrator.plugin import workflow_runner
from orchestrator.runtime import Runtime
from orchestrator.service import decide_approval, query_state, start_session
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.settings import Settings
from orchestrator.skills import SkillRegistry
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.testing import eventually, wait_for_pending_approval
from orchestrator.worker import build_worker

PROJECT = Path(__file__).resolve().parent / "project"
SCRIPT = REPO / "model_scripts/customer_refund.yaml"


def skill_plan(skill: str, arguments: str, *, gate_first: bool = False) -> str:
    gate = "  - id: gate\n    type: approval\n    summary: go ahead?\n" if gate_first else ""
    return (
        f"name: contract-test\nsteps:\n{gate}"
        f"  - id: call\n    type: skill\n    skill: {skill}\n    arguments: {arguments}\n"
    )


async def ledger_env(env_factory: Callable[[Path], Awaitable[Env]]) -> Env:
    env = await env_factory(SCRIPT)
    env.runtime.skills = SkillRegistry.load_directory(PROJECT)
    return env


def ledger_rows(env: Env, table: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(env.runtime.skill_state_dir / "ledger.db")) as conn:
        return list(conn.execute(f"SELECT * FROM {table}"))


async def test_a_retried_irreversible_skill_applies_its_effect_once(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await ledger_env(env_factory)
    plan = parse_plan(skill_plan("ledger.charge@^1.0", "{account: acme, amount: 30}"))
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    attempts = ledger_rows(env, "attempts")
    assert [a for _key, a in attempts] == [1, 2], "the contract's retry policy retried once"
    assert len({key for key, _a in attempts}) == 1, "both attempts carried one key"
    assert len(ledger_rows(env, "effects")) == 1, "the charge was applied once"


async def test_a_deprecated_version_runs_only_when_named_and_is_recorded(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await ledger_env(env_factory)
    assert env.runtime.skills.resolve("ledger.charge").spec.version == "1.0.0"
    plan = parse_plan(skill_plan("ledger.charge@<1", "{account: acme, amount: 5}"))
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    assert (await handle.result()).status is SessionStatus.COMPLETED
    events = await env.runtime.store.list_events(handle.id.removeprefix("session-"))
    started = next(e for e in events if e.kind is EventKind.SESSION_STARTED)
    assert started.payload["skills"] == {"ledger.charge": "0.9.0"}
    assert started.payload["deprecated"] == {
        "ledger.charge@0.9.0": "charges before 1.0 were not retried; use ledger.charge 1.x"
    }


async def test_a_cel_condition_gates_only_the_calls_that_meet_it(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await ledger_env(env_factory)
    small = await start_session(
        env.client,
        parse_plan(skill_plan("ledger.credit", "{account: acme, amount: 20}")),
        {},
        task_queue=env.settings.task_queue,
    )
    assert (await small.result()).status is SessionStatus.COMPLETED
    session_id = small.id.removeprefix("session-")
    assert await env.runtime.store.list_approvals(session_id=session_id) == []

    large = await start_session(
        env.client,
        parse_plan(skill_plan("ledger.credit", "{account: acme, amount: 900}")),
        {},
        task_queue=env.settings.task_queue,
    )
    large_id = large.id.removeprefix("session-")
    pending = await wait_for_pending_approval(env.runtime.store, large_id)
    assert pending.skill == "ledger.credit" and pending.arguments["amount"] == 900
    state = await query_state(env.client, large_id)
    assert state.status is SessionStatus.WAITING_APPROVAL
    assert len(ledger_rows(env, "effects")) == 1, "the large credit ran before approval"
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    assert (await large.result()).status is SessionStatus.COMPLETED
    assert len(ledger_rows(env, "effects")) == 2


async def test_the_contract_timeout_and_retries_bound_each_call(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await ledger_env(env_factory)
    plan = parse_plan(skill_plan("ledger.slow", "{account: acme, amount: 1}"))
    started = time.monotonic()
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert time.monotonic() - started < 20, "the session default (120 s) was used"
    events = await env.runtime.store.list_events(handle.id.removeprefix("session-"))
    failed = next(e for e in events if e.kind is EventKind.STEP_FAILED)
    assert "ledger.slow: activity StartToClose timeout" in str(failed.payload["error"])


async def test_output_that_breaks_the_contract_fails_the_step_and_is_recorded(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await ledger_env(env_factory)
    plan = parse_plan(skill_plan("ledger.broken", "{account: acme, amount: 1}"))
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    session_id = handle.id.removeprefix("session-")
    events = await env.runtime.store.list_events(session_id)
    bad = [e for e in events if e.kind is EventKind.TOOL_ERROR and e.skill == "ledger.broken"]
    assert len(bad) == 1, "one audit event; the invalid output is not retried"
    error = str(bad[0].payload["error"])
    assert "ledger.broken@1.0.0 returned output that breaks its contract" in error
    assert "receipt_id" in error and "amount" in error
    assert bad[0].payload["error_kind"] == "invalid_output"
    failed = next(e for e in events if e.kind is EventKind.STEP_FAILED)
    assert "ledger.broken@1.0.0" in str(failed.payload["error"])


async def test_a_session_keeps_its_resolved_version_after_a_newer_one_deploys(
    settings: Settings, client: Client
) -> None:
    """Started on tickets.get 1.0.0, a session still runs 1.0.0 on a worker that also has
    1.1.0; a session started there resolves 1.1.0."""
    runtime = await Runtime.open(settings)
    deployed = runtime.skills
    assert [s.spec.version for s in deployed.versions("tickets.get")] == ["1.0.0", "1.1.0"]
    runtime.skills = SkillRegistry(s for s in deployed.all() if s.spec.ref != "tickets.get@1.1.0")
    plan = parse_plan(skill_plan("tickets.get@^1.0", "{ticket_id: T-1001}", gate_first=True))
    queue, store = settings.task_queue, runtime.store
    try:
        async with build_worker(client, runtime, task_queue=queue):
            old = await start_session(client, plan, {}, task_queue=queue)
            old_gate = await wait_for_pending_approval(store, old.id.removeprefix("session-"))

        runtime.skills = deployed  # the next deployment: 1.0.0 and 1.1.0 side by side
        async with build_worker(client, runtime, task_queue=queue):
            new = await start_session(client, plan, {}, task_queue=queue)
            new_gate = await wait_for_pending_approval(store, new.id.removeprefix("session-"))
            for gate in (old_gate, new_gate):
                await decide_approval(
                    client, store, gate.approval_id, approve=True, decided_by="maria"
                )
            old_result, new_result = await old.result(), await new.result()

        assert old_result.outputs["call"] == {
            "ticket_id": "T-1001",
            "customer": "Ana Souza",
            "email": "ana@example.com",
            "order_id": "A-1001",
            "subject": "Kettle arrived broken",
            "body": "The kettle I ordered arrived with a cracked base."
            " I would like my money back, please.",
        }
        new_output = new_result.outputs["call"]
        assert isinstance(new_output, dict) and new_output["status"] == "open"
        for handle, version in ((old, "1.0.0"), (new, "1.1.0")):
            events = await store.list_events(handle.id.removeprefix("session-"))
            started = next(e for e in events if e.kind is EventKind.SESSION_STARTED)
            assert started.payload["skills"] == {"tickets.get": version}
            assert started.payload["skill_refs"] == ["tickets.get@^1.0"]
            assert started.payload["deprecated"] == {}
            call = next(e for e in events if e.kind is EventKind.TOOL_CALL)
            assert call.payload["version"] == version
    finally:
        await runtime.close()


async def test_a_worker_without_the_recorded_version_refuses_the_call(
    settings: Settings, client: Client
) -> None:
    runtime = await Runtime.open(settings)
    deployed = runtime.skills
    plan = parse_plan(skill_plan("tickets.get@~1.1", "{ticket_id: T-1001}", gate_first=True))
    queue, store = settings.task_queue, runtime.store
    try:
        async with build_worker(client, runtime, task_queue=queue):
            handle = await start_session(client, plan, {}, task_queue=queue)
            session_id = handle.id.removeprefix("session-")
            gate = await wait_for_pending_approval(store, session_id)
        runtime.skills = SkillRegistry(
            s for s in deployed.all() if s.spec.ref != "tickets.get@1.1.0"
        )
        async with build_worker(client, runtime, task_queue=queue):
            await decide_approval(client, store, gate.approval_id, approve=True, decided_by="m")
            with pytest.raises(WorkflowFailureError):
                await handle.result()

        async def failed() -> str | None:
            record = await store.get_session(session_id)
            return record.error if record and record.error else None

        error = await eventually(failed, what="the session's error")
        assert "session resolved tickets.get@1.1.0" in error
        assert "versions: 1.0.0" in error
    finally:
        await runtime.close()


async def test_a_contract_session_history_replays(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    """A CEL-gated call and a retried call under contract options replay deterministically.

    `ORCHESTRATOR_RECORD_HISTORIES=1` records it into `tests/histories/`, where every
    later version of the workflow must still replay it.
    """
    env = await ledger_env(env_factory)
    text = skill_plan("ledger.credit@^1", "{account: acme, amount: 900}") + (
        "  - id: charge\n    type: skill\n    skill: ledger.charge@^1.0\n"
        "    arguments: {account: acme, amount: 12}\n"
    )
    handle = await start_session(
        env.client, parse_plan(text), {}, task_queue=env.settings.task_queue
    )
    pending = await wait_for_pending_approval(env.runtime.store, handle.id.removeprefix("session-"))
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    assert (await handle.result()).status is SessionStatus.COMPLETED
    history = await handle.fetch_history()
    replayed = await Replayer(
        workflows=[AgentSessionWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    ).replay_workflow(history)
    assert replayed.replay_failure is None
    if os.environ.get("ORCHESTRATOR_RECORD_HISTORIES"):
        recorded = {"workflow_id": history.workflow_id, **json.loads(history.to_json())}
        (REPO / "tests/histories/skill_contracts.json").write_text(
            json.dumps(recorded, indent=1) + "\n"
        )
