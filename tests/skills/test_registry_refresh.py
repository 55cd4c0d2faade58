"""`SkillRegistry.refresh`: synced contracts (`skills/mcp/**`) changed on disk reach the
registry without a restart; a broken one changes nothing and is logged once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import structlog
import yaml

from orchestrator.exceptions import UnknownSkillError
from orchestrator.scripted_model import LoopbackServer
from orchestrator.skills.http import catalog_app
from orchestrator.skills.registry import SkillRegistry


def _synced(skills: Path, version: str, **extra: object) -> Path:
    """A contract as `connectors sync` writes it (the tool is only reached at call time)."""
    folder = skills / "mcp" / "clock"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"clock.now@{version}.contract.yaml"
    contract = {
        "name": "clock.now",
        "version": version,
        "description": "The time.",
        "implementation": "mcp:clock/now",
        "risk": "read_only",
        "mcp": {
            "tool": "now",
            "definition_sha256": version[0] * 64,
            "input_schema": {"type": "object"},
            "output_schema": {"type": "object"},
        },
        **extra,
    }
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    return path


def test_refresh_adds_and_replaces_synced_versions_and_never_drops_one(tmp_path: Path) -> None:
    skills = tmp_path / "skills"
    first = _synced(skills, "1.0.0")
    registry = SkillRegistry.load_directory(skills)
    assert registry.refresh() is False  # nothing changed
    assert registry.resolve("clock.now").spec.version == "1.0.0"

    _synced(skills, "2.0.0")
    # A session another process started on 2.0.0 finds it here without a refresh call.
    assert registry.get("clock.now", "2.0.0").spec.version == "2.0.0"
    _synced(skills, "1.0.0", deprecated="use clock.now 2.0.0")
    assert registry.refresh() is True
    assert registry.resolve("clock.now").spec.version == "2.0.0"
    assert registry.get("clock.now", "1.0.0").spec.deprecated == "use clock.now 2.0.0"

    first.unlink()  # a session may still have pinned it
    registry.refresh()
    assert registry.get("clock.now", "1.0.0").spec.version == "1.0.0"


def test_a_broken_synced_file_changes_nothing_and_is_logged_once(tmp_path: Path) -> None:
    skills = tmp_path / "skills"
    _synced(skills, "1.0.0")
    registry = SkillRegistry.load_directory(skills)
    broken = _synced(skills, "2.0.0")
    broken.write_text(broken.read_text().replace("risk: read_only", "risk: [read_only"))
    with structlog.testing.capture_logs() as logs:
        assert registry.refresh() is False
        assert registry.refresh() is False
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert f"{broken}: not valid YAML" in error["error"] and "line 5" in error["error"]
    with pytest.raises(UnknownSkillError):
        registry.get("clock.now", "2.0.0")
    assert registry.resolve("clock.now").spec.version == "1.0.0"

    _synced(skills, "2.0.0")
    assert registry.refresh() is True
    assert registry.resolve("clock.now").spec.version == "2.0.0"


def test_a_version_held_by_another_file_is_refused(tmp_path: Path) -> None:
    skills = tmp_path / "skills"
    _synced(skills, "1.0.0")
    registry = SkillRegistry.load_directory(skills)
    copy = skills / "mcp" / "other" / "clock.now@1.0.0.contract.yaml"
    copy.parent.mkdir()
    copy.write_text((skills / "mcp" / "clock" / "clock.now@1.0.0.contract.yaml").read_text())
    with structlog.testing.capture_logs() as logs:
        assert registry.refresh() is False
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert "clock.now@1.0.0 is already defined" in error["error"]


async def test_the_catalog_serves_a_version_synced_while_it_runs(tmp_path: Path) -> None:
    skills = tmp_path / "skills"
    _synced(skills, "1.0.0")
    app = catalog_app(SkillRegistry.load_directory(skills))
    async with LoopbackServer(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/clock.now")).json()["version"] == "1.0.0"
        _synced(skills, "2.0.0")
        assert (await http.get("/clock.now")).json()["version"] == "2.0.0"
        _synced(skills, "3.0.0")
        [entry] = (await http.get("/")).json()["skills"]
        assert [v["version"] for v in entry["versions"]] == ["1.0.0", "2.0.0", "3.0.0"]
