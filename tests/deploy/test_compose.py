"""The cluster files hold together: docker-compose.yml, the Dockerfile and .env.example.

There is no Docker engine in CI, so this reads the compose file as data and checks what
would otherwise fail at `docker compose up`: services and images, published ports, start
order through health conditions, a health check on every long-running service, workers
that can scale (no fixed host port or container name), and every `${VAR}` the file uses
documented in `.env.example`. When a compose CLI is installed, it validates the file too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
ORCHESTRATOR_ROLES = ("migrate", "worker", "api")
LONG_RUNNING = ("postgresql", "temporal", "temporal-ui", "worker", "api", "replay")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def test_services_and_images(compose: dict[str, Any]) -> None:
    svc = services(compose)
    assert set(svc) == {
        "postgresql",
        "temporal",
        "temporal-ui",
        "migrate",
        "worker",
        "api",
        "replay",
    }
    assert svc["postgresql"]["image"].startswith("postgres:")
    assert svc["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert svc["temporal-ui"]["image"].startswith("temporalio/ui:")
    for role in (*ORCHESTRATOR_ROLES, "replay"):
        assert svc[role]["build"] == ".", role
        assert svc[role]["image"].startswith("orchestrator:"), role
    assert svc["worker"]["command"] == ["orchestrator", "worker"]
    assert svc["migrate"]["command"] == ["orchestrator", "db", "upgrade"]
    assert svc["api"]["command"][:2] == ["orchestrator", "api"]


def test_temporal_and_the_store_use_postgresql(compose: dict[str, Any]) -> None:
    svc = services(compose)
    temporal = svc["temporal"]["environment"]
    assert temporal["DB"] == "postgres12"
    assert temporal["POSTGRES_SEEDS"] == "postgresql"
    for role in ORCHESTRATOR_ROLES:
        env = svc[role]["environment"]
        assert env["ORCHESTRATOR_DATABASE_URL"].startswith("postgresql+asyncpg://"), role
        assert "@postgresql:5432/" in env["ORCHESTRATOR_DATABASE_URL"], role
        assert env["ORCHESTRATOR_TEMPORAL_ADDRESS"] == "temporal:7233", role
    assert svc["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_published_ports(compose: dict[str, Any]) -> None:
    svc = services(compose)
    assert svc["temporal"]["ports"] == ["${TEMPORAL_PORT:-7233}:7233"]
    assert svc["temporal-ui"]["ports"] == ["${TEMPORAL_UI_PORT:-8080}:8080"]
    assert svc["api"]["ports"] == ["${API_PORT:-8000}:8000"]


def test_workers_scale(compose: dict[str, Any]) -> None:
    worker = services(compose)["worker"]
    # A fixed host port or container name would make `--scale worker=N` fail.
    assert "ports" not in worker
    assert "container_name" not in worker
    assert worker["expose"] == ["9464"]
    assert worker["environment"]["ORCHESTRATOR_METRICS_PORT"] == "9464"
    assert worker["environment"]["ORCHESTRATOR_METRICS_HOST"] == "0.0.0.0"


def test_start_order_waits_on_health(compose: dict[str, Any]) -> None:
    svc = services(compose)
    expected = {
        "temporal": {"postgresql": "service_healthy"},
        "temporal-ui": {"temporal": "service_healthy"},
        "migrate": {"postgresql": "service_healthy"},
        "worker": {
            "temporal": "service_healthy",
            "postgresql": "service_healthy",
            "migrate": "service_completed_successfully",
        },
        "api": {
            "temporal": "service_healthy",
            "postgresql": "service_healthy",
            "migrate": "service_completed_successfully",
        },
    }
    for name, deps in expected.items():
        got = {dep: spec["condition"] for dep, spec in svc[name]["depends_on"].items()}
        assert got == deps, name
    # Every dependency named anywhere is a service that exists.
    for name, service in svc.items():
        for dep in service.get("depends_on", {}):
            assert dep in svc, f"{name} depends on unknown service {dep}"


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name in LONG_RUNNING:
        check = svc[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check["interval"] and check["retries"] >= 3, name
    assert "9464/healthz" in " ".join(svc["worker"]["healthcheck"]["test"])
    assert "8000/readyz" in " ".join(svc["api"]["healthcheck"]["test"])
    assert svc["migrate"]["restart"] == "no"


def test_every_variable_is_documented_in_env_example(compose: dict[str, Any]) -> None:
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    assert used - documented == set()
    assert "POSTGRES_PASSWORD:?" in COMPOSE.read_text(), "the password must be required"


def test_dockerfile_builds_the_runtime_image() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.M)
    assert "pip install --no-cache-dir ." in text
    assert re.search(r"^USER orchestrator$", text, re.M), "the image must not run as root"
    assert 'CMD ["orchestrator", "worker"]' in text
    for copied in ("models.yaml", "workflows", "skills", "connectors", "model_scripts"):
        assert re.search(rf"^COPY .*\b{copied}\b", text, re.M), copied
        assert (REPO / copied).exists(), copied


def compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    return None


def test_compose_cli_accepts_the_file(tmp_path: Path) -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("no docker compose CLI installed; the structure tests above still ran")
    env_file = tmp_path / ".env"
    env_file.write_text(ENV_EXAMPLE.read_text())
    result = subprocess.run(
        [
            *cli,
            "--project-directory",
            str(REPO),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
