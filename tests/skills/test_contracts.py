"""Contract files: loading, version ranges, and one clear error per fault."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from pydantic import BaseModel, ConfigDict

from orchestrator.exceptions import SkillDefinitionError, UnknownSkillError
from orchestrator.skills import RiskLevel, SkillContext, SkillRegistry, skill
from orchestrator.skills.catalog import catalog
from orchestrator.skills.semver import VersionRange, parse_ref, parse_version

LEDGER = Path(__file__).resolve().parent / "project" / "ledger.py"


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: float


def version(v: str, *, deprecated: str | None = None, name: str = "x.y") -> object:
    async def impl(args: In, ctx: SkillContext) -> In:
        """Echo."""
        return args

    return skill(name=name, version=v, risk=RiskLevel.READ_ONLY, deprecated=deprecated)(impl)


def test_the_demo_project_loads_its_contracts() -> None:
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
    assert [s.spec.version for s in registry.versions("tickets.get")] == ["1.0.0", "1.1.0"]
    assert registry.resolve("tickets.get").spec.version == "1.1.0"
    refund = registry.get("payments.refund", "1.0.0").spec
    assert refund.risk is RiskLevel.IRREVERSIBLE_WRITE and refund.requires_approval
    assert refund.tool_name == "payments_refund"
    assert refund.input_schema["required"] == ["order_id", "amount", "currency", "reason"]
    assert refund.input_schema["additionalProperties"] is False
    assert refund.idempotent and refund.owner == "payments-team"
    assert refund.timeout is not None and refund.timeout.total_seconds() == 30
    assert refund.max_attempts == 5 and refund.writes == ["payments"]
    assert refund.implementation == "python:payments:refund"
    assert refund.source == "skills/payments.refund@1.0.0.contract.yaml"  # not the server path
    data = catalog(registry)
    assert [s["name"] for s in data["skills"]] == registry.names()  # type: ignore[index,union-attr]


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        ("^2.1", ["2.1.0", "2.9.3"], ["2.0.9", "3.0.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("~1.2", ["1.2.0", "1.2.7"], ["1.3.0", "1.1.9"]),
        ("~1.2.3", ["1.2.3"], ["1.2.2", "1.3.0"]),
        (">=1.0,<2", ["1.0.0", "1.99.0"], ["0.9.9", "2.0.0"]),
        (">1.0.0 <=1.5", ["1.0.1", "1.5.0"], ["1.0.0", "1.5.1"]),
        ("1.2.3", ["1.2.3"], ["1.2.4"]),
        ("1.2", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("*", ["0.0.1", "9.9.9"], []),
    ],
)
def test_ranges(spec: str, inside: list[str], outside: list[str]) -> None:
    wanted = VersionRange.parse(spec)
    assert all(parse_version(v) in wanted for v in inside)
    assert not any(parse_version(v) in wanted for v in outside)


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ("x.y@", "nothing after '@'"),
        ("X.Y@^1", "must be dotted lowercase"),
        ("x.y@^1.x", "'1.x' is not a version"),
        ("x.y@>=2,<1", "matches no version"),
        ("x.y@1.0.0.0", "must start with"),
    ],
)
def test_malformed_references(ref: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_ref(ref)


def test_resolution_picks_the_highest_current_match() -> None:
    registry = SkillRegistry(
        [
            version("1.0.0"),  # type: ignore[list-item]
            version("1.2.0"),  # type: ignore[list-item]
            version("1.2.5"),  # type: ignore[list-item]
            version("2.0.0"),  # type: ignore[list-item]
            version("2.1.0", deprecated="use 3.x"),  # type: ignore[list-item]
        ]
    )
    picks = {
        ref: registry.resolve(ref).spec.version
        for ref in ["x.y", "x.y@^1.0", "x.y@~1.2", "x.y@>=1.0,<1.2.5", "x.y@2.0.0", "x.y@^2.1"]
    }
    assert picks == {
        "x.y": "2.0.0",  # 2.1.0 is deprecated
        "x.y@^1.0": "1.2.5",
        "x.y@~1.2": "1.2.5",
        "x.y@>=1.0,<1.2.5": "1.2.0",
        "x.y@2.0.0": "2.0.0",
        "x.y@^2.1": "2.1.0",  # deprecated, but the only match of an explicit range
    }
    [spec] = registry.resolve_refs(["x.y@^1.0", "x.y@~1.2", "x.y@<1.2.5"])
    assert spec.version == "1.2.0"
    with pytest.raises(
        UnknownSkillError, match=r"no version of x.y matches 'x.y@\^3' \(versions: 1.0.0"
    ):
        registry.resolve("x.y@^3")
    with pytest.raises(UnknownSkillError, match=r"'x.y@\^1 and x.y@\^2'"):
        registry.resolve_refs(["x.y@^1", "x.y@^2"])
    with pytest.raises(UnknownSkillError, match=r"skill x.y@1.1.0 is not registered"):
        registry.get("x.y", "1.1.0")
    with pytest.raises(UnknownSkillError, match=r"unknown skill 'nope' \(registered: x.y\)"):
        registry.resolve("nope@^1")


def test_only_deprecated_versions_need_an_explicit_range() -> None:
    registry = SkillRegistry([version("1.0.0", deprecated="gone")])  # type: ignore[list-item]
    with pytest.raises(UnknownSkillError, match=r"every version of x\.y is deprecated"):
        registry.resolve("x.y")
    assert registry.resolve("x.y@^1").spec.version == "1.0.0"


def test_one_version_twice_and_one_tool_name_twice_are_refused() -> None:
    with pytest.raises(SkillDefinitionError, match=r"skill x.y@1.0.0 is already defined in"):
        SkillRegistry([version("1.0.0"), version("1.0.0")])  # type: ignore[list-item]
    with pytest.raises(SkillDefinitionError, match="would be offered to models as 'a_b_c'"):
        SkillRegistry([version("1.0.0", name="a.b_c"), version("1.0.0", name="a_b.c")])  # type: ignore[list-item]


GOOD = """\
name: ledger.credit
version: 1.0.0
implementation: python:ledger:credit
risk: reversible_write
"""


def project(tmp_path: Path, contract: str, name: str = "c.contract.yaml") -> Path:
    (tmp_path / "ledger.py").write_text(LEDGER.read_text())
    (tmp_path / name).write_text(contract)
    return tmp_path


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        (("risk: reversible_write\n", ""), "line 1, column 1: risk: Field required"),
        (("1.0.0", "1.0"), "line 2, column 10: version: version '1.0' must be MAJOR.MINOR.PATCH"),
        (("reversible_write", "harmless"), "line 4, column 7: risk: Input should be 'read_only'"),
        (("", "owners: [me]\n"), "line 5, column 9: owners: Extra inputs are not permitted"),
        (("", "approval: sometimes\n"), "line 5, column 11: approval: must be none, always, or"),
        (
            ("", "approval: {when: 'amount >'}\n"),
            "line 5, column 18: approval.when: not a valid CEL expression",
        ),
        (
            ("", "approval: {when: 'total > 5'}\n"),
            "approval.when: CEL expression names 'total', which the input does not have",
        ),
        (
            ("", "idempotency: {key: [workflow_id, args.nope]}\n"),
            "line 5, column 34: idempotency.key.1: 'args.nope': the input has no field 'nope'",
        ),
        (
            ("", "idempotency: {key: [when]}\n"),
            "idempotency.key: key part 'when' must be one of",
        ),
        (
            ("", "timeout: ten seconds\n"),
            "line 5, column 10: timeout: 'ten seconds' is not a duration",
        ),
        (("", "retry: {max_attempts: 0}\n"), "retry.max_attempts: Input should be greater than"),
        (
            ("python:ledger:credit", "python:nope:credit"),
            "line 3, column 17: implementation: module 'nope' is neither nope.py",
        ),
        (("python:ledger:credit", "python:ledger:nothere"), "module 'ledger' has no 'nothere'"),
        (
            ("python:ledger:credit", "mcp:crm/refund"),
            "implementation: 'mcp:crm/refund': an MCP-bound contract needs its pinned tool",
        ),
        (("python:ledger:credit", "ledger.credit"), "implementation: String should match pattern"),
        (
            ("python:ledger:credit", "python:ledger:ledger"),
            "python:ledger:ledger: a skill must be an async function",
        ),
    ],
)
def test_each_malformed_contract_names_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], fault: str
) -> None:
    old, new = change
    text = GOOD.replace(old, new, 1) if old else GOOD + new
    with pytest.raises(SkillDefinitionError) as info:
        SkillRegistry.load_directory(project(tmp_path, text))
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{tmp_path / 'c.contract.yaml'}: ")
    assert fault in lines[0]


def test_every_fault_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    project(tmp_path, GOOD.replace("1.0.0", "one") + "owner: [a]\n", "a.contract.yaml")
    (tmp_path / "b.contract.yaml").write_text("- not a mapping\n")
    with pytest.raises(SkillDefinitionError) as info:
        SkillRegistry.load_directory(tmp_path)
    lines = str(info.value).splitlines()
    assert len(lines) == 3, lines
    assert "a.contract.yaml: line 2, column 10: version:" in lines[0]
    assert "a.contract.yaml: line 5, column 8: owner: Input should be a valid string" in lines[1]
    assert lines[2].endswith("b.contract.yaml: a contract must be a YAML mapping")


def test_strict_models_are_required(tmp_path: Path) -> None:
    folder = project(tmp_path, GOOD.replace("python:ledger:credit", "python:loose:credit"))
    (folder / "loose.py").write_text(
        "from pydantic import BaseModel\n"
        "class M(BaseModel):\n    amount: float\n"
        "async def credit(args: M, ctx: object) -> M:\n    '''Credit.'''\n    return args\n"
    )
    with pytest.raises(SkillDefinitionError) as info:
        SkillRegistry.load_directory(folder)
    lines = str(info.value).splitlines()
    assert [line.split(": ", 2)[2] for line in lines] == [
        "implementation: input model M must forbid unknown fields"
        ' (model_config = ConfigDict(extra="forbid"))',
        "implementation: output model M must forbid unknown fields"
        ' (model_config = ConfigDict(extra="forbid"))',
    ]


def run_cli(project_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args, "--project", str(project_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_cli_lists_shows_and_checks_the_demo_project() -> None:
    listed = run_cli(REPO, "skills", "list")
    assert listed.returncode == 0, listed.stderr
    assert "tickets.get" in listed.stdout and "1.1.0" in listed.stdout
    assert "irreversible_write" in listed.stdout and "always" in listed.stdout
    shown = run_cli(REPO, "skills", "show", "tickets.get@~1.0")
    assert shown.returncode == 0, shown.stderr
    assert "tickets.get@1.0.0 (resolved from tickets.get@~1.0)" in shown.stdout
    assert '"ticket_id"' in shown.stdout
    missing = run_cli(REPO, "skills", "show", "tickets.get@^2")
    assert missing.returncode == 1 and "no version of tickets.get matches" in missing.stderr
    checked = run_cli(REPO, "skills", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "new field: output.status is new" in checked.stdout


def test_cli_check_fails_on_a_breaking_minor_bump(tmp_path: Path) -> None:
    skills = tmp_path / "skills"
    skills.mkdir()
    project(skills, GOOD)
    (skills / "d.contract.yaml").write_text(
        GOOD.replace("1.0.0", "1.1.0").replace("reversible_write", "irreversible_write")
    )
    checked = run_cli(tmp_path, "skills", "check")
    assert checked.returncode == 1
    assert "ledger.credit 1.0.0 -> 1.1.0 is a minor bump but breaks" in checked.stderr
    assert "risk level reversible_write -> irreversible_write" in checked.stderr


def test_the_default_key_is_the_key_sessions_used_before_contracts() -> None:
    """Old histories replay with the same idempotency keys, so no effect is repeated."""
    spec = SkillRegistry.load_directory(REPO / "skills").get("payments.refund").spec
    coords = {"workflow_id": "session-1", "run_id": "r", "step_id": "s", "call_id": "0.2"}
    before = hashlib.sha256(b"session-1|s|0.2|payments.refund").hexdigest()[:32]
    assert spec.call_key(**coords, arguments={}) == before
    by_order = spec.model_copy(update={"idempotency_key": ["skill", "args.order_id"]})
    one = by_order.call_key(**coords, arguments={"order_id": "A-1"})
    assert one == by_order.call_key(**{**coords, "call_id": "9"}, arguments={"order_id": "A-1"})
    assert one != by_order.call_key(**coords, arguments={"order_id": "A-2"})


def test_the_catalog_is_served_read_only_over_http() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    from orchestrator.skills.http import catalog_app

    registry = SkillRegistry.load_directory(REPO / "skills")
    app = Starlette(routes=[Mount("/skills", app=catalog_app(registry))])
    with TestClient(app) as http:
        index = http.get("/skills/").json()
        tickets = next(s for s in index["skills"] if s["name"] == "tickets.get")
        assert tickets["latest"] == "1.1.0"
        assert [v["version"] for v in tickets["versions"]] == ["1.0.0", "1.1.0"]
        shown = http.get("/skills/payments.refund@^1.0").json()
        assert shown["version"] == "1.0.0" and shown["approval"] == "always"
        assert shown["input_schema"]["additionalProperties"] is False
        missing = http.get("/skills/payments.refund@^2")
        assert missing.status_code == 404 and "no version" in missing.json()["error"]
        assert http.post("/skills/").status_code == 405


def test_validate_resolves_each_plans_skills_in_the_project(tmp_path: Path) -> None:
    plan = tmp_path / "p.yaml"
    plan.write_text("name: p\nsteps:\n  - id: a\n    type: skill\n    skill: tickets.get@^2\n")
    result = run_cli(REPO, "validate", str(plan))
    assert result.returncode == 1
    assert (
        "p.yaml: line 5, column 12: steps.0.skill:"
        " no version of tickets.get matches 'tickets.get@^2'" in result.stdout
    )
    assert "(versions: 1.0.0, 1.1.0)" in result.stdout
