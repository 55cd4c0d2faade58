"""`orchestrator plans ...`: the plan JSON Schema for editors, and what changed between plans."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from orchestrator.cli._common import console
from orchestrator.exceptions import PlanError, UnknownSkillError
from orchestrator.plans.checks import project_faults, steps_with_paths
from orchestrator.plans.loader import load_plan
from orchestrator.plans.models import AnyStep, Plan
from orchestrator.plans.subplans import resolve_subplans
from orchestrator.providers.registry import ModelRegistry
from orchestrator.skills.registry import SkillRegistry
from orchestrator.types import JsonObject

__all__ = ["app", "check_project", "plan_changes"]

app = typer.Typer(help="Plan files: JSON Schema, differences.", no_args_is_help=True)


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """The JSON Schema of plan files, for editor completion (yaml-language-server)."""
    text = json.dumps(plan_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {output}")


def plan_schema() -> JsonObject:
    """The plan model's JSON Schema (input side: what a file may hold)."""
    document: JsonObject = Plan.model_json_schema(by_alias=True, mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "orchestrator plan"
    return document


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The plan as it was.")],
    new: Annotated[Path, typer.Argument(help="The plan as it is now.")],
) -> None:
    """What changed between two versions of a plan: version, steps added, removed, changed.

    Running sessions keep the plan they started with (it travels in their start input);
    new sessions get the new one. Exit 1 when the steps changed but the version did not.
    """
    try:
        before, after = load_plan(old), load_plan(new)
    except PlanError as exc:
        console.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(1) from None
    lines = plan_changes(before, after)
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if lines and before.version == after.version:
        console.print(
            f"[yellow]steps changed but version is still {after.version!r}:"
            " bump it so sessions record which plan they ran[/]"
        )
        raise typer.Exit(1)


def plan_changes(before: Plan, after: Plan) -> list[str]:
    """One line per difference: version, top-level fields, each step added, removed or changed."""
    lines: list[str] = []
    if before.version != after.version:
        lines.append(f"version: {before.version} -> {after.version}")
    old_top = before.model_dump(mode="json", exclude={"steps", "version"}, by_alias=True)
    new_top = after.model_dump(mode="json", exclude={"steps", "version"}, by_alias=True)
    for key in sorted(set(old_top) | set(new_top)):
        if old_top.get(key) != new_top.get(key):
            lines.append(f"{key}: {json.dumps(old_top.get(key))} -> {json.dumps(new_top.get(key))}")
    old_steps = {step.id: (loc, step) for loc, step in steps_with_paths(before)}
    new_steps = {step.id: (loc, step) for loc, step in steps_with_paths(after)}
    for step_id in [s for s in old_steps if s not in new_steps]:
        lines.append(f"- step {step_id} (removed)")
    for step_id, (loc, step) in new_steps.items():
        if step_id not in old_steps:
            lines.append(f"+ step {step_id} ({step.type}, at {'.'.join(loc)})")
            continue
        old_loc, old_step = old_steps[step_id]
        if old_loc != loc:
            lines.append(f"~ step {step_id} moved: {'.'.join(old_loc)} -> {'.'.join(loc)}")
        a, b = _own_fields(old_step), _own_fields(step)
        if a != b:
            lines.append(f"~ step {step_id} changed:")
            lines.extend(
                f"    {line}"
                for line in difflib.unified_diff(a, b, lineterm="", n=0)
                if not line.startswith(("---", "+++", "@@"))
            )
    return lines


def _own_fields(step: AnyStep) -> list[str]:
    """A step's own fields as YAML lines, without the steps it holds (they diff on their own)."""
    data = step.model_dump(mode="json", by_alias=True, exclude={"then", "else_", "steps"})
    return yaml.safe_dump(data, sort_keys=True).splitlines()


def check_project(
    plans: dict[Path, Plan],
    models: ModelRegistry,
    skills: SkillRegistry,
    others: dict[str, Plan] | None = None,
) -> list[str]:
    """Every model, policy, skill and sub-plan reference the project cannot resolve.

    Sub-plans are looked up among `plans` and `others` (the project's other plans).
    """

    def skill_fault(ref: str) -> str | None:
        try:
            skills.resolve(ref)
        except UnknownSkillError as exc:
            return str(exc)
        return None

    by_name = {**(others or {}), **{plan.name: plan for plan in plans.values()}}
    faults: list[str] = []
    for path, plan in plans.items():
        found = project_faults(
            plan,
            path,
            models=models.names,
            policies=models.routing.policies,
            skill_fault=skill_fault,
            plans=by_name,
        )
        faults.extend(found)
        if not found:
            try:
                resolve_subplans(plan, by_name)
            except PlanError as exc:
                faults.append(f"{path}: {exc}")
    return faults
