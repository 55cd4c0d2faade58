"""Fixtures of the connector tests: each test gets an empty project of its own.

Imported by the test modules (named `*_fixture`, registered under the short names).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO

from orchestrator.settings import Settings

__all__ = ["innermost", "project_fixture", "settings_fixture"]


@pytest.fixture(name="project")
def project_fixture(tmp_path: Path) -> Path:
    """An empty project with the example's models file."""
    folder = tmp_path / "project"
    (folder / "skills").mkdir(parents=True)
    shutil.copy(REPO / "models.yaml", folder / "models.yaml")
    return folder


@pytest.fixture(name="settings")
def settings_fixture(settings: Settings, project: Path) -> Settings:
    """The suite's settings (per-test state and task queue) on the test's own project."""
    return settings.model_copy(update={"project_dir": project})


def innermost(exc: BaseException) -> str:
    """Every message along an error's chain of causes, joined: what a failure said."""
    messages = []
    cause: BaseException | None = exc
    while cause is not None:
        messages.append(str(cause))
        cause = cause.__cause__
    return " | ".join(messages)
