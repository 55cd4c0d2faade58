"""Typed failures across the durable boundary: one mapping of class to failure type.

`to_failure` builds the `ApplicationError` an activity or the workflow raises, and
`from_failure` turns what the other side receives (wrapped by Temporal or not) back into
the typed error. The type strings are in recorded histories, so they are pinned here.
"""

from __future__ import annotations

import builtins
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import RetryState
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

from orchestrator.exceptions import (
    FAILURE_TYPES,
    ApprovalBySelf,
    ApprovalError,
    CallLostError,
    ConfigError,
    DeploymentUnavailable,
    OrchestratorError,
    PayloadTooLargeError,
    PermanentError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
    SessionFailed,
    failure_type,
    from_failure,
    to_failure,
)
from orchestrator.routing.metrics import LiveMetrics
from orchestrator.session.pinning import unavailable
from orchestrator.session.routing_activities import failure_error

REPO = Path(__file__).resolve().parents[2]

PINNED = {
    "NonRetryable": "PermanentError",
    "SessionFailed": "SessionFailed",
    "AgentSessionInputInvalid": "SessionInputError",
    "PayloadTooLarge": "PayloadTooLargeError",
    "SkillOutputInvalid": "SkillOutputError",
    "SkillMayHaveRun": "SkillMayHaveRun",
    "McpToolDefinitionChanged": "ToolDefinitionChanged",
    "McpCallLost": "CallLostError",
    "ProviderHTTPError": "ProviderHTTPError",
    "ProviderTimeoutError": "ProviderTimeoutError",
    "ProviderConnectionError": "ProviderConnectionError",
    "ProviderStreamError": "ProviderStreamError",
    "ProviderResponseError": "ProviderResponseError",
    "ProviderReportedError": "ProviderReportedError",
    "DeploymentUnavailable": "DeploymentUnavailable",
    "RoutingFailed": "RoutingError",
    "BudgetExceeded": "BudgetExceededError",
    "UnknownModel": "UnknownModelError",
    "UnknownApproval": "UnknownApproval",
    "ApprovalBindingMismatch": "ApprovalBindingMismatch",
    "ApprovalAlreadyDecided": "ApprovalAlreadyDecided",
    "ApprovalReasonRequired": "ApprovalReasonRequired",
    "ApprovalEditNotAllowed": "ApprovalEditNotAllowed",
    "ApprovalBySelf": "ApprovalBySelf",
    "ApprovalNotInGroup": "ApprovalNotInGroup",
    "ApprovalDelegated": "ApprovalDelegated",
    "ApprovalDelegationUnsupported": "ApprovalDelegationUnsupported",
    "ApprovalDelegationRefused": "ApprovalDelegationRefused",
}
"""Every failure type string and the class it decodes to: a string never changes."""


def _wrapped_in_activity(error: ApplicationError) -> ActivityError:
    wrapper = ActivityError(
        "Activity task failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="orchestrator.call_model",
        activity_id="1",
        retry_state=RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE,
    )
    wrapper.__cause__ = error
    return wrapper


def test_the_failure_types_are_pinned() -> None:
    assert {wire: cls.__name__ for wire, cls in FAILURE_TYPES.items()} == PINNED


@pytest.mark.parametrize("wire", sorted(PINNED))
def test_every_failure_type_round_trips_to_its_class(wire: str) -> None:
    cls = FAILURE_TYPES[wire]
    error = cls.__new__(cls)
    Exception.__init__(error, f"why {wire} failed")
    failure = to_failure(error, {"spent": 1})
    assert failure.type == wire
    assert failure.non_retryable is not error.retryable
    decoded = from_failure(_wrapped_in_activity(failure))
    assert type(decoded) is cls
    assert str(decoded) == f"why {wire} failed"
    assert decoded.details == ({"spent": 1},)


def test_retryable_errors_cross_as_retryable() -> None:
    lost = to_failure(CallLostError("sent, never answered", retryable=True))
    assert lost.type == "McpCallLost" and not lost.non_retryable
    assert to_failure(CallLostError("sent, not idempotent")).non_retryable
    timeout = to_failure(ProviderTimeoutError("slow"), next_retry_delay=timedelta(seconds=2))
    assert not timeout.non_retryable and timeout.next_retry_delay == timedelta(seconds=2)
    decoded = from_failure(timeout)
    assert isinstance(decoded, ProviderTimeoutError) and decoded.retryable


def test_a_subclass_crosses_as_its_nearest_mapped_base() -> None:
    class SelfApprovalByProxy(ApprovalBySelf):
        pass

    assert failure_type(SelfApprovalByProxy) == "ApprovalBySelf"
    decoded = from_failure(to_failure(SelfApprovalByProxy("maria asked for it")))
    assert isinstance(decoded, ApprovalBySelf) and isinstance(decoded, ApprovalError)


def test_an_unmapped_class_is_refused_not_sent_as_a_guess() -> None:
    with pytest.raises(TypeError, match="ConfigError has no failure type"):
        to_failure(ConfigError("bad settings"))


def test_decoding_looks_through_every_wrapper_and_ignores_foreign_failures() -> None:
    failed = to_failure(SessionFailed("step 'gate' failed: rejected"))
    child = ChildWorkflowError(
        "Child Workflow execution failed",
        namespace="default",
        workflow_id="session-x",
        run_id="r",
        workflow_type="orchestrator.AgentSession",
        initiated_event_id=1,
        started_event_id=2,
        retry_state=RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE,
    )
    child.__cause__ = failed
    workflow = WorkflowFailureError(cause=child)
    assert isinstance(from_failure(workflow), SessionFailed)
    assert from_failure(ApplicationError("theirs", type="SomethingElse")) is None
    assert from_failure(ApplicationError("untyped")) is None
    assert from_failure(RuntimeError("not a failure")) is None


def test_failover_follows_the_typed_errors_not_their_names() -> None:
    """A 5xx after its retries fails over; a 4xx fails the step; a long wait fails over now."""
    metrics = LiveMetrics()

    def crossed(exc: ProviderHTTPError | ProviderResponseError) -> OrchestratorError | None:
        return from_failure(failure_error(metrics, "fast", exc))

    down = ProviderHTTPError("503", status_code=503)
    wrong = ProviderHTTPError("400", status_code=400)
    waiting = ProviderHTTPError("429", status_code=429, retry_after=120)
    assert isinstance(crossed(down), ProviderHTTPError)
    assert isinstance(crossed(wrong), PermanentError)
    assert isinstance(crossed(waiting), DeploymentUnavailable)
    assert isinstance(crossed(ProviderResponseError("not JSON")), PermanentError)
    assert unavailable(_wrapped_in_activity(failure_error(metrics, "fast", down)))
    assert not unavailable(_wrapped_in_activity(failure_error(metrics, "fast", wrong)))
    too_large = to_failure(PayloadTooLargeError("4 MiB"))
    assert not unavailable(_wrapped_in_activity(too_large))


def test_recorded_histories_hold_only_known_failure_types() -> None:
    """Retry policies and failures in tests/histories decode with today's mapping.

    A skill's own Python exception (`ConnectionError`) crosses under its class name, which
    Temporal's converter gives it; it is foreign, and `from_failure` leaves it alone.
    """
    policies: set[str] = set()
    failures: set[str] = set()
    for path in sorted((REPO / "tests/histories").glob("*.json")):
        text = path.read_text()
        for match in re.finditer(r'"nonRetryableErrorTypes": (\[[^\]]*\])', text):
            policies.update(json.loads(match.group(1)))
        failures.update(re.findall(r'"applicationFailureInfo": \{\s*"type": "(\w+)"', text))
    assert policies == {"NonRetryable"}
    assert FAILURE_TYPES["NonRetryable"] is PermanentError
    foreign = failures - set(FAILURE_TYPES)
    assert all(isinstance(getattr(builtins, name, None), type) for name in foreign), foreign
    for name in foreign:
        assert from_failure(ApplicationError("skill code", type=name)) is None


def test_no_failure_type_is_spelled_outside_the_mapping() -> None:
    """Failures are built by `to_failure` and read by `from_failure`, never by strings."""
    spelled = re.compile(r"ApplicationError\(|\.type\s*[!=]=|\.type\s+(not\s+)?in\b")
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "orchestrator").rglob("*.py"))
        if path.name != "exceptions.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if spelled.search(line)
    ]
    assert offenders == []
