"""`orchestrator init DIR`: the new project validates and its own test passes out of the box."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestrator.scaffold import project_name, template_files

EXPECTED = {
    ".env.example",
    ".gitignore",
    "README.md",
    "connectors/README.md",
    "connectors/time.yaml.example",
    "models.yaml",
    "pyproject.toml",
    "model_scripts/order_status.yaml",
    "skills/orders.py",
    "skills/orders.status@1.0.0.contract.yaml",
    "tests/test_sample.py",
    "workflows/order_status.yaml",
}


def clean_env() -> dict[str, str]:
    """This environment without the runtime's settings or the outer pytest's, as a new
    shell in the new project would have it."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ORCHESTRATOR_", "PYTEST_"))
    } | {"COLUMNS": "200"}


def run(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_init_creates_a_project_whose_own_test_passes(tmp_path: Path) -> None:
    project = tmp_path / "my-agents"

    made = run(tmp_path, "-m", "orchestrator", "init", str(project))

    assert made.returncode == 0, made.stderr
    written = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    assert written == EXPECTED
    assert f"created project 'my-agents' in {project} (12 files)" in made.stdout
    # The next steps say how `orchestrator` gets on PATH: this venv's activate script.
    activate = Path(sys.prefix) / "bin" / "activate"
    assert activate.is_file()
    assert f"source {activate}" in made.stdout
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "my-agents"' in pyproject
    assert "__" not in pyproject  # every token filled in
    # The connector example is disabled: only connectors/*.yaml are loaded.
    assert not list((project / "connectors").glob("*.yaml"))

    validated = run(project, "-m", "orchestrator", "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "1 plan(s) valid: order-status" in validated.stdout

    tested = run(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", timeout=240)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout
    assert not (project / ".orchestrator").exists()  # the test keeps its state in tmp_path


def test_init_refuses_a_folder_that_is_not_empty_unless_forced(tmp_path: Path) -> None:
    project = tmp_path / "existing"
    project.mkdir()
    (project / "models.yaml").write_text("mine\n")
    (project / "notes.txt").write_text("keep me\n")

    refused = run(tmp_path, "-m", "orchestrator", "init", str(project))

    assert refused.returncode == 1
    assert f"{project}: is not empty (models.yaml, notes.txt); pass --force" in refused.stderr
    assert sorted(p.name for p in project.iterdir()) == ["models.yaml", "notes.txt"]
    assert (project / "models.yaml").read_text() == "mine\n"

    forced = run(tmp_path, "-m", "orchestrator", "init", str(project), "--force", "--name", "x")

    assert forced.returncode == 0, forced.stderr
    assert (project / "models.yaml").read_text().startswith("# The model registry")
    assert (project / "notes.txt").read_text() == "keep me\n"
    assert 'name = "x"' in (project / "pyproject.toml").read_text()


def test_init_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")

    refused = run(tmp_path, "-m", "orchestrator", "init", str(target), "--force")

    assert refused.returncode == 1
    assert f"{target}: exists and is not a folder" in refused.stderr


def test_template_ships_every_file_and_names_are_derived() -> None:
    assert {str(path) for path in template_files()} == EXPECTED
    assert project_name(Path("/tmp/My Agents!")) == "my-agents"
