"""Every error a user of the runtime can meet, in one tree.

```
OrchestratorError
├── ConfigError                 settings, models file, project layout
├── PlanError                   a plan file is malformed (names file, line, field)
├── SkillError
│   ├── SkillDefinitionError    a skill or contract is declared wrongly (names file and field)
│   ├── UnknownSkillError       a plan or model names a skill that is not registered
│   ├── SkillArgumentsError     arguments do not fit the skill's input model
│   ├── SkillOutputError        an implementation returned output that breaks its contract
│   └── SkillToolError          the tool answered the call with an error of its own
├── ProviderError               a model endpoint failed
│   ├── ProviderHTTPError       4xx/5xx answer (status, retryable)
│   ├── ProviderTimeoutError    no answer in time
│   ├── ProviderConnectionError connection refused or reset
│   ├── ProviderStreamError     a streamed answer cut short (no end marker, an error event)
│   ├── ProviderResponseError   the answer is not valid chat-completions JSON
│   └── ProviderReportedError   a 2xx answer holding the endpoint's error (message, type, code)
├── RoutingError                no deployment fits a request, or a policy/rule is broken
│   └── BudgetExceededError     a tenant's or team's budget cannot cover a new session
├── ApprovalError               an approval decision was refused (unknown, mismatched, decided)
├── StoreError                  the audit/session store failed
│   └── EventKeyConflict        an audit event key was written before with other content
└── DevServerError              the embedded Temporal dev server did not start
```

Messages never carry secrets: providers redact API keys before raising.
"""

from __future__ import annotations

__all__ = [
    "ApprovalError",
    "BudgetExceededError",
    "ConfigError",
    "DevServerError",
    "EventKeyConflict",
    "OrchestratorError",
    "PlanError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderReportedError",
    "ProviderResponseError",
    "ProviderStreamError",
    "ProviderTimeoutError",
    "RoutingError",
    "SkillArgumentsError",
    "SkillDefinitionError",
    "SkillError",
    "SkillOutputError",
    "SkillToolError",
    "StoreError",
    "UnknownSkillError",
]


class OrchestratorError(Exception):
    """Base class of every error the runtime raises on purpose."""


class ConfigError(OrchestratorError):
    """Settings, the models file or the project layout are wrong."""


class PlanError(OrchestratorError):
    """A plan file is malformed; the message names the file, line and field."""


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


class ProviderError(OrchestratorError):
    """A model endpoint failed.

    Attributes:
        retryable: Whether the same request may succeed if sent again.
    """

    retryable: bool = False


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


class RoutingError(OrchestratorError):
    """No deployment satisfies a request's hard constraints, or a policy or rule is broken."""


class BudgetExceededError(RoutingError):
    """A budget cannot cover a new session; the message names the budget and the figures."""


class ApprovalError(OrchestratorError):
    """An approval decision was refused: unknown request, mismatched binding, or decided."""


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


class DevServerError(OrchestratorError):
    """The embedded Temporal dev server could not be started or reached."""
