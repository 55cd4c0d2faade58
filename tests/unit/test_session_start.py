"""One way to build a session's start: `build_start`, used by every surface that starts one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from orchestrator.exceptions import SessionInputError
from orchestrator.plans.loader import parse_plan
from orchestrator.plans.models import Plan
from orchestrator.session.types import SessionOptions
from orchestrator.session_start import StartOptions, build_start

PACKAGE = Path(__file__).resolve().parents[2] / "orchestrator"

PLAN = parse_plan(
    "name: refund\n"
    "input_required: [ticket_id]\n"
    "input_schema:\n"
    "  type: object\n"
    "  properties: {ticket_id: {type: string, pattern: '^T-[0-9]+$'}}\n"
    "steps:\n"
    "  - {id: one, type: agent, model: fast-cheap, goal: 'Look at {{ input.ticket_id }}.'}\n",
    "refund.yaml",
)


def _no_id() -> str:
    raise AssertionError("fresh_id was called although the session id was given")


def test_every_start_option_lands_in_the_workflow_input() -> None:
    child = Plan.model_validate(PLAN.model_dump() | {"name": "child"})
    how = StartOptions(
        session_id="s-1",
        requested_by="maria",
        tenant="acme",
        team="support",
        options=SessionOptions(continue_as_new_after=7),
        headers={"x-region": "eu"},
        subplans={"child": child},
    )
    start = build_start(PLAN, {"ticket_id": "T-1"}, how, fresh_id=_no_id)
    assert start.model_dump(exclude={"plan", "subplans", "options"}) == {
        "session_id": "s-1",
        "input": {"ticket_id": "T-1"},
        "requested_by": "maria",
        "tenant": "acme",
        "team": "support",
        "headers": {"x-region": "eu"},
        "carry": None,
        "setup": None,  # resolved by `service.launch` when given the runtime, not here
    }
    assert start.plan == PLAN
    assert start.subplans == {"child": child}
    assert start.options.continue_as_new_after == 7


def test_a_fresh_id_is_asked_for_only_when_none_is_named() -> None:
    ids = iter(["fresh-1", "fresh-2"])
    start = build_start(PLAN, {"ticket_id": "T-1"}, StartOptions(), fresh_id=lambda: next(ids))
    assert start.session_id == "fresh-1"
    assert (start.tenant, start.team, start.requested_by) == ("default", "default", None)
    with pytest.raises(ValueError, match="name the session id or give fresh_id"):
        build_start(PLAN, {"ticket_id": "T-1"}, StartOptions())


def test_input_that_does_not_fit_is_refused_with_every_fault_and_no_id_drawn() -> None:
    with pytest.raises(SessionInputError) as info:
        build_start(PLAN, {}, StartOptions(), fresh_id=_no_id)
    assert (
        str(info.value)
        == "plan 'refund': input does not fit: ticket_id: required by input_required"
    )
    with pytest.raises(SessionInputError, match="'x' does not match"):
        build_start(PLAN, {"ticket_id": "x"}, StartOptions(), fresh_id=_no_id)


def test_no_module_but_the_builder_assembles_a_session_start() -> None:
    """The service, MCP, child workflows and sub-plans all go through `build_start`.

    Two exceptions, neither a start: continue-as-new copies the running session's own
    start (`model_copy`), and `orchestrator route explain` asks the router a question
    about a session that never runs.
    """
    builders = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "SessionStartInput"
            ):
                builders.add(path.relative_to(PACKAGE).as_posix())
    assert builders == {"session_start.py", "cli/route.py"}
