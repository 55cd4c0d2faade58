"""The API process picks up `approvers.yaml` edits without a restart, and a broken edit
locks nobody out: over real HTTP on loopback, with the routes `orchestrator api` serves."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import structlog
import yaml
from api_process import serve_api, sign_in

from orchestrator.approvals.people import hash_password, hash_token
from orchestrator.approvals.reloading import ReloadingApprovers
from orchestrator.exceptions import ConfigError

LEE_TOKEN, KIM_TOKEN = "apt_lee-token", "apt_kim-token"


def _person(name: str, token: str) -> dict[str, object]:
    return {
        "groups": ["finance"],
        "password": hash_password(f"{name}-pass"),
        "tokens": [hash_token(token)],
    }


def _write(path: Path, users: dict[str, object]) -> None:
    path.write_text(yaml.safe_dump({"groups": ["finance"], "users": users}))


async def _listing(http: httpx.AsyncClient, token: str) -> int:
    answer = await http.get("/api/approvals", headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


async def test_a_running_api_accepts_a_new_approver_and_survives_a_broken_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_APPROVERS_FILE", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    path = project / "approvers.yaml"
    lee = _person("lee", LEE_TOKEN)
    _write(path, {"lee": lee})
    async with serve_api(project) as url, httpx.AsyncClient(base_url=url) as http:
        assert await _listing(http, LEE_TOKEN) == 200
        assert await _listing(http, KIM_TOKEN) == 401
        assert (await sign_in(http, "kim", "kim-pass")).status_code == 401

        kim = _person("kim", KIM_TOKEN)
        _write(path, {"lee": lee, "kim": kim})
        assert await _listing(http, KIM_TOKEN) == 200
        assert (await sign_in(http, "kim", "kim-pass")).status_code == 303

        # A half-made edit: the last good file stays in force, and says what is wrong once.
        broken = path.read_text() + "  ana: {groups: [finance], password: hunter2}\n"
        with structlog.testing.capture_logs() as logs:
            path.write_text(broken)
            assert await _listing(http, LEE_TOKEN) == 200
            assert await _listing(http, KIM_TOKEN) == 200
            assert (await sign_in(http, "lee", "lee-pass")).status_code == 303
        errors = [e for e in logs if e["log_level"] == "error"]
        assert len(errors) == 1, logs
        assert errors[0]["file"] == str(path)
        line = len(broken.splitlines())
        assert errors[0]["error"].startswith(f"{path}: line {line}, column ")
        assert "users.ana.password: not an scrypt hash" in errors[0]["error"]

        # Removing someone takes effect as well: their token and cookie stop working.
        _write(path, {"kim": kim})
        assert await _listing(http, LEE_TOKEN) == 401
        assert await _listing(http, KIM_TOKEN) == 200


def test_the_file_at_start_must_load(tmp_path: Path) -> None:
    path = tmp_path / "approvers.yaml"
    path.write_text("groups: [finance]\nusers:\n  lee: {groups: [finance], password: x}\n")
    with pytest.raises(ConfigError, match=r"line 3, column \d+: users.lee.password"):
        ReloadingApprovers(path)
