"""Typed plans: run input and agent output schemas, and references checked against them."""

from __future__ import annotations

import pytest

from orchestrator.exceptions import PlanError
from orchestrator.plans import parse_plan
from orchestrator.plans.schemas import OutputError, structured_output

SCHEMA = {
    "type": "object",
    "required": ["severity"],
    "properties": {"severity": {"enum": ["low", "high"]}, "why": {"type": "string"}},
}


def test_a_fenced_json_answer_is_parsed_and_checked() -> None:
    answer = 'Here it is:\n```json\n{"severity": "high", "why": "5xx"}\n```'
    assert structured_output(SCHEMA, answer) == {"severity": "high", "why": "5xx"}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("it is bad", "the answer is not JSON"),
        ('{"severity": "medium"}', "severity: 'medium' is not one of ['low', 'high']"),
        ('{"why": 3}', "<root>: 'severity' is a required property; why: 3 is not of type"),
    ],
)
def test_answers_that_break_the_schema_are_named(answer: str, expected: str) -> None:
    with pytest.raises(OutputError) as info:
        structured_output(SCHEMA, answer)
    assert expected in str(info.value)


TYPED = """
name: typed
input_schema:
  type: object
  required: [service]
  properties: {service: {type: string}, minutes: {type: integer, minimum: 1}}
steps:
  - id: classify
    type: agent
    goal: Classify {{ input.service }}
    output_schema:
      type: object
      properties: {severity: {enum: [low, high]}, why: {type: string}}
  - id: say
    type: agent
    goal: Explain {{ steps.classify.output.%s }}
"""


def test_references_to_declared_output_fields_load() -> None:
    plan = parse_plan(TYPED % "why", "t.yaml")
    assert plan.input_faults({"service": "api"}) == []
    assert plan.input_faults({"minutes": 0}) == [
        "<root>: 'service' is a required property",
        "minutes: 0 is less than the minimum of 1",
    ]


def test_a_reference_to_an_undeclared_output_field_is_refused() -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(TYPED % "cause", "t.yaml")
    assert str(info.value) == (
        "t.yaml: line 14, column 5: steps.1: template {{ steps.classify.output.cause }}"
        " names field 'cause', which the output_schema of step 'classify' does not declare"
        " (it has: severity, why)"
    )


def test_a_schema_that_is_not_json_schema_is_refused_where_it_is_written() -> None:
    with pytest.raises(PlanError) as info:
        parse_plan("name: x\ninput_schema: {type: thing}\nsteps: [{id: a, goal: g}]\n", "t.yaml")
    assert str(info.value).startswith(
        "t.yaml: line 2, column 15: input_schema: Value error, not a valid JSON Schema:"
    )
