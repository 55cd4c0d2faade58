"""The compatibility checker on crafted pairs of versions: every breaking kind is caught,
compatible changes pass, and the bump decides whether a breaking change fails."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, create_model

from orchestrator.skills import RiskLevel, SkillContext, SkillSpec, skill
from orchestrator.skills.compat import Bump, bump_of, check_versions, compare
from orchestrator.skills.semver import parse_version


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Nested(_M):
    street: str


class Nested2(_M):
    street: int


IN: dict[str, Any] = {
    "order_id": (str, ...),
    "amount": (float, Field(le=1000)),
    "currency": (Literal["EUR", "USD"], ...),
    "note": (str | None, None),
    "address": (Nested | None, None),
    "tags": (list[str], Field(default_factory=list)),
}
OUT: dict[str, Any] = {
    "refund_id": (str, ...),
    "status": (Literal["issued", "pending"], ...),
    "amount": (float, ...),
    "memo": (str | None, None),
}


def model(base: dict[str, Any], drop: str = "", **changes: Any) -> type[BaseModel]:
    """A strict model from `base`'s fields, one dropped or some changed."""
    fields = {k: v for k, v in base.items() if k != drop} | changes
    made: type[BaseModel] = create_model("M", __config__=ConfigDict(extra="forbid"), **fields)
    return made


In1, Out1 = model(IN), model(OUT)


def spec(
    in_model: type[BaseModel] = In1,
    out_model: type[BaseModel] = Out1,
    *,
    version: str = "1.0.0",
    risk: RiskLevel = RiskLevel.REVERSIBLE_WRITE,
    **contract: Any,
) -> SkillSpec:
    async def impl(args: BaseModel, ctx: SkillContext) -> BaseModel:
        """Refund."""
        return args

    impl.__annotations__ = {"args": in_model, "ctx": SkillContext, "return": out_model}
    return skill(name="payments.refund", version=version, risk=risk, **contract)(impl).spec


def kinds(old: SkillSpec, new: SkillSpec) -> list[tuple[str, str, bool]]:
    return [(c.kind, c.where, c.breaking) for c in compare(old, new)]


@pytest.mark.parametrize(
    ("old", "new", "kind", "where"),
    [
        (spec(), spec(model(IN, drop="note")), "removed field", "input.note"),
        (spec(), spec(model(IN, order_id=(int, ...))), "retyped", "input.order_id"),
        (spec(), spec(model(IN, reason=(str, ...))), "new required input", "input.reason"),
        (spec(), spec(model(IN, note=(str, ...))), "became required", "input.note"),
        (
            spec(),
            spec(model(IN, currency=(Literal["EUR"], ...))),
            "narrower input",
            "input.currency",
        ),
        (spec(), spec(model(IN, amount=(float, Field(le=500)))), "narrower input", "input.amount"),
        (
            spec(),
            spec(model(IN, address=(Nested2 | None, None))),
            "retyped",
            "input.address.street",
        ),
        (
            spec(),
            spec(model(IN, tags=(list[int], Field(default_factory=list)))),
            "retyped",
            "input.tags[]",
        ),
        (spec(), spec(out_model=model(OUT, drop="amount")), "removed field", "output.amount"),
        (spec(), spec(out_model=model(OUT, amount=(str, ...))), "retyped", "output.amount"),
        (
            spec(),
            spec(out_model=model(OUT, status=(Literal["issued", "pending", "failed"], ...))),
            "wider output",
            "output.status",
        ),
        (
            spec(),
            spec(out_model=model(OUT, amount=(float | None, None))),
            "retyped",
            "output.amount",
        ),
        (spec(), spec(risk=RiskLevel.IRREVERSIBLE_WRITE), "higher risk", "risk"),
        (spec(), spec(approval_when="amount > 500"), "stricter approval", "approval"),
        (
            spec(approval_when="amount > 500"),
            spec(requires_approval=True),
            "stricter approval",
            "approval",
        ),
        (spec(idempotent=True), spec(idempotent=False), "no longer idempotent", "idempotency"),
    ],
)
def test_every_breaking_kind_is_caught(
    old: SkillSpec, new: SkillSpec, kind: str, where: str
) -> None:
    found = kinds(old, new)
    assert (kind, where, True) in found, found
    minor = new.model_copy(update={"version": "1.1.0"})
    [check] = check_versions([old, minor])
    assert check.bump is Bump.MINOR and not check.ok
    [major] = check_versions([old, new.model_copy(update={"version": "2.0.0"})])
    assert major.ok, "a major bump may break"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (spec(), spec()),
        (spec(), spec(model(IN, channel=(str | None, None)))),
        (
            spec(),
            spec(
                model(
                    IN,
                    order_id=(str | int, ...),
                    amount=(float, Field(le=5000)),
                    currency=(Literal["EUR", "USD", "GBP"], ...),
                )
            ),
        ),
        (spec(), spec(out_model=model(OUT, created_at=(str, ...)))),
        (spec(), spec(out_model=model(OUT, status=(Literal["issued"], ...)))),
        (spec(risk=RiskLevel.IRREVERSIBLE_WRITE), spec()),
        (spec(requires_approval=True), spec(approval_when="amount > 500")),
        (spec(), spec(idempotent=True)),
    ],
)
def test_compatible_changes_pass_under_a_minor_bump(old: SkillSpec, new: SkillSpec) -> None:
    [check] = check_versions([old, new.model_copy(update={"version": "1.1.0"})])
    assert check.ok and not check.breaking, check.changes


def test_a_new_output_field_is_reported_but_not_breaking() -> None:
    assert kinds(spec(), spec(out_model=model(OUT, created_at=(str, ...)))) == [
        ("new field", "output.created_at", False)
    ]


@pytest.mark.parametrize(
    ("old", "new", "bump"),
    [
        ("1.0.0", "2.0.0", Bump.MAJOR),
        ("1.0.0", "1.1.0", Bump.MINOR),
        ("1.1.0", "1.1.1", Bump.PATCH),
        ("0.1.0", "0.2.0", Bump.MAJOR),
        ("0.1.0", "0.1.1", Bump.PATCH),
    ],
)
def test_bumps(old: str, new: str, bump: Bump) -> None:
    assert bump_of(parse_version(old), parse_version(new)) is bump


def test_versions_are_compared_in_version_order() -> None:
    checks = check_versions(
        [
            spec(version="1.10.0"),
            spec(version="1.2.0"),
            spec(model(IN, drop="note"), version="2.0.0"),
        ]
    )
    assert [(c.old, c.new) for c in checks] == [("1.2.0", "1.10.0"), ("1.10.0", "2.0.0")]
    assert all(c.ok for c in checks)
