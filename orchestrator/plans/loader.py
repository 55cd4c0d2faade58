"""Load plan files, with errors that name file, line and field.

YAML is parsed with node positions kept, so a validation error on `steps.1.max_rounds`
points at the line and column where that value is written.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from orchestrator._fields import field_path
from orchestrator._yaml import YamlFault, parse, where
from orchestrator.exceptions import PlanError
from orchestrator.plans.models import STEP_TYPES, Plan
from orchestrator.plans.registry import REGISTERED_TAG

__all__ = ["load_plan", "load_plans", "parse_plan"]


_ROOT_REF = re.compile(r"^Value error, (steps(?:\.(?:\d+|[a-z_]+))*)(?: \([^)]*\))?: ")


def _location(raw_loc: tuple[int | str, ...], msg: str) -> tuple[tuple[str, ...], str]:
    loc = [str(p) for p in raw_loc]
    # A discriminated union puts the step's type tag after each list index; the file has none.
    loc = [
        part
        for i, part in enumerate(loc)
        if not (i > 0 and part in (*STEP_TYPES, REGISTERED_TAG) and loc[i - 1].isdigit())
    ]
    # Cross-step checks run on the whole plan; their message names the step they are about.
    match = _ROOT_REF.match(msg)
    if not loc and match:
        return tuple(match.group(1).split(".")), msg[match.end() :]
    return tuple(loc), msg


def parse_plan(text: str, source: str = "<plan>") -> Plan:
    """Parse and validate plan YAML.

    Raises:
        PlanError: the text is not YAML or does not fit the plan schema; one line per
            fault, each with `source:line:column: field: message`.
    """
    try:
        raw, found = parse(text)
    except YamlFault as exc:
        raise PlanError(f"{source}: {exc}") from None
    if not isinstance(raw, dict):
        raise PlanError(f"{source}: a plan must be a YAML mapping with name and steps")
    try:
        return Plan.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc, msg = _location(err["loc"], err["msg"])
            # One line per fault: a CEL parser's caret drawing below its message is dropped.
            msg = msg.splitlines()[0] if msg else msg
            field = field_path(loc)
            lines.append(f"{source}: {where(found, loc)}: {field}: {msg}")
        raise PlanError("\n".join(lines)) from exc


def load_plan(path: str | Path) -> Plan:
    """Load one plan file (a path, or a string naming one).

    Raises:
        PlanError: the file is missing or invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"{path}: cannot read plan file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path}: not UTF-8 text: byte {exc.start}: {exc.reason}") from None
    return parse_plan(text, str(path))


def load_plans(directory: Path) -> dict[str, Plan]:
    """Load every `*.yaml`/`*.yml` plan in a folder, keyed by plan name.

    Raises:
        PlanError: any file is invalid, or two files declare one plan name.
    """
    plans: dict[str, Plan] = {}
    origin: dict[str, Path] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        plan = load_plan(path)
        if plan.name in plans:
            raise PlanError(
                f"{path}: plan name {plan.name!r} is already used by {origin[plan.name]}"
            )
        plans[plan.name] = plan
        origin[plan.name] = path
    return plans
