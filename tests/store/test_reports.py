"""Cross-session reports: spend by tenant and model, events since a time, tenant filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.store import AuditEvent, EventKind, SessionRecord, Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def seed(store: Store) -> None:
    for session_id, tenant in (("s-a", "acme"), ("s-b", "acme"), ("s-c", "globex")):
        await store.record_session_start(
            SessionRecord(
                session_id=session_id,
                workflow_id=f"wf-{session_id}",
                run_id="r",
                plan_name="p",
                plan_version="1",
                tenant=tenant,
                started_at=T0,
            )
        )
    calls = [
        ("s-a", "strong", 0.5, 100, 10, T0),
        ("s-a", "fast", 0.125, 50, 5, T0 + timedelta(hours=1)),
        ("s-b", "strong", 0.25, 80, 8, T0 + timedelta(days=2)),
        ("s-c", "fast", 0.0625, 40, 4, T0 + timedelta(days=3)),
        ("s-orphan", "fast", 1.0, 1, 1, T0 + timedelta(days=3)),
    ]
    for index, (session_id, model, cost, tin, tout, at) in enumerate(calls):
        await store.append_event(
            AuditEvent(
                event_key=f"k{index}",
                session_id=session_id,
                workflow_id=f"wf-{session_id}",
                run_id="r",
                kind=EventKind.MODEL_CALL,
                model=model,
                input_tokens=tin,
                output_tokens=tout,
                cost_usd=cost,
                created_at=at,
            )
        )
    await store.append_event(
        AuditEvent(
            event_key="tool",
            session_id="s-a",
            workflow_id="wf-s-a",
            run_id="r",
            kind=EventKind.TOOL_CALL,
            skill="x",
            cost_usd=9.0,
            created_at=T0,
        )
    )


async def test_spend_by_tenant_counts_model_calls_only(store: Store) -> None:
    await seed(store)

    rows = await store.reports.spend("tenant")

    assert [(r.key, r.sessions, r.model_calls, r.cost_usd) for r in rows] == [
        ("default", 1, 1, 1.0),
        ("acme", 2, 3, 0.875),
        ("globex", 1, 1, 0.0625),
    ]
    assert rows[1].input_tokens == 230 and rows[1].output_tokens == 23


async def test_spend_by_model_since(store: Store) -> None:
    await seed(store)

    rows = await store.reports.spend("model", since=T0 + timedelta(days=1))

    assert [(r.key, r.model_calls, r.cost_usd) for r in rows] == [
        ("fast", 2, 1.0625),
        ("strong", 1, 0.25),
    ]


async def test_events_across_sessions_and_tenant_filter(store: Store) -> None:
    await seed(store)

    since = await store.reports.events([EventKind.MODEL_CALL], since=T0 + timedelta(days=2))
    assert [e.event_key for e in since] == ["k2", "k3", "k4"]
    tools = await store.reports.events([EventKind.TOOL_CALL])
    assert [e.skill for e in tools] == ["x"]
    acme = await store.list_sessions(tenant="acme")
    assert {s.session_id for s in acme} == {"s-a", "s-b"}
    assert (await store.get_session("s-c")) is not None
    assert (await store.get_session("s-c")).tenant == "globex"  # type: ignore[union-attr]
