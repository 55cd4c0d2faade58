"""`orchestrator api` as operators run it: a subprocess serving health and metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from process_helpers import process_env, start_serving, stop_serving

import orchestrator.observability
from orchestrator.devserver import free_port
from orchestrator.observability import configure_tracing, tracing_interceptor


def test_public_api_is_exactly_exported() -> None:
    assert sorted(orchestrator.observability.__all__) == [
        "METRICS",
        "Metrics",
        "MetricsInterceptor",
        "configure_tracing",
        "health_app",
        "serve_http",
        "tracing_interceptor",
        "tracing_interceptors",
    ]


async def test_api_serves_health_readiness_and_metrics(tmp_path: Path) -> None:
    port = free_port()
    env = process_env(None, tmp_path / "state", ORCHESTRATOR_LOG_FORMAT="json")
    proc = await start_serving(env, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).text == "ok\n"
            assert (await http.get("/readyz")).status_code == 200
            metrics = await http.get("/metrics")
            skills = (await http.get("/api/skills/")).json()
            refund = await http.get("/api/skills/payments.refund@^1.0")
            missing = await http.get("/api/skills/payments.nope")
            post = await http.post("/api/skills/", json={})
        assert metrics.status_code == 200
        assert "orchestrator_approvals_pending 0.0" in metrics.text
        assert 'orchestrator_sessions{status="completed"} 0.0' in metrics.text
        assert "# TYPE orchestrator_routing_decisions_total counter" in metrics.text
        # The skill catalog, read-only.
        assert "payments.refund" in str(skills)
        assert refund.status_code == 200 and refund.json()["risk"] == "irreversible_write"
        assert missing.status_code == 404 and "payments.nope" in missing.json()["error"]
        assert post.status_code == 405
    finally:
        code = await stop_serving(proc)
    assert code == 0


def test_tracing_stays_off_without_an_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert configure_tracing("orchestrator-test") is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert configure_tracing("orchestrator-test") is None


def test_one_tracing_interceptor_per_process() -> None:
    assert tracing_interceptor() is tracing_interceptor()
