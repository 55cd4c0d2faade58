"""Every error a user of the runtime can meet, in one tree.

```
OrchestratorError
├── ConfigError                 settings, models file, project layout
├── PlanError                   a plan file is malformed (names file, line, field)
├── SessionInputError           a child session's input does not fit its plan
├── SessionFailed               a session ended failed (what its caller catches)
├── PermanentError              an activity failed in a way retrying cannot fix
├── PayloadTooLargeError        a value over Temporal's payload limit was refused
├── SkillError
│   ├── SkillDefinitionError    a skill or contract is declared wrongly (names file and field)
│   ├── UnknownSkillError       a plan or model names a skill that is not registered
│   ├── SkillArgumentsError     arguments do not fit the skill's input model
│   ├── SkillOutputError        an implementation returned output that breaks its contract
│   ├── SkillToolError          the tool answered the call with an error of its own
│   ├── SkillMayHaveRun         a retry refused: an earlier attempt may have run the tool
│   ├── ToolDefinitionChanged   an MCP tool no longer matches its pin
│   └── CallLostError           an MCP call was sent but never answered
├── ProviderError               a model endpoint failed
│   ├── ProviderHTTPError       4xx/5xx answer (status, retryable)
│   ├── ProviderTimeoutError    no answer in time
│   ├── ProviderConnectionError connection refused or reset
│   ├── ProviderStreamError     a streamed answer cut short (no end marker, an error event)
│   ├── ProviderResponseError   the answer is not valid chat-completions JSON
│   ├── ProviderReportedError   a 2xx answer holding the endpoint's error (message, type, code)
│   └── DeploymentUnavailable   the deployment is down: fail over now
├── RoutingError                no deployment fits a request, or a policy/rule is broken
│   ├── BudgetExceededError     a tenant's or team's budget cannot cover a new session
│   └── UnknownModelError       a model switch names a model the session does not know
├── ApprovalError               an approval decision was refused (see the subclasses)
├── StoreError                  the audit/session store failed
│   └── EventKeyConflict        an audit event key was written before with other content
└── DevServerError              the embedded Temporal dev server did not start
```

Errors that cross Temporal's durable boundary (an activity's or the workflow's failure,
an update's refusal) travel as an `ApplicationError` whose `type` is the class's entry in
`FAILURE_TYPES`, the one mapping of class to wire string: `to_failure` builds it on the
raising side and `from_failure` turns a failure back into the typed error on the other.
The strings are in recorded histories and never change; class names are never used.
Messages never carry secrets: providers redact API keys before raising.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.exceptions import ApplicationError

if TYPE_CHECKING:
    from orchestrator.store.records import SessionStatus

__all__ = [
    "FAILURE_TYPES",
    "ApprovalAlreadyDecided",
    "ApprovalBindingMismatch",
    "ApprovalBySelf",
    "ApprovalDelegated",
    "ApprovalDelegationRefused",
    "ApprovalDelegationUnsupported",
    "ApprovalEditNotAllowed",
    "ApprovalError",
    "ApprovalNotInGroup",
    "ApprovalReasonRequired",
    "BudgetExceededError",
    "CallLostError",
    "ConfigError",
    "DeploymentUnavailable",
    "DevServerError",
    "EventKeyConflict",
    "OrchestratorError",
    "PayloadTooLargeError",
    "PermanentError",
    "PlanError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderReportedError",
    "ProviderResponseError",
    "ProviderStreamError",
    "ProviderTimeoutError",
    "RoutingError",
    "SessionEnded",
    "SessionFailed",
    "SessionInputError",
    "SkillArgumentsError",
    "SkillDefinitionError",
    "SkillError",
    "SkillMayHaveRun",
    "SkillOutputError",
    "SkillToolError",
    "StoreError",
    "ToolDefinitionChanged",
    "UnknownApproval",
    "UnknownModelError",
    "UnknownSkillError",
    "failure_type",
    "from_failure",
    "to_failure",
]


class OrchestratorError(Exception):
    """Base class of every error the runtime raises on purpose.

    Attributes:
        retryable: Whether the same operation may succeed if tried again; an activity's
            failure built by `to_failure` is non-retryable unless this is true.
        details: The failure's details when the error was decoded by `from_failure`.
    """

    retryable: bool = False
    details: tuple[Any, ...] = ()


class ConfigError(OrchestratorError):
    """Settings, the models file or the project layout are wrong."""


class PlanError(OrchestratorError):
    """A plan file is malformed; the message names the file, line and field."""


class SessionInputError(OrchestratorError):
    """A session's input does not fit its plan (a required key, the `input_schema`)."""


class SessionFailed(OrchestratorError):
    """The session ended as failed; the message names the step and why.

    What `SessionHandle.result()` raises for a failed session (the workflow's failure,
    decoded by `from_failure`), and registered with the worker as a workflow failure type.
    """


class PermanentError(OrchestratorError):
    """An activity failed in a way that retrying cannot fix.

    A plan names a skill or model the worker cannot resolve, a gated call came without its
    approval, an endpoint answered 4xx.
    """


class PayloadTooLargeError(OrchestratorError):
    """An activity refused a value Temporal would refuse (over its payload limit).

    The failure's first detail is what the refused call cost (`payloads.RefusedAnswer`).
    """


class SkillError(OrchestratorError):
    """Base class of skill problems."""


class SkillDefinitionError(SkillError):
    """A skill is declared wrongly; the message names the module and what is wrong."""


class UnknownSkillError(SkillError):
    """A plan step or a model asked for a skill that is not registered."""


class SkillArgumentsError(SkillError):
    """Arguments do not fit a skill's input model; the message lists each field at fault."""


class SkillOutputError(SkillError):
    """An implementation returned output that does not fit its contract's output model."""


class SkillToolError(SkillError):
    """The tool answered the call with an error of its own: an answer, not a fault.

    MCP `isError`, or a JSON-RPC error answer. It is never retried: an agent step hands it
    to the model as a tool error, a skill step fails with it.
    """


class IdempotencyKeyReusedError(SkillError):
    """An MCP idempotency key already names a run of the same tool with other arguments.

    The message names the key, never the arguments (they may be secret).
    """


class SkillMayHaveRun(SkillError):
    """A retry refused: an earlier attempt of the call may have reached the tool.

    The call is not idempotent and was sent, then cut off (a timeout or a crash). It is
    never retried; the step fails for a person to decide.
    """


class ToolDefinitionChanged(SkillError):
    """An MCP server's tool no longer matches its pinned definition: the call is blocked."""


class CallLostError(SkillError):
    """An MCP call was sent but never answered: it may have run.

    Retryable only when the skill's contract says it is idempotent.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ProviderError(OrchestratorError):
    """A model endpoint failed.

    Attributes:
        retryable: Whether the same request may succeed if sent again.
    """


class ProviderHTTPError(ProviderError):
    """The endpoint answered with an HTTP error status.

    Attributes:
        status_code: The HTTP status.
        retry_after: Seconds the endpoint asked us to wait, from any header it said it in.
        should_retry: The endpoint's own verdict (`x-should-retry`), which overrides the
            status: a gateway that has already retried says `false`.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.should_retry = should_retry
        self.retryable = (
            should_retry if should_retry is not None else status_code == 429 or status_code >= 500
        )

    @property
    def deployment_side(self) -> bool:
        """A 429 or 5xx: the deployment is overloaded or failing, not the request wrong."""
        return self.status_code == 429 or self.status_code >= 500


class ProviderTimeoutError(ProviderError):
    """The endpoint did not answer in time."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """The endpoint could not be reached, or the connection dropped."""

    retryable = True


class ProviderStreamError(ProviderError):
    """A streamed answer ended before its end marker, or the stream carried an error event.

    Retryable: what arrived is a partial answer, which never becomes a result; asking
    again is the only way to the whole one.
    """

    retryable = True


class ProviderResponseError(ProviderError):
    """The endpoint answered, but not with a valid chat-completions body."""


class ProviderReportedError(ProviderError):
    """The endpoint answered 2xx, but with its error in the body instead of an answer.

    Gateways (LiteLLM, OpenRouter) do this when the backend fails after the status line
    went out, and the Responses API does it for a `failed` response. Retryable when the
    error's type or code names an overload, a rate limit or a server failure.

    Attributes:
        provider_message: The endpoint's own message, redacted of the API key.
        error_type: Its `type` (e.g. `server_error`), if given.
        code: Its `code` (a string, or a number such as 502), if given.
    """

    _RETRYABLE_KINDS = frozenset(
        {
            "server_error",
            "api_error",
            "overloaded_error",
            "rate_limit_error",
            "rate_limit_exceeded",
            "timeout",
        }
    )

    def __init__(
        self,
        message: str,
        *,
        provider_message: str,
        error_type: str | None = None,
        code: str | int | None = None,
    ):
        super().__init__(message)
        self.provider_message = provider_message
        self.error_type = error_type
        self.code = code
        status = code if isinstance(code, int) else int(code) if code and code.isdigit() else None
        self.retryable = (status is not None and (status == 429 or status >= 500)) or bool(
            {error_type, code} & self._RETRYABLE_KINDS
        )


class DeploymentUnavailable(ProviderError):
    """The deployment is down for this call: the workflow fails over at once.

    A long `Retry-After`, the endpoint said not to retry, or its gateway retried already.
    """


class RoutingError(OrchestratorError):
    """No deployment satisfies a request's hard constraints, or a policy or rule is broken."""


class BudgetExceededError(RoutingError):
    """A budget cannot cover a new session; the message names the budget and the figures."""


class UnknownModelError(RoutingError):
    """A model switch names a model the session does not know."""


class ApprovalError(OrchestratorError):
    """An approval decision was refused: unknown request, mismatched binding, or decided."""


class UnknownApproval(ApprovalError):
    """No pending approval has that id."""


class ApprovalBindingMismatch(ApprovalError):
    """The decision's binding hash is not the pending call's."""


class ApprovalAlreadyDecided(ApprovalError):
    """The approval was decided before, differently."""


class ApprovalReasonRequired(ApprovalError):
    """A rejection without a reason."""


class ApprovalEditNotAllowed(ApprovalError):
    """Changed arguments where the skill's policy does not allow editing."""


class ApprovalBySelf(ApprovalError):
    """The person who asked for the call may not approve it."""


class ApprovalNotInGroup(ApprovalError):
    """The person is not in the group that decides the approval now."""


class ApprovalDelegated(ApprovalError):
    """The approval was delegated to someone else."""


class ApprovalDelegationUnsupported(ApprovalError):
    """The approval has no deciding group to delegate within."""


class ApprovalDelegationRefused(ApprovalError):
    """The delegation is not from, or not to, a member who may decide."""


class StoreError(OrchestratorError):
    """The session and audit store failed."""


class EventKeyConflict(StoreError):
    """An audit event's key was written before with different content.

    A key names one point of one session, so a retried write carries the same content and
    is a no-op; different content under the key means two events were given one name,
    and keeping either silently would lose the other.
    """

    def __init__(self, event_key: str, fields: list[str]) -> None:
        super().__init__(
            f"audit event key {event_key!r} was already written with different content"
            f" ({', '.join(fields)} differ); the code that builds this key must make it"
            " unique per event"
        )
        self.event_key = event_key
        self.fields = fields


class SessionEnded(StoreError):
    """A write would change the status of a session that has ended.

    An ended session (completed or failed) has one end: a second, different one, or a
    write that would set it running again, is refused and nothing of it is written; the
    same end again (a retry of its write) is not refused.
    """

    def __init__(self, session_id: str, status: SessionStatus, wanted: SessionStatus) -> None:
        super().__init__(
            f"session {session_id!r} has ended {status.value}; it cannot become {wanted.value}"
        )
        self.session_id = session_id
        self.status = status
        self.wanted = wanted


class DevServerError(OrchestratorError):
    """The embedded Temporal dev server could not be started or reached."""


_WIRE: dict[type[OrchestratorError], str] = {
    PermanentError: "NonRetryable",
    SessionFailed: "SessionFailed",
    SessionInputError: "AgentSessionInputInvalid",
    PayloadTooLargeError: "PayloadTooLarge",
    SkillOutputError: "SkillOutputInvalid",
    SkillMayHaveRun: "SkillMayHaveRun",
    ToolDefinitionChanged: "McpToolDefinitionChanged",
    CallLostError: "McpCallLost",
    ProviderHTTPError: "ProviderHTTPError",
    ProviderTimeoutError: "ProviderTimeoutError",
    ProviderConnectionError: "ProviderConnectionError",
    ProviderStreamError: "ProviderStreamError",
    ProviderResponseError: "ProviderResponseError",
    ProviderReportedError: "ProviderReportedError",
    DeploymentUnavailable: "DeploymentUnavailable",
    RoutingError: "RoutingFailed",
    BudgetExceededError: "BudgetExceeded",
    UnknownModelError: "UnknownModel",
    UnknownApproval: "UnknownApproval",
    ApprovalBindingMismatch: "ApprovalBindingMismatch",
    ApprovalAlreadyDecided: "ApprovalAlreadyDecided",
    ApprovalReasonRequired: "ApprovalReasonRequired",
    ApprovalEditNotAllowed: "ApprovalEditNotAllowed",
    ApprovalBySelf: "ApprovalBySelf",
    ApprovalNotInGroup: "ApprovalNotInGroup",
    ApprovalDelegated: "ApprovalDelegated",
    ApprovalDelegationUnsupported: "ApprovalDelegationUnsupported",
    ApprovalDelegationRefused: "ApprovalDelegationRefused",
}

FAILURE_TYPES: Mapping[str, type[OrchestratorError]] = {t: cls for cls, t in _WIRE.items()}
"""Each failure type string → its error class; the strings are in recorded histories and in
retry policies (`NonRetryable`), so a value here never changes."""


def failure_type(error: type[OrchestratorError]) -> str:
    """The failure type `error` crosses the boundary as (its nearest mapped class's).

    Raises:
        TypeError: neither the class nor a base of it has a failure type.
    """
    for cls in error.__mro__:
        wire = _WIRE.get(cls)
        if wire is not None:
            return wire
    raise TypeError(f"{error.__name__} has no failure type; add it to exceptions._WIRE")


def to_failure(
    error: OrchestratorError,
    *details: Any,
    message: str | None = None,
    next_retry_delay: timedelta | None = None,
) -> ApplicationError:
    """The `ApplicationError` that carries `error` across the durable boundary.

    Non-retryable unless `error.retryable`; `message` replaces the error's own text.
    """
    return ApplicationError(
        str(error) if message is None else message,
        *details,
        type=failure_type(type(error)),
        non_retryable=not error.retryable,
        next_retry_delay=next_retry_delay,
    )


def from_failure(exc: BaseException) -> OrchestratorError | None:
    """The typed error a failure carries, or None if it carries none of ours.

    Looks through the wrappers Temporal adds (`ActivityError`, `ChildWorkflowError`,
    `WorkflowFailureError`, `WorkflowUpdateFailedError`) to the first `ApplicationError`.
    The result has the failure's message, `details` and `retryable`; attributes a class
    sets in its constructor (an HTTP status, say) stay on the raising side.
    """
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, ApplicationError):
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) else None
    if seen is None or seen.type is None:
        return None
    cls = FAILURE_TYPES.get(seen.type)
    if cls is None:
        return None
    error = cls.__new__(cls)
    Exception.__init__(error, seen.message)
    error.details = tuple(seen.details)
    error.retryable = not seen.non_retryable
    return error
