"""Unset API key variables are found up front: which deployments a plan could call, which
of their providers' `api_key_env` are unset, and the warnings workers and the gateway log."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from structlog.testing import capture_logs

from orchestrator.devserver import free_port
from orchestrator.gateway.config import GatewaySettings
from orchestrator.gateway.serve import project_gateway
from orchestrator.plans.models import Plan
from orchestrator.providers.keys import missing_keys, plan_deployments
from orchestrator.providers.registry import ModelRegistry, load_model_registry
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

VARIABLE = "ORCH_TEST_PAID_KEY"


def keyed_models(path: Path) -> Path:
    """The example's models file plus a provider that needs a key, and its deployment."""
    models = yaml.safe_load((REPO / "models.yaml").read_text())
    models["providers"]["paid"] = {
        "kind": "openai",
        "base_url": "https://models.invalid/v1",
        "api_key_env": VARIABLE,
    }
    models["models"]["paid-model"] = {"provider": "paid", "model": "m"}
    models["aliases"]["paid-first"] = {"deployments": ["paid-model", "demo-fast"]}
    path.write_text(yaml.safe_dump(models))
    return path


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return load_model_registry(keyed_models(tmp_path / "models.yaml"))


def plan(**step: object) -> Plan:
    return Plan.model_validate(
        {"name": "p", "steps": [{"id": "a", "type": "agent", "goal": "g", **step}]}
    )


def test_a_set_variable_or_a_provider_without_one_is_no_gap(registry: ModelRegistry) -> None:
    assert missing_keys(registry, environ={VARIABLE: "k"}) == []
    assert missing_keys(registry, ["demo-fast", "demo-strong"], environ={}) == []


def test_an_unset_or_empty_variable_is_a_gap_naming_its_deployments(
    registry: ModelRegistry,
) -> None:
    for environ in ({}, {VARIABLE: ""}):
        (gap,) = missing_keys(registry, environ=environ)
        assert (gap.variable, gap.provider, gap.deployments) == (VARIABLE, "paid", ("paid-model",))
    line = gap.describe(Path("/p/models.yaml"))
    assert line.startswith(f"{VARIABLE} is not set: /p/models.yaml gives it as the API key")
    assert "paid-model" in line and "\n" not in line


def test_the_deployments_a_plan_could_call(registry: ModelRegistry) -> None:
    assert plan_deployments(plan(model="demo-fast"), registry) == {"demo-fast"}
    assert plan_deployments(plan(model="paid-first"), registry) == {"paid-model", "demo-fast"}
    cascade = plan(model="demo-fast", accept="len(output) > 3", escalate_to="paid-model")
    assert plan_deployments(cascade, registry) == {"demo-fast", "paid-model"}
    ensemble = Plan.model_validate(
        {
            "name": "e",
            "steps": [
                {
                    "id": "e",
                    "type": "ensemble",
                    "goal": "g",
                    "models": ["demo-fast", "demo-strong"],
                    "merge": "verifier",
                    "verifier": "paid-model",
                }
            ],
        }
    )
    assert plan_deployments(ensemble, registry) == {"demo-fast", "demo-strong", "paid-model"}
    skill_only = Plan.model_validate(
        {"name": "s", "steps": [{"id": "s", "type": "skill", "skill": "tickets.get"}]}
    )
    assert plan_deployments(skill_only, registry) == set()
    # Not knowable: any deployment may win, or a model the registry does not have.
    assert plan_deployments(plan(), registry) is None
    assert plan_deployments(plan(model="no-such-model"), registry) is None
    # The plan's own default model counts for steps naming none.
    with_default = Plan.model_validate({**plan().model_dump(), "model": "demo-strong"})
    assert plan_deployments(with_default, registry) == {"demo-strong"}


async def test_workers_and_the_gateway_warn_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(REPO / "skills", project / "skills")
    keyed_models(project / "models.yaml")
    monkeypatch.delenv(VARIABLE, raising=False)
    settings = Settings(project_dir=project, state_dir=tmp_path / "state")
    with capture_logs() as logs:
        runtime = await Runtime.open(settings)
        try:
            async with project_gateway(
                settings,
                runtime.store,
                GatewaySettings(keys_file=REPO / "gateway_keys.example.yaml"),
            ):
                pass
        finally:
            await runtime.close()
    warned = [entry for entry in logs if entry["event"] == "api key not set"]
    assert [entry["process"] for entry in warned] == ["worker", "gateway"]
    for entry in warned:
        assert entry["log_level"] == "warning"
        assert entry["variable"] == VARIABLE and entry["deployments"] == ["paid-model"]
        assert str(project / "models.yaml") in entry["detail"]


async def test_no_warning_once_the_variable_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyed_models(tmp_path / "models.yaml")
    shutil.copytree(REPO / "skills", tmp_path / "skills")
    monkeypatch.setenv(VARIABLE, "sk-test-value")
    settings = Settings(project_dir=tmp_path, state_dir=tmp_path / "state")
    with capture_logs() as logs:
        runtime = await Runtime.open(settings)
        await runtime.close()
    assert not [entry for entry in logs if entry["event"] == "api key not set"]


async def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.pop(VARIABLE, None)
    env |= {
        "ORCHESTRATOR_PROJECT_DIR": str(project),
        "ORCHESTRATOR_STATE_DIR": str(project / "state"),
        # Nothing listens here: a command that got as far as Temporal says so.
        "ORCHESTRATOR_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        *args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


async def test_validate_warns_and_run_refuses_before_starting_a_session(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "workflows").mkdir(parents=True)
    shutil.copytree(REPO / "skills", project / "skills")
    models_file = keyed_models(project / "models.yaml")
    paid, free = project / "workflows" / "paid.yaml", project / "workflows" / "free.yaml"
    paid.write_text(yaml.safe_dump(plan(model="paid-first").model_dump(exclude_unset=True)))
    free.write_text(
        yaml.safe_dump({**plan(model="demo-fast").model_dump(exclude_unset=True), "name": "f"})
    )
    validated, refused, allowed = await asyncio.gather(
        _cli(project, "validate", str(project / "workflows")),
        _cli(project, "run", str(paid)),
        _cli(project, "run", str(free)),
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    (warning,) = validated.stderr.strip().splitlines()
    assert warning.startswith(f"warning: {VARIABLE} is not set: {models_file}")
    assert "paid-model" in warning

    assert refused.returncode == 1, refused.stdout + refused.stderr
    (error,) = refused.stderr.strip().splitlines()
    assert error.startswith(f"error: {VARIABLE} is not set: {models_file}"), error
    assert "cannot reach Temporal" not in refused.stderr  # refused before dialling it
    assert refused.stdout == ""  # no session was started

    # A plan that cannot reach the keyless deployment is not held back by it.
    assert "cannot reach Temporal" in allowed.stderr, allowed.stdout + allowed.stderr
