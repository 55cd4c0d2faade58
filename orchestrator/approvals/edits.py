"""Approvers' edits of a call's arguments: read from a form, checked against the contract.

An approver may approve a call with changed arguments (a smaller refund). The change is
checked against the skill version's contract before anything is sent to the workflow, by
the same function for the JSON API and the inbox, and a refused edit names the field.
The workflow binds the approval to a hash of the edited arguments and records them on
the `approval_decided` audit event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from orchestrator.exceptions import SkillArgumentsError, UnknownSkillError
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.records import ApprovalRecord
from orchestrator.types import JsonObject, JsonValue

__all__ = ["FIELD_PREFIX", "check_edit", "form_value", "parse_edit"]

FIELD_PREFIX = "arg."
"""Form fields `arg.<name>` carry the edited value of argument `<name>`."""


def form_value(value: JsonValue) -> str:
    """How an argument's value is shown in an edit field (and read back by `parse_edit`)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _read(name: str, text: str, original: JsonValue) -> JsonValue:
    """The typed value of one field, following the type of the value it replaces."""
    if isinstance(original, str):
        return text
    if isinstance(original, bool):
        if text.strip().lower() not in ("true", "false"):
            raise ValueError(f"{name}: write true or false")
        return text.strip().lower() == "true"
    if isinstance(original, int | float):
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not a number") from None
        return int(number) if isinstance(original, int) and number.is_integer() else number
    try:
        parsed: JsonValue = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: not valid JSON ({exc.msg})") from None
    return parsed


def parse_edit(fields: Mapping[str, str], original: JsonObject) -> JsonObject | str | None:
    """The arguments an edit form asks for, or why they cannot be read, or None if unchanged.

    Only the original call's arguments are fields; a field left out keeps its value.
    """
    edited: JsonObject = {}
    try:
        for name, value in original.items():
            text = fields.get(FIELD_PREFIX + name)
            edited[name] = value if text is None else _read(name, text, value)
    except ValueError as exc:
        return f"arguments.{exc}"
    return None if edited == original else edited


def check_edit(
    skills: SkillRegistry | None, record: ApprovalRecord, arguments: JsonObject
) -> JsonObject | str:
    """`arguments` as the skill's contract parses them, or why they are refused."""
    if record.skill is None:
        return "arguments: can be edited only when approving a skill call"
    if skills is None:
        return "arguments: this server has no skill contracts to check an edit against"
    try:
        skill = skills.get(record.skill, record.skill_version)
        parsed = skill.validate_arguments(arguments)
    except (SkillArgumentsError, UnknownSkillError) as exc:
        return f"arguments: {exc}"
    checked: JsonObject = parsed.model_dump(mode="json")
    return checked
