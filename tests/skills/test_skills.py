from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO
from pydantic import BaseModel, ConfigDict

from orchestrator.exceptions import SkillArgumentsError, SkillDefinitionError, UnknownSkillError
from orchestrator.skills import RiskLevel, SkillContext, SkillRegistry, skill


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int


class Out(BaseModel):
    y: int


def test_project_skills_load_with_risk_and_schema() -> None:
    registry = SkillRegistry.load_directory(REPO / "skills")
    assert registry.names() == [
        "deploys.rollback",
        "incidents.alerts",
        "incidents.deploys",
        "incidents.logs",
        "orders.get",
        "payments.refund",
        "sources.read",
        "tickets.get",
    ]
    refund = registry.get("payments.refund").spec
    assert refund.risk is RiskLevel.IRREVERSIBLE_WRITE and refund.requires_approval
    assert refund.tool_name == "payments_refund"
    assert refund.input_schema["required"] == ["order_id", "amount", "currency", "reason"]
    assert not registry.get("tickets.get").spec.requires_approval
    with pytest.raises(
        UnknownSkillError, match=r"unknown skill 'nope' \(registered: deploys.rollback"
    ):
        registry.get("nope")


def test_arguments_are_validated_strictly() -> None:
    @skill(name="calc.double", version="1.0.0", risk=RiskLevel.READ_ONLY)
    async def double(args: In, ctx: SkillContext) -> Out:
        """Double x."""
        return Out(y=args.x * 2)

    assert double.validate_arguments({"x": "4"}).x == 4
    with pytest.raises(SkillArgumentsError) as info:
        double.validate_arguments({"x": "four", "z": 1})
    message = str(info.value)
    assert "invalid arguments for calc.double" in message
    assert "x: Input should be a valid integer" in message
    assert "z: Extra inputs are not permitted" in message


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "Bad Name", "version": "1.0.0"}, "must be dotted lowercase"),
        ({"name": "a.b", "version": "1.0"}, "must be MAJOR.MINOR.PATCH"),
    ],
)
def test_bad_declarations_are_refused(kwargs: dict[str, str], error: str) -> None:
    with pytest.raises(SkillDefinitionError, match=error):

        @skill(risk=RiskLevel.READ_ONLY, **kwargs)
        async def f(args: In, ctx: SkillContext) -> Out:
            """Doc."""
            return Out(y=1)


def test_sync_functions_and_untyped_returns_are_refused() -> None:
    with pytest.raises(SkillDefinitionError, match="must be an async function"):

        @skill(name="a.b", version="1.0.0", risk=RiskLevel.READ_ONLY)
        def f(args: In, ctx: SkillContext) -> Out:  # type: ignore[arg-type]
            """Doc."""
            return Out(y=1)

    with pytest.raises(SkillDefinitionError, match="return annotation must be a pydantic model"):

        @skill(name="a.b", version="1.0.0", risk=RiskLevel.READ_ONLY)
        async def g(args: In, ctx: SkillContext) -> dict:  # type: ignore[type-arg]
            """Doc."""
            return {}


def test_a_broken_skill_file_names_itself(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import nonexistent_module_xyz\n")
    with pytest.raises(
        SkillDefinitionError, match=r"broken.py: failed to import: ModuleNotFoundError"
    ):
        SkillRegistry.load_directory(tmp_path)


def test_two_skills_with_one_tool_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "dup.py").write_text(
        "from pydantic import BaseModel\n"
        "from orchestrator.skills import RiskLevel, SkillContext, skill\n"
        "class M(BaseModel):\n    a: int = 0\n"
        "@skill(name='a.b_c', version='1.0.0', risk=RiskLevel.READ_ONLY)\n"
        "async def one(args: M, ctx: SkillContext) -> M:\n    '''One.'''\n    return args\n"
        "@skill(name='a_b.c', version='1.0.0', risk=RiskLevel.READ_ONLY)\n"
        "async def two(args: M, ctx: SkillContext) -> M:\n    '''Two.'''\n    return args\n"
    )
    with pytest.raises(SkillDefinitionError, match="would be offered to models as 'a_b_c'"):
        SkillRegistry.load_directory(tmp_path)
