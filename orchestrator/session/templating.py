"""Render `{{ input.key }}` and `{{ steps.id.output.field }}` references.

Pure and deterministic: it runs inside workflow code. Plans are checked at load time for
references to unknown steps; a reference to a field a step's output lacks renders as an
error at run time, naming the reference.
"""

from __future__ import annotations

import json
import re

from orchestrator.types import JsonObject, JsonValue

__all__ = ["TemplateError", "render_text", "render_value"]

_TEMPLATE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
_WHOLE = re.compile(r"^\{\{\s*([^}]*?)\s*\}\}$")


class TemplateError(ValueError):
    """A reference names something the run does not have."""


def _lookup(ref: str, inputs: JsonObject, outputs: dict[str, JsonValue]) -> JsonValue:
    parts = ref.split(".")
    value: JsonValue
    if parts[0] == "input":
        value, rest = inputs, parts[1:]
    elif parts[0] == "steps" and len(parts) >= 3 and parts[2] == "output":
        if parts[1] not in outputs:
            raise TemplateError(f"{{{{ {ref} }}}}: step {parts[1]!r} has no output yet")
        value, rest = outputs[parts[1]], parts[3:]
    else:
        raise TemplateError(f"{{{{ {ref} }}}}: unknown reference")
    for part in rest:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise TemplateError(f"{{{{ {ref} }}}}: no field {part!r}")
    return value


def render_text(text: str, inputs: JsonObject, outputs: dict[str, JsonValue]) -> str:
    """Replace every reference in `text` with its value (objects as compact JSON)."""

    def sub(match: re.Match[str]) -> str:
        value = _lookup(match.group(1), inputs, outputs)
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    return _TEMPLATE.sub(sub, text)


def render_value(value: JsonValue, inputs: JsonObject, outputs: dict[str, JsonValue]) -> JsonValue:
    """Render references inside a JSON value.

    A string that is one whole reference keeps the referenced value's type, so a number
    stays a number in skill arguments.
    """
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole:
            return _lookup(whole.group(1), inputs, outputs)
        return render_text(value, inputs, outputs)
    if isinstance(value, list):
        return [render_value(item, inputs, outputs) for item in value]
    if isinstance(value, dict):
        return {key: render_value(item, inputs, outputs) for key, item in value.items()}
    return value
