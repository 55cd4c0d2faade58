"""`orchestrator validate` over a corpus of broken plans, `plans schema` and `plans diff`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.plans import parse_plan
from orchestrator.plans.schemas import schema_faults

CORPUS = {
    "schema.yaml": "name: a\nsteps:\n  - {id: a, type: agent, goal: g, max_rounds: -1}\n",
    "model.yaml": (
        "name: b\nsteps:\n  - id: pick\n    type: branch\n    when: 'true'\n    then:\n"
        "      - {id: a, type: agent, goal: g, model: gpt-9}\n"
    ),
    "skill.yaml": (
        "name: c\nsteps:\n  - id: t\n    type: skill\n    skill: tickets.get@^9\n"
        "    arguments: {ticket_id: T-1}\n"
    ),
    "policy.yaml": "name: d\npolicy: nope\nsteps:\n  - {id: a, type: agent, goal: g}\n",
    "parallel.yaml": (
        "name: e\nsteps:\n  - id: p\n    type: parallel\n    steps:\n"
        "      - {id: a, type: agent, goal: g}\n"
    ),
}


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output.replace("\n", "")


def test_validate_reports_every_fault_of_a_corpus_with_positions(tmp_path: Path) -> None:
    for name, text in CORPUS.items():
        (tmp_path / name).write_text(text)
    code, out = invoke("validate", str(tmp_path), "--project", str(REPO))
    assert code == 1
    for expected in (
        "schema.yaml: line 3, column 47: steps.0.max_rounds: Input should be greater",
        "model.yaml: line 7, column 46: steps.0.then.0.model: unknown model or alias 'gpt-9'"
        " (known: demo-fast, demo-strong, fast-cheap, reasoning-strong)",
        "skill.yaml: line 5, column 12: steps.0.skill: ",
        "policy.yaml: line 2, column 9: policy: unknown routing policy 'nope'",
        "parallel.yaml: line 6, column 9: steps.0.steps.0: agent steps cannot run in a parallel",
    ):
        assert expected in out, expected


def test_validate_passes_the_example_plans() -> None:
    code, out = invoke("validate", str(REPO / "workflows"), "--project", str(REPO))
    assert code == 0, out
    assert "customer-refund" in out


def test_the_exported_schema_accepts_the_example_plans(tmp_path: Path) -> None:
    target = tmp_path / "plan.schema.json"
    code, _ = invoke("plans", "schema", "--output", str(target))
    assert code == 0
    schema = json.loads(target.read_text())
    for path in sorted((REPO / "workflows").glob("*.yaml")):
        assert schema_faults(schema, yaml.safe_load(path.read_text())) == [], path
    assert schema_faults(schema, {"name": "x", "steps": [{"id": "a", "type": "dance"}]})


OLD = """
name: p
version: "1"
steps:
  - {id: look, type: skill, skill: tickets.get, arguments: {ticket_id: T-1}}
  - {id: answer, type: agent, goal: Answer, model: demo-fast}
"""


@pytest.mark.parametrize("bump", [True, False])
def test_plans_diff_names_each_change(tmp_path: Path, bump: bool) -> None:
    new = OLD.replace("model: demo-fast", "model: demo-strong") + (
        "  - {id: gate, type: approval, summary: fine}\n"
    )
    if bump:
        new = new.replace('version: "1"', 'version: "2"')
    (tmp_path / "old.yaml").write_text(OLD)
    (tmp_path / "new.yaml").write_text(new)
    parse_plan(new)
    code, out = invoke("plans", "diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml"))
    assert "~ step answer changed:" in out
    assert "-model: demo-fast" in out and "+model: demo-strong" in out
    assert "+ step gate (approval, at steps.2)" in out
    if bump:
        assert code == 0 and "version: 1 -> 2" in out
    else:
        assert code == 1 and "bump it" in out
