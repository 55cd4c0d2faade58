"""`orchestrator init DIR`: a new project whose sample plan and test work out of the box."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli._common import console, err_console
from orchestrator.exceptions import ConfigError
from orchestrator.scaffold import create_project

__all__ = ["init"]


def init(
    directory: Annotated[Path, typer.Argument(help="Folder of the new project.")],
    name: Annotated[
        str | None, typer.Option(help="Project name (default: from the folder name).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(help="Write into a non-empty folder, replacing the template's files."),
    ] = False,
) -> None:
    """Create a project: workflows, skills, connectors, models, settings, a sample and its test."""
    try:
        result = create_project(directory, name=name, force=force)
    except ConfigError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    for file in result.files:
        console.print(f"  {file}", highlight=False, markup=False)
    console.print(
        f"created project {result.name!r} in {directory} ({len(result.files)} files)\n"
        f"next: cd {directory}\n"
        f"      {activate_line()}\n"
        "      orchestrator validate      # check the plans against the project\n"
        "      pytest                     # run the sample plan on the embedded dev server\n"
        "      orchestrator dev --script model_scripts/order_status.yaml",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def activate_line() -> str:
    """How the reader gets `orchestrator` and `pytest` on PATH in a new shell.

    They live in the virtual environment this command runs from; outside one (a system
    install) they are on PATH already.
    """
    if sys.prefix == sys.base_prefix:
        return "# `orchestrator` and `pytest` are on your PATH (installed outside a venv)"
    activate = Path(sys.prefix) / "bin" / "activate"
    return f"source {activate}   # puts `orchestrator` and `pytest` on PATH"
