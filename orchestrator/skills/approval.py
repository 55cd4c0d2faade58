"""Approval conditions: CEL expressions over a skill call's validated arguments.

A contract's `approval: {when: "amount > 500"}` is compiled when the contract loads (a
syntax error or an unknown argument name refuses the contract) and evaluated by the
validate-only skill activity, never by the model and never inside workflow code: the
expression is pure, but the evaluator is native code. Evaluation fails closed: an
expression that cannot be evaluated for some arguments asks for approval.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import cel

from orchestrator.logs import get_logger
from orchestrator.types import JsonObject

__all__ = ["check_condition", "condition_holds"]

log = get_logger(__name__)


@functools.lru_cache(maxsize=256)
def _program(expression: str) -> cel.Program:
    return cel.compile(expression)


def check_condition(expression: str, fields: Iterable[str]) -> None:
    """Compile `expression` and check that it names only the skill's input fields.

    Raises:
        ValueError: a syntax error, or a name that is not an input field, in one line.
    """
    try:
        program = _program(expression)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(f"not a valid CEL expression: {first}") from None
    known = set(fields)
    unknown = [name for name in program.variables() if name not in known]
    if unknown:
        raise ValueError(
            f"CEL expression names {', '.join(map(repr, unknown))}, which the input"
            f" does not have (input fields: {', '.join(sorted(known)) or 'none'})"
        )


def condition_holds(expression: str, arguments: JsonObject) -> bool:
    """Whether a call with these (validated) arguments needs a person's approval.

    True when the expression is true, and also when it cannot be evaluated or does not
    give a boolean: an approval rule that fails must gate, not release.
    """
    try:
        result = _program(expression).execute(dict(arguments))
    except (ValueError, TypeError, RuntimeError) as exc:
        log.warning("approval condition failed; gating", condition=expression, error=str(exc))
        return True
    if not isinstance(result, bool):
        log.warning("approval condition is not boolean; gating", condition=expression)
        return True
    return result
