"""`orchestrator connectors sync`: contracts from the tools of the project's MCP servers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli._common import console, load_settings, run_async
from orchestrator.connectors.models import load_connectors
from orchestrator.connectors.sync import sync_connector
from orchestrator.exceptions import ConfigError

__all__ = ["app"]

app = typer.Typer(help="MCP connectors: other servers' tools as skills.", no_args_is_help=True)

Project = Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")]


@app.command()
@run_async
async def sync(
    name: Annotated[str | None, typer.Argument(help="One connector (default: all).")] = None,
    project: Project = None,
) -> None:
    """Write or update the contract of every bound tool.

    A tool whose definition changed gets a new major version (review it) and its old
    version is deprecated; calls of the old one are refused until then. Running
    processes pick the new contracts up for new sessions (`SkillRegistry.refresh`).
    """
    settings = load_settings(project)
    connectors = load_connectors(settings.project_dir / "connectors")
    if name is not None:
        if name not in connectors:
            raise ConfigError(f"no connector {name!r} (known: {', '.join(connectors) or 'none'})")
        connectors = {name: connectors[name]}
    changed = False
    for connector in connectors.values():
        for synced in await sync_connector(connector, settings.project_dir):
            console.print(f"{synced.change:9} {synced.skill}@{synced.version}  {synced.path}")
            changed = changed or synced.change != "unchanged"
    if changed:
        console.print(
            "Running workers, `mcp serve` and `api` use these contracts for new sessions;"
            " no restart needed (sessions already running keep their versions)."
        )
