"""Checks of a plan against its project: model names, routing policies and skill ranges.

The schema check (`parse_plan`) needs nothing but the file; these need the project's
models file and skill registry, so `orchestrator validate` runs them after loading. Each
fault names the file, line and column of the value at fault, like a schema error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import yaml

from orchestrator._yaml import positions, where
from orchestrator.plans.models import (
    AgentStep,
    AnyStep,
    EnsembleStep,
    Plan,
    SkillStep,
    SubPlanStep,
    children,
)

__all__ = ["project_faults", "steps_with_paths"]

SkillCheck = Callable[[str], str | None]
"""Why a skill reference does not resolve in the project, or None when it does."""


def steps_with_paths(plan: Plan) -> Iterator[tuple[tuple[str, ...], AnyStep]]:
    """Every step with its path in the file (`steps`, `0`, `then`, `1`), in written order."""

    def walk(
        steps: list[AnyStep], path: tuple[str, ...]
    ) -> Iterator[tuple[tuple[str, ...], AnyStep]]:
        for index, step in enumerate(steps):
            here = (*path, str(index))
            yield here, step
            for name, block in children(step):
                yield from walk(block, (*here, name))

    return walk(list(plan.steps), ("steps",))


def project_faults(
    plan: Plan,
    path: Path,
    *,
    models: Iterable[str],
    policies: Iterable[str],
    skill_fault: SkillCheck,
    plans: Iterable[str] | None = None,
) -> list[str]:
    """Every model, alias, policy, skill or sub-plan reference `plan` cannot resolve.

    `plans` are the project's plan names; None skips the sub-plan check.
    """
    found = positions(yaml.compose(path.read_text(encoding="utf-8")))
    known_models, known_policies = sorted(models), sorted(policies)
    known_plans = None if plans is None else sorted(plans)
    faults: list[tuple[tuple[str, ...], str]] = []

    def model(loc: tuple[str, ...], name: str | None) -> None:
        if name is not None and name not in known_models:
            faults.append(
                (loc, f"unknown model or alias {name!r} (known: {', '.join(known_models)})")
            )

    model(("model",), plan.model)
    if plan.policy is not None and plan.policy not in known_policies:
        known = ", ".join(known_policies) or "none"
        faults.append((("policy",), f"unknown routing policy {plan.policy!r} (known: {known})"))
    for loc, step in steps_with_paths(plan):
        refs: list[tuple[tuple[str, ...], str]] = []
        if isinstance(step, AgentStep):
            model((*loc, "model"), step.model)
            model((*loc, "escalate_to"), step.escalate_to)
            refs = [((*loc, "skills", str(i)), ref) for i, ref in enumerate(step.skills)]
        elif isinstance(step, SkillStep):
            refs = [((*loc, "skill"), step.skill)]
        elif isinstance(step, EnsembleStep):
            for i, name in enumerate(step.models):
                model((*loc, "models", str(i)), name)
            model((*loc, "verifier"), step.verifier)
        elif (
            isinstance(step, SubPlanStep)
            and known_plans is not None
            and step.plan not in known_plans
        ):
            faults.append(
                ((*loc, "plan"), f"unknown plan {step.plan!r} (known: {', '.join(known_plans)})")
            )
        for ref_loc, ref in refs:
            why = skill_fault(ref)
            if why is not None:
                faults.append((ref_loc, why))
    return [f"{path}: {where(found, loc)}: {'.'.join(loc)}: {msg}" for loc, msg in faults]
