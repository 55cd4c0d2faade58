"""A new orchestrator project from the template shipped in this package.

`orchestrator init DIR` writes a project whose sample plan runs, and whose own test passes,
before anything is changed: `workflows/` (the sample plan), `skills/` (a contract and its
Python function), `connectors/` (a disabled example), `models.yaml` (scripted models),
`model_scripts/`, settings (`.env.example`), a README, a `pyproject.toml` depending on this
package, and `tests/test_sample.py`, which runs the plan on the embedded dev server.

The template is plain files under `template/` (package data), so it is read and reviewed
like the project it becomes. Names starting `dot-` become dotfiles when written (packaging
tools tend to drop dotfiles), a `.tmpl` suffix is dropped (it keeps linters from reading
`pyproject.toml.tmpl` as this repository's configuration), and two tokens are filled in:
`__PROJECT_NAME__` and `__ORCHESTRATOR_VERSION__`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from orchestrator.exceptions import ConfigError

__all__ = ["ScaffoldResult", "create_project", "project_name", "template_files"]


@dataclass(frozen=True)
class ScaffoldResult:
    """What `create_project` wrote."""

    root: Path
    name: str
    files: list[Path]
    """Relative paths of the files written, sorted."""


def project_name(directory: Path) -> str:
    """A distribution name for the project from its folder name (PEP 508 friendly).

    Raises:
        ConfigError: nothing usable is left of the folder name.
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", directory.resolve().name).strip("-._").lower()
    if not name:
        raise ConfigError(f"{directory}: cannot derive a project name; pass --name")
    return name


def _target_name(name: str) -> str:
    if name.startswith("dot-"):
        name = "." + name.removeprefix("dot-")
    return name.removesuffix(".tmpl")


def template_files() -> dict[PurePosixPath, Traversable]:
    """The template's files by the relative path they are written to."""
    found: dict[PurePosixPath, Traversable] = {}

    def walk(node: Traversable, prefix: PurePosixPath) -> None:
        for child in node.iterdir():
            if child.name == "__pycache__" or child.name.endswith(".pyc"):
                continue  # left by running the template's test in place
            if child.is_dir():
                walk(child, prefix / child.name)
            else:
                found[prefix / _target_name(child.name)] = child

    walk(resources.files(__name__) / "template", PurePosixPath())
    return found


def _version() -> str:
    try:
        return metadata.version("orchestrator")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0.1.0"


def create_project(
    directory: Path, *, name: str | None = None, force: bool = False
) -> ScaffoldResult:
    """Write the template into `directory` (created when missing).

    Args:
        directory: Where the project goes.
        name: The project's distribution name (default: from the folder name).
        force: Write into a folder that is not empty, replacing the template's files there
            and leaving every other file alone.

    Raises:
        ConfigError: `directory` is a file, or is not empty and `force` is not set.
    """
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory}: exists and is not a folder")
    if directory.is_dir() and not force:
        present = sorted(p.name for p in directory.iterdir())
        if present:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise ConfigError(
                f"{directory}: is not empty ({shown}); pass --force to write the project"
                " into it (the template's files are replaced, others left alone)"
            )
    name = name or project_name(directory)
    tokens = {"__PROJECT_NAME__": name, "__ORCHESTRATOR_VERSION__": _version()}
    written = []
    for relative, source in sorted(template_files().items()):
        text = source.read_text(encoding="utf-8")
        for token, value in tokens.items():
            text = text.replace(token, value)
        target = directory.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(Path(*relative.parts))
    return ScaffoldResult(root=directory, name=name, files=written)
