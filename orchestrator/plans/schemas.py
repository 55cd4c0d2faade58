"""Typed step outputs and run inputs: JSON values checked against a plan's JSON Schemas.

Pure and deterministic, so it runs inside workflow code (`jsonschema` and its helpers are
passed through the sandbox in `orchestrator.plugin`). An agent step with an
`output_schema` must give a final answer that is JSON (bare, or in one fenced block) and
fits the schema; its output is then the parsed value, so later steps, branch conditions
and templates can read its fields.
"""

from __future__ import annotations

import json
import re

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from orchestrator.types import JsonObject, JsonValue

__all__ = ["OutputError", "check_schema", "schema_faults", "structured_output"]

_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class OutputError(ValueError):
    """A value does not fit its schema, or an answer is not JSON."""


def check_schema(schema: JsonObject) -> JsonObject:
    """Refuse a schema that is not valid JSON Schema (2020-12), at load time.

    Raises:
        ValueError: with the schema's fault.
    """
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    return schema


def schema_faults(schema: JsonObject, value: JsonValue) -> list[str]:
    """Every place `value` breaks `schema`, as `field: message`, in a stable order."""
    faults = []
    for err in Draft202012Validator(schema).iter_errors(value):
        where = ".".join(str(p) for p in err.absolute_path) or "<root>"
        faults.append(f"{where}: {err.message}")
    return sorted(faults)


def structured_output(schema: JsonObject, answer: JsonValue) -> JsonValue:
    """Parse an agent's final answer as JSON and check it against `schema`.

    Raises:
        OutputError: the answer is not JSON, or breaks the schema (every fault named).
    """
    value = answer
    if isinstance(answer, str):
        fenced = _FENCED.search(answer)
        text = fenced.group(1) if fenced else answer
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OutputError(f"the answer is not JSON ({exc.msg}): {answer[:200]!r}") from None
    faults = schema_faults(schema, value)
    if faults:
        raise OutputError("the answer breaks output_schema: " + "; ".join(faults))
    return value
