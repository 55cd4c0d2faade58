"""The skill contract: what an engineer writes in `skills/**/*.contract.yaml`.

One file declares one version of one skill and binds it to its implementation:

```yaml
name: payments.refund
version: 1.1.0
description: Refund money to the customer of an order.
implementation: python:payments:refund      # skills/payments.py, function refund
risk: irreversible_write
approval: always                            # none | always | {when: "amount > 500"}
# or, saying how an approver reads the call (orchestrator.skills.presentation):
# approval:
#   policy: always                            # or when: "amount > 500"
#   title: "Refund {{ amount | money(currency) }} to the customer of order {{ order_id }}"
#   fields: {amount: {label: Amount, format: money, currency: currency}}
idempotency: {idempotent: true, key: [workflow_id, step_id, call_id, skill]}
data: {reads: [orders], writes: [payments]}
timeout: 30s
retry: {max_attempts: 3, initial_interval: 500ms, max_interval: 10s}
owner: payments-team
deprecated: use payments.refund 2.x       # absent while the version is current
```

The input and output schemas are the pydantic models the implementation is annotated
with, so the schema the model sees and the code that runs cannot drift apart.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
)

from orchestrator.skills.models import DEFAULT_KEY_PARTS, RiskLevel
from orchestrator.skills.presentation import ApprovalView, FieldView
from orchestrator.skills.semver import parse_version
from orchestrator.types import JsonObject

__all__ = [
    "KEY_PARTS",
    "Approval",
    "ApprovalRule",
    "ApprovalWhen",
    "Contract",
    "DataClasses",
    "Duration",
    "Idempotency",
    "McpPin",
    "Retry",
]

KEY_PARTS = ("workflow_id", "run_id", "step_id", "call_id", "skill", "version")
"""Run coordinates an idempotency key may be formed from, beside `args.<input field>`."""

_NAME = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
_IMPLEMENTATION = r"^(python:[A-Za-z_][\w.]*:[A-Za-z_]\w*|mcp:[\w.-]+/[\w.-]+)$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_SECONDS = 10 * 365 * 24 * 3600.0


def _duration(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. 500ms, 30s, 5m or 1h")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        return value
    # timedelta overflows past ~2.7 million years, and Temporal refuses a zero or negative
    # timeout only when the workflow schedules the call: both are the file's fault.
    if not 0 < seconds <= _MAX_SECONDS:
        raise ValueError(f"{value!r} must be more than 0 and at most 10 years")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(_duration)]
"""`500ms`, `30s`, `5m`, `1h`, or a number of seconds."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApprovalWhen(_Strict):
    """Approval only for calls whose arguments make this CEL expression true."""

    when: str = Field(min_length=1)


class ApprovalRule(_Strict):
    """The long form of `approval:`: the policy, and how a person reads the call."""

    policy: Literal["none", "always"] | None = None
    """Empty: `when` if given, else the risk's default."""
    when: str | None = Field(default=None, min_length=1)
    title: str | None = Field(default=None, min_length=1)
    """A template over the arguments: `Refund {{ amount | money(currency) }}`."""
    summary: str | None = Field(default=None, min_length=1)
    """One sentence, a template like `title`."""
    fields: dict[str, FieldView] = Field(default_factory=dict)
    """Labels and formats of input fields, by name."""

    @property
    def view(self) -> ApprovalView:
        """The presentation part, for `orchestrator.skills.presentation`."""
        return ApprovalView(title=self.title, summary=self.summary, fields=self.fields)


_RULE_KEYS = set(ApprovalRule.model_fields)


def _faults(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


def _approval(value: object) -> object:
    if value is None or value in ("none", "always") or isinstance(value, ApprovalWhen):
        return value
    if isinstance(value, ApprovalRule):
        return value
    if isinstance(value, dict) and set(value) == {"when"}:
        when = value["when"]
        if isinstance(when, str) and when.strip():
            return ApprovalWhen(when=when)
    if isinstance(value, dict) and value and set(value) <= _RULE_KEYS:
        try:
            rule = ApprovalRule.model_validate(value)
        except ValidationError as exc:
            raise ValueError(_faults(exc)) from None
        if rule.policy is not None and rule.when is not None:
            raise ValueError("give policy or when, not both")
        return rule
    raise ValueError(
        'must be none, always, or a mapping: {when: "<CEL expression over the arguments>"}'
        f" or one of {', '.join(sorted(_RULE_KEYS))}"
    )


Approval = Annotated[
    Literal["none", "always"] | ApprovalWhen | ApprovalRule | None, PlainValidator(_approval)
]
"""`none`, `always`, `{when: "amount > 500"}`, or an `ApprovalRule` mapping."""


class Idempotency(_Strict):
    """Whether repeating a call is harmless, and what the call's idempotency key is made of."""

    idempotent: bool = False
    key: list[str] = Field(default_factory=lambda: list(DEFAULT_KEY_PARTS), min_length=1)
    """Parts hashed into the key: `workflow_id`, `run_id`, `step_id`, `call_id`, `skill`,
    `version`, or `args.<input field>`. The default gives one effect per call."""

    @field_validator("key")
    @classmethod
    def _known_parts(cls, parts: list[str]) -> list[str]:
        for part in parts:
            if part not in KEY_PARTS and not re.match(r"^args\.[A-Za-z_]\w*$", part):
                raise ValueError(
                    f"key part {part!r} must be one of {', '.join(KEY_PARTS)} or args.<field>"
                )
        return parts


class DataClasses(_Strict):
    """The classes of data a skill reads and writes, for routing and audit."""

    reads: list[str] = Field(default_factory=list)
    writes: list[str] = Field(default_factory=list)


class Retry(_Strict):
    """How a failed attempt is retried; the workflow turns it into the activity's policy."""

    max_attempts: int | None = Field(default=None, ge=1, le=100)
    initial_interval: Duration | None = None
    max_interval: Duration | None = None


class McpPin(_Strict):
    """What `orchestrator connectors sync` pinned of an MCP tool (`implementation: mcp:...`).

    A call is refused while the server offers a definition (name, description, input
    schema) whose hash is not `definition_sha256`: a changed tool is not run unreviewed.
    """

    tool: str = Field(min_length=1)
    definition_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input_schema: JsonObject
    output_schema: JsonObject


class Contract(_Strict):
    """One version of one skill, as declared in its contract file or decorator."""

    name: str = Field(pattern=_NAME)
    version: str
    description: str | None = Field(default=None, min_length=1)
    """What the model is told; defaults to the implementation's docstring."""
    implementation: str = Field(pattern=_IMPLEMENTATION)
    """`python:<module>:<function>` (module relative to `skills/`, or importable), or
    `mcp:<connector>/<tool>` once MCP connectors exist."""
    risk: RiskLevel
    approval: Approval = None
    """Empty: `always` for irreversible writes and external side effects, else `none`."""
    idempotency: Idempotency = Field(default_factory=Idempotency)
    data: DataClasses = Field(default_factory=DataClasses)
    timeout: Duration | None = None
    retry: Retry | None = None
    owner: str | None = None
    deprecated: str | None = Field(default=None, min_length=1)
    """Why this version is deprecated and what to use instead."""
    mcp: McpPin | None = None
    """The pinned MCP tool definition; required with an `mcp:` implementation."""

    @field_validator("version", mode="before")
    @classmethod
    def _unquoted(cls, version: object) -> object:
        # YAML reads `version: 1.0` as a number; say what is wrong with it, not its type.
        return str(version) if isinstance(version, int | float) else version

    @field_validator("version")
    @classmethod
    def _semver(cls, version: str) -> str:
        parse_version(version)
        return version

    @property
    def requires_approval(self) -> bool:
        """Whether every call waits for a person (the `always` policy)."""
        policy = self.approval
        if isinstance(policy, ApprovalRule):
            policy = policy.policy or (ApprovalWhen(when=policy.when) if policy.when else None)
        if policy is None:
            return self.risk.needs_approval_by_default
        return policy == "always"

    @property
    def approval_condition(self) -> str | None:
        """The CEL expression of a conditional policy."""
        if isinstance(self.approval, ApprovalRule):
            return self.approval.when
        return self.approval.when if isinstance(self.approval, ApprovalWhen) else None

    @property
    def approval_view(self) -> ApprovalView | None:
        """How a person reads a call (title, summary, fields); None when not said."""
        return self.approval.view if isinstance(self.approval, ApprovalRule) else None
