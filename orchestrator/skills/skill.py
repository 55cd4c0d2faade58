"""A skill: a contract bound to the async Python function that implements it.

Two ways to declare one, both ending in `bind`: a contract file beside the function
(`skills/**/*.contract.yaml`, see `orchestrator.skills.contract`), or the `@skill`
decorator for skills written in code (tests, quick experiments).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar, cast, get_type_hints

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from orchestrator._fields import field_path
from orchestrator.exceptions import SkillArgumentsError, SkillDefinitionError, SkillOutputError
from orchestrator.skills.approval import check_condition
from orchestrator.skills.contract import ApprovalWhen, Contract, Idempotency, Retry
from orchestrator.skills.models import RiskLevel, SkillContext, SkillSpec
from orchestrator.skills.presentation import ApprovalView, check_view
from orchestrator.types import JsonObject

__all__ = ["Skill", "bind", "skill", "spec_for"]

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)


def _faults(exc: ValidationError) -> str:
    # A model or client may send any key; one that is not a word is quoted so it shows.
    return "; ".join(f"{field_path(err['loc'])}: {err['msg']}" for err in exc.errors())


@dataclass(frozen=True)
class Skill(Generic[InT, OutT]):
    """A skill version: its spec plus the function that does the work."""

    spec: SkillSpec
    input_model: type[InT]
    output_model: type[OutT]
    fn: Callable[[InT, SkillContext], Awaitable[OutT]]
    module: str
    view: ApprovalView | None = None
    """How a person reads a call, from the contract's `approval:` (see `presentation`)."""

    def validate_arguments(self, arguments: JsonObject) -> InT:
        """Parse arguments against the input model; unknown fields are refused.

        Raises:
            SkillArgumentsError: one line per field at fault, in words a model can act on.
        """
        try:
            return self.input_model.model_validate(arguments, strict=False)
        except ValidationError as exc:
            raise SkillArgumentsError(
                f"invalid arguments for {self.spec.name}: {_faults(exc)}"
            ) from exc

    def validate_output(self, result: object) -> JsonObject:
        """Check what the implementation returned against the output model, as JSON.

        Raises:
            SkillOutputError: naming the skill, its version and each field at fault.
        """
        data: object = result
        if isinstance(result, BaseModel):
            try:
                data = result.model_dump(mode="json", warnings=False)
            except PydanticSerializationError as exc:
                raise SkillOutputError(
                    f"{self.spec.ref} returned output that cannot be serialised: {exc}"
                ) from exc
        try:
            checked = self.output_model.model_validate(data)
        except ValidationError as exc:
            raise SkillOutputError(
                f"{self.spec.ref} returned output that breaks its contract: {_faults(exc)}"
            ) from exc
        dumped: JsonObject = checked.model_dump(mode="json")
        return dumped

    async def run(self, arguments: JsonObject, ctx: SkillContext) -> OutT:
        """Validate, call, and check the output against the contract."""
        parsed = self.validate_arguments(arguments)
        result = await self.fn(parsed, ctx)
        self.validate_output(result)
        return result


def _models(fn: Callable[..., Any]) -> tuple[type[BaseModel], type[BaseModel]] | str:
    if not inspect.iscoroutinefunction(fn):
        return "a skill must be an async function"
    hints = get_type_hints(fn)
    params = list(inspect.signature(fn).parameters)
    in_model = hints.get(params[0]) if params else None
    out_model = hints.get("return")
    if not (isinstance(in_model, type) and issubclass(in_model, BaseModel)):
        return "first parameter must be a pydantic model"
    if not (isinstance(out_model, type) and issubclass(out_model, BaseModel)):
        return "return annotation must be a pydantic model"
    return in_model, out_model


def bind(
    contract: Contract,
    fn: Callable[..., Any],
    *,
    source: str,
    strict: bool = True,
    locate: Callable[[str], str] | None = None,
) -> Skill[Any, Any]:
    """Bind a contract to its implementation, checking that they fit together.

    Args:
        contract: The parsed contract.
        fn: `async def f(args: InputModel, ctx: SkillContext) -> OutputModel`.
        source: The contract's file or module, for messages.
        strict: Require input and output models that forbid unknown fields.
        locate: Gives `line L, column C` of a contract field, when it comes from a file.

    Raises:
        SkillDefinitionError: one line per fault, each naming source and field.
    """
    faults: list[tuple[str, str]] = []
    models = _models(fn)
    if isinstance(models, str):
        faults.append(("implementation", f"{contract.implementation}: {models}"))
    else:
        faults.extend(_check(contract, fn, models, strict))
    if faults:
        raise SkillDefinitionError(
            "\n".join(
                f"{source}: {locate(field) + ': ' if locate else ''}{field}: {message}"
                for field, message in faults
            )
        )
    in_model, out_model = cast(tuple[type[BaseModel], type[BaseModel]], models)
    return Skill(
        spec=_spec(contract, fn, in_model, out_model, source),
        input_model=in_model,
        output_model=out_model,
        fn=fn,
        module=source,
        view=contract.approval_view,
    )


def _check(
    contract: Contract,
    fn: Callable[..., Any],
    models: tuple[type[BaseModel], type[BaseModel]],
    strict: bool,
) -> list[tuple[str, str]]:
    faults: list[tuple[str, str]] = []
    in_model, out_model = models
    if strict:
        for role, model in (("input", in_model), ("output", out_model)):
            if model.model_config.get("extra") != "forbid":
                faults.append(
                    (
                        "implementation",
                        f"{role} model {model.__name__} must forbid unknown fields"
                        ' (model_config = ConfigDict(extra="forbid"))',
                    )
                )
    if not (contract.description or inspect.getdoc(fn)):
        faults.append(("description", "a skill needs a description or a docstring"))
    fields = set(in_model.model_fields)
    condition = contract.approval_condition
    if condition is not None:
        try:
            check_condition(condition, fields)
        except ValueError as exc:
            faults.append(("approval.when", str(exc)))
    view = contract.approval_view
    if view is not None:
        faults.extend(check_view(view, fields))
    for index, part in enumerate(contract.idempotency.key):
        if part.startswith("args.") and part[5:] not in fields:
            faults.append(
                (f"idempotency.key.{index}", f"{part!r}: the input has no field {part[5:]!r}")
            )
    return faults


def _spec(
    contract: Contract,
    fn: Callable[..., Any],
    in_model: type[BaseModel],
    out_model: type[BaseModel],
    source: str,
) -> SkillSpec:
    return spec_for(
        contract,
        description=contract.description or inspect.getdoc(fn) or "",
        input_schema=in_model.model_json_schema(),
        output_schema=out_model.model_json_schema(),
        source=source,
    )


def spec_for(
    contract: Contract,
    *,
    description: str,
    input_schema: JsonObject,
    output_schema: JsonObject,
    source: str,
) -> SkillSpec:
    """The spec of a contract whose schemas come from elsewhere (models, or an MCP pin)."""
    retry = contract.retry or Retry()
    return SkillSpec(
        name=contract.name,
        version=contract.version,
        description=description,
        risk=contract.risk,
        requires_approval=contract.requires_approval,
        input_schema=input_schema,
        output_schema=output_schema,
        approval_condition=contract.approval_condition,
        idempotent=contract.idempotency.idempotent,
        idempotency_key=list(contract.idempotency.key),
        timeout=contract.timeout,
        max_attempts=retry.max_attempts,
        initial_retry=retry.initial_interval,
        max_retry=retry.max_interval,
        reads=list(contract.data.reads),
        writes=list(contract.data.writes),
        owner=contract.owner,
        deprecated=contract.deprecated,
        implementation=contract.implementation,
        source=source,
    )


def skill(
    *,
    name: str,
    version: str,
    risk: RiskLevel,
    description: str | None = None,
    requires_approval: bool | None = None,
    approval_when: str | None = None,
    idempotent: bool = False,
    timeout: timedelta | None = None,
    max_attempts: int | None = None,
    owner: str | None = None,
    deprecated: str | None = None,
) -> Callable[[Callable[[InT, SkillContext], Awaitable[OutT]]], Skill[InT, OutT]]:
    """Declare an async function `(args: InputModel, ctx: SkillContext) -> OutputModel` a skill.

    The in-code form of a contract file, for tests and quick experiments; project skills
    are better declared in `*.contract.yaml` files, which the registry can list and check
    without running code. The input model should forbid extra fields so a model's
    made-up argument is refused rather than silently dropped.

    Args:
        name: Dotted lowercase name, e.g. `payments.refund`.
        version: Semantic version `MAJOR.MINOR.PATCH`.
        risk: What a call can do; irreversible writes and external effects are gated.
        description: What the model is told; defaults to the function's docstring.
        requires_approval: Overrides the risk level's default gate (`always` or `none`).
        approval_when: A CEL condition over the arguments; a call that meets it is gated.
        idempotent: Whether repeating a call is harmless.
        timeout: Longest one attempt may run.
        max_attempts: Attempts before the call fails.
        owner: Who answers for the skill.
        deprecated: Why this version is deprecated, if it is.

    Raises:
        SkillDefinitionError: the name, version or signature is wrong.
    """
    approval: Literal["none", "always"] | ApprovalWhen | None = None
    if approval_when is not None:
        approval = ApprovalWhen(when=approval_when)
    elif requires_approval is not None:
        approval = "always" if requires_approval else "none"

    def wrap(fn: Callable[[InT, SkillContext], Awaitable[OutT]]) -> Skill[InT, OutT]:
        where = f"{fn.__module__}.{fn.__qualname__}"
        try:
            contract = Contract(
                name=name,
                version=version,
                description=description,
                implementation=f"python:{fn.__module__}:{fn.__name__}",
                risk=risk,
                approval=approval,
                timeout=timeout,
                retry=Retry(max_attempts=max_attempts) if max_attempts else None,
                idempotency=Idempotency(idempotent=idempotent),
                owner=owner,
                deprecated=deprecated,
            )
        except ValidationError as exc:
            raise SkillDefinitionError(f"{where}: {_contract_faults(exc)}") from None
        return cast(Skill[InT, OutT], bind(contract, fn, source=where, strict=False))

    return wrap


def _contract_faults(exc: ValidationError) -> str:
    messages = {
        "name": "skill name {value!r} must be dotted lowercase",
        "version": "version {value!r} must be MAJOR.MINOR.PATCH",
    }
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        template = messages.get(field)
        lines.append(
            template.format(value=err.get("input")) if template else f"{field}: {err['msg']}"
        )
    return "; ".join(lines)
