"""The `@skill` decorator: a typed async function becomes a callable, described skill."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast, get_type_hints

from pydantic import BaseModel, ValidationError

from orchestrator.exceptions import SkillArgumentsError, SkillDefinitionError
from orchestrator.skills.models import RiskLevel, SkillContext, SkillSpec
from orchestrator.types import JsonObject

__all__ = ["Skill", "skill"]

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class Skill(Generic[InT, OutT]):
    """A skill: its spec plus the function that does the work."""

    spec: SkillSpec
    input_model: type[InT]
    output_model: type[OutT]
    fn: Callable[[InT, SkillContext], Awaitable[OutT]]
    module: str

    def validate_arguments(self, arguments: JsonObject) -> InT:
        """Parse arguments against the input model; unknown fields are refused.

        Raises:
            SkillArgumentsError: one line per field at fault, in words a model can act on.
        """
        try:
            return self.input_model.model_validate(arguments, strict=False)
        except ValidationError as exc:
            faults = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<arguments>'}: {err['msg']}"
                for err in exc.errors()
            )
            raise SkillArgumentsError(f"invalid arguments for {self.spec.name}: {faults}") from exc

    async def run(self, arguments: JsonObject, ctx: SkillContext) -> OutT:
        """Validate, call, and check the output type."""
        parsed = self.validate_arguments(arguments)
        result = await self.fn(parsed, ctx)
        if not isinstance(result, self.output_model):
            raise SkillArgumentsError(
                f"{self.spec.name} returned {type(result).__name__},"
                f" expected {self.output_model.__name__}"
            )
        return result


def skill(
    *,
    name: str,
    version: str,
    risk: RiskLevel,
    description: str | None = None,
    requires_approval: bool | None = None,
) -> Callable[[Callable[[InT, SkillContext], Awaitable[OutT]]], Skill[InT, OutT]]:
    """Declare an async function `(args: InputModel, ctx: SkillContext) -> OutputModel` a skill.

    The input model should forbid extra fields (`model_config = ConfigDict(extra="forbid")`)
    so a model's made-up argument is refused rather than silently dropped.

    Args:
        name: Dotted lowercase name, e.g. `payments.refund`.
        version: Semantic version `MAJOR.MINOR.PATCH`.
        risk: What a call can do; irreversible writes and external effects are gated.
        description: What the model is told; defaults to the function's docstring.
        requires_approval: Overrides the risk level's default gate.

    Raises:
        SkillDefinitionError: the name, version or signature is wrong.
    """

    def wrap(fn: Callable[[InT, SkillContext], Awaitable[OutT]]) -> Skill[InT, OutT]:
        where = f"{fn.__module__}.{fn.__qualname__}"
        if not _NAME.match(name):
            raise SkillDefinitionError(f"{where}: skill name {name!r} must be dotted lowercase")
        if not _SEMVER.match(version):
            raise SkillDefinitionError(f"{where}: version {version!r} must be MAJOR.MINOR.PATCH")
        if not inspect.iscoroutinefunction(fn):
            raise SkillDefinitionError(f"{where}: a skill must be an async function")
        hints = get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        in_model = hints.get(params[0]) if params else None
        out_model = hints.get("return")
        if not (isinstance(in_model, type) and issubclass(in_model, BaseModel)):
            raise SkillDefinitionError(f"{where}: first parameter must be a pydantic model")
        if not (isinstance(out_model, type) and issubclass(out_model, BaseModel)):
            raise SkillDefinitionError(f"{where}: return annotation must be a pydantic model")
        text = description or inspect.getdoc(fn)
        if not text:
            raise SkillDefinitionError(f"{where}: a skill needs a description or a docstring")
        spec = SkillSpec(
            name=name,
            version=version,
            description=text,
            risk=risk,
            requires_approval=(
                risk.needs_approval_by_default if requires_approval is None else requires_approval
            ),
            input_schema=in_model.model_json_schema(),
            output_schema=out_model.model_json_schema(),
        )
        return Skill(
            spec, cast(type[InT], in_model), cast(type[OutT], out_model), fn, fn.__module__
        )

    return wrap
