"""Step types beyond the built-in ones: a new step type is one module with its plan model.

The built-in types (`agent`, `skill`, ...) are the members of `PlanStep`'s discriminated
union, each run by the session workflow's part for it (`orchestrator.session.step_types`).
A step type added later needs no edit there: its module defines a plan model that
subclasses `RegisteredStep` (with a `type: Literal["<tag>"]` field and a `run` method) and
calls `register_step(Model)`. Plans then accept steps of that type anywhere a step may
stand, and the workflow runs them by calling `run`.

This module is passed through the workflow sandbox (it is part of `orchestrator.plans`),
so the registered models, and the code of their `run`, are the ones the registering module
defined. `run` executes inside workflow code: it must be deterministic, do no I/O of its
own, and reach the outside only through `temporalio.workflow` (activities) or the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SerializationInfo,
    ValidationError,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "REGISTERED_TAG",
    "RegisteredSchema",
    "RegisteredStep",
    "StepError",
    "StepHost",
    "StepShape",
    "declare_built_in",
    "parse_registered",
    "register_step",
    "registered_model",
    "registered_tags",
    "serialize_registered",
]

REGISTERED_TAG = "registered"
"""The union tag under which every registered step type is validated (not a plan word)."""

_STEP_ID = r"^[a-z][a-z0-9_-]{0,62}$"


class StepError(Exception):
    """A registered step cannot go on; the step, and so the session, fails with this."""


class StepHost(Protocol):
    """What a registered step may use of the session running it (a narrow view)."""

    @property
    def inputs(self) -> JsonObject:
        """The session's input."""
        ...

    @property
    def outputs(self) -> Mapping[str, JsonValue]:
        """The outputs of the steps that have run, by step id."""
        ...

    async def run_step(self, step: Any) -> JsonValue:
        """Run another step (one this step holds) as the workflow runs any step."""
        ...


class StepShape:
    """What a plan's checks read of any step; each step type overrides what it has.

    Loading walks a plan through these (its ids, its template and condition references,
    the skills and sub-plans to resolve at session start), so a step type answers for
    itself instead of being named in an `isinstance` chain.
    """

    def blocks(self) -> list[tuple[str, list[Any]]]:
        """The step lists it holds, by field name (`then`, `else`, `steps`)."""
        return []

    def templates(self) -> list[str]:
        """Texts with `{{ ... }}` references to the input and earlier steps' outputs."""
        return []

    def conditions(self) -> list[tuple[str, str]]:
        """Its CEL conditions, by field name."""
        return []

    def skill_refs(self) -> list[str]:
        """The skills it calls (`name` or `name@range`), resolved at session start."""
        return []

    def plan_refs(self) -> list[str]:
        """The plans it runs as sub-plans, resolved at session start."""
        return []


class RegisteredStep(StepShape, BaseModel):
    """The base of a registered step type's plan model (override `StepShape` as it holds)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_STEP_ID)
    description: str | None = None
    type: str

    async def run(self, host: StepHost) -> JsonValue:
        """Run the step in workflow code; its return value is the step's output."""
        raise NotImplementedError(f"step type {self.type!r} does not define run")


_MODELS: dict[str, type[RegisteredStep]] = {}
_BUILT_IN: list[str] = []


def register_step(model: type[RegisteredStep]) -> type[RegisteredStep]:
    """Let plans use `model`'s step type (its `type` field's one literal); usable as a decorator.

    Registering the same class again is a no-op; another class under a taken tag is refused.
    """
    field = model.model_fields["type"]
    args: tuple[object, ...] = getattr(field.annotation, "__args__", ())
    tag = args[0] if len(args) == 1 else None
    if not isinstance(tag, str):
        raise TypeError(f"{model.__name__}.type must be a Literal of one tag")
    if tag in _BUILT_IN or tag == REGISTERED_TAG:
        raise ValueError(f"step type {tag!r} is built in")
    known = _MODELS.get(tag)
    if known is not None and known is not model:
        raise ValueError(f"step type {tag!r} is already registered by {known.__qualname__}")
    _MODELS[tag] = model
    return model


def registered_model(tag: str) -> type[RegisteredStep] | None:
    """The plan model registered for `tag`, if any."""
    return _MODELS.get(tag)


def registered_tags() -> list[str]:
    """Tags of the registered step types, in registration order."""
    return list(_MODELS)


def declare_built_in(tags: tuple[str, ...]) -> None:
    """Reserve the built-in tags (called once by `orchestrator.plans.models`)."""
    _BUILT_IN[:] = tags


def parse_registered(value: Any) -> RegisteredStep:
    """Validate a step whose tag is not built in, by its registered model."""
    if isinstance(value, RegisteredStep):
        return value
    tag = value.get("type") if isinstance(value, dict) else None
    model = _MODELS.get(tag) if isinstance(tag, str) else None
    if model is None:
        expected = ", ".join(repr(t) for t in [*_BUILT_IN, *_MODELS])
        raise PydanticCustomError(
            "union_tag_invalid",
            "Input tag {tag} found using 'type' does not match any of the expected tags:"
            " {expected}",
            {"tag": repr(tag), "expected": expected},
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PydanticCustomError(
            "registered_step", "{where}: {msg}", {"where": where, "msg": first["msg"]}
        ) from None


class RegisteredSchema:
    """The JSON Schema of a registered step, built when asked: the types registered by then.

    With none registered it matches no step, so an exported schema still refuses a type
    no one defined.
    """

    def __get_pydantic_json_schema__(
        self, _core_schema: CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """A step whose `type` is one of the registered tags."""
        return {
            "type": "object",
            "description": "A step of a registered step type.",
            "properties": {"type": {"enum": registered_tags()}},
            "required": ["type"],
        }


def serialize_registered(value: RegisteredStep, info: SerializationInfo) -> Any:
    """A registered step as its own model dumps it (not as the union member's base)."""
    return value.model_dump(
        mode=info.mode, by_alias=bool(info.by_alias), exclude_none=info.exclude_none
    )
