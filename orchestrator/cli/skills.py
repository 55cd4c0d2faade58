"""`orchestrator skills`: list, show and check the project's skill contracts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli._common import console, err_console, load_settings
from orchestrator.exceptions import OrchestratorError
from orchestrator.skills.catalog import approval_text, describe
from orchestrator.skills.compat import check_versions
from orchestrator.skills.registry import SkillRegistry

__all__ = ["app"]

app = typer.Typer(help="Skill contracts: versions, risk, compatibility.", no_args_is_help=True)

Project = Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")]


def _registry(project: Path | None) -> SkillRegistry:
    settings = load_settings(project)
    try:
        return SkillRegistry.load_directory(settings.project_dir / "skills")
    except OrchestratorError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        raise typer.Exit(1) from None


@app.command("list")
def list_skills(project: Project = None) -> None:
    """Every skill version with its risk, approval policy and owner."""
    registry = _registry(project)
    table = Table("skill", "version", "risk", "approval", "owner", "status", title="skills")
    for name in registry.names():
        latest = registry.resolve(name).spec.version if _has_current(registry, name) else None
        for item in reversed(registry.versions(name)):
            spec = item.spec
            status = "deprecated" if spec.deprecated else "latest" if spec.version == latest else ""
            table.add_row(
                name, spec.version, spec.risk.value, approval_text(spec), spec.owner or "-", status
            )
    console.print(table)


def _has_current(registry: SkillRegistry, name: str) -> bool:
    return any(not item.spec.deprecated for item in registry.versions(name))


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@RANGE, e.g. payments.refund@^1.0")],
    project: Project = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the contract as JSON.")] = False,
) -> None:
    """The contract of the version a reference resolves to, with its schemas."""
    registry = _registry(project)
    try:
        spec = registry.resolve(ref).spec
    except OrchestratorError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        raise typer.Exit(1) from None
    data = describe(spec)
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table("field", "value", title=f"{spec.ref} (resolved from {ref})", show_header=False)
    for key, value in data.items():
        if key not in ("input_schema", "output_schema"):
            table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    others = ", ".join(i.spec.version for i in registry.versions(spec.name))
    table.add_row("versions", others)
    console.print(table)
    for key in ("input_schema", "output_schema"):
        console.print(f"[bold]{key}[/]")
        console.print_json(json.dumps(data[key]))


@app.command()
def check(project: Project = None) -> None:
    """Compare each version with the one before; exit 1 on a breaking non-major bump."""
    registry = _registry(project)
    checks = check_versions([item.spec for item in registry.all()])
    table = Table("skill", "from", "to", "bump", "changes", "verdict", title="compatibility")
    for result in checks:
        changes = "\n".join(
            f"{'BREAKING ' if c.breaking else ''}{c.kind}: {c.message}" for c in result.changes
        )
        verdict = "ok" if result.ok else "[bold red]breaking change needs a major bump[/]"
        table.add_row(
            result.name, result.old, result.new, result.bump.value, changes or "-", verdict
        )
    console.print(table)
    failed = [r for r in checks if not r.ok]
    if failed:
        for r in failed:
            err_console.print(
                f"[bold red]error:[/] {r.name} {r.old} -> {r.new} is a {r.bump.value} bump"
                f" but breaks: {'; '.join(c.message for c in r.breaking)}",
                highlight=False,
            )
        raise typer.Exit(1)
    console.print(f"{len(registry)} skills, {len(checks)} version steps checked: compatible")
