"""Shared CLI plumbing: settings from options, asyncio entry, clean error exits."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from orchestrator.exceptions import OrchestratorError
from orchestrator.logs import configure_logging
from orchestrator.settings import Settings

__all__ = ["console", "err_console", "load_settings", "run_async"]

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
T = TypeVar("T")


def load_settings(project: Path | None, *, log_level: str | None = None) -> Settings:
    """Settings from the environment, with `--project` taking precedence.

    Args:
        project: The project folder, when given on the command line.
        log_level: Overrides the settings' level (the demo keeps its transcript readable).
    """
    settings = Settings(project_dir=project.resolve()) if project else Settings()
    configure_logging(level=log_level or settings.log_level, fmt=settings.log_format)
    return settings


def run_async(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async command; an `OrchestratorError` becomes a one-line message and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return asyncio.run(fn(*args, **kwargs))
        except OrchestratorError as exc:
            err_console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper
