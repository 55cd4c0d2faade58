"""The tracing interceptor is installed only when a tracer provider is.

Without one its spans were dropped, yet it ran on every workflow activation and activity;
with one, client and workers carry the same single instance as before.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Replayer

from orchestrator.observability import tracing_interceptor, tracing_interceptors
from orchestrator.observability.tracing import tracing_on
from orchestrator.plugin import OrchestratorPlugin


def _replayer_tracers() -> list[object]:
    """The tracing interceptors a replayer built with the plugin ends up with."""
    replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])
    config = replayer.config(active_config=True)
    return [i for i in config.get("interceptors", []) if isinstance(i, TracingInterceptor)]


@pytest.fixture
def no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    # The global provider is set once per process (another module's test may have set it):
    # each test here sees its own, and the process's is restored afterwards.
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)


@pytest.mark.usefixtures("no_provider")
def test_no_tracer_provider_no_tracing_interceptor() -> None:
    assert not tracing_on()
    assert tracing_interceptors() == []
    assert _replayer_tracers() == []


@pytest.mark.usefixtures("no_provider")
def test_a_tracer_provider_brings_the_one_tracing_interceptor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", TracerProvider())
    assert tracing_on()
    assert tracing_interceptors() == [tracing_interceptor()]
    assert _replayer_tracers() == [tracing_interceptor()]
