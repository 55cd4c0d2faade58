"""`orchestrator route explain` prints the decision and every candidate's reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

MODELS = """
providers:
  p: {base_url: "http://127.0.0.1:9/v1"}
models:
  strong: {provider: p, model: s, input_price_per_mtok: 3, output_price_per_mtok: 15,
           quality: {default: 0.9}, data_classes: [public, internal, confidential]}
  cheap: {provider: p, model: c, input_price_per_mtok: 0.1, output_price_per_mtok: 0.4}
aliases:
  any: {deployments: [strong, cheap]}
default_model: any
routing:
  default_policy: p
  policies:
    p:
      rules:
        - {name: acme-strong, when: 'tenant == "acme"', only: [strong]}
"""


def explain(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    models = tmp_path / "models.yaml"
    models.write_text(MODELS)
    env = {
        **os.environ,
        "ORCHESTRATOR_PROJECT_DIR": str(REPO),
        "ORCHESTRATOR_STATE_DIR": str(tmp_path / "state"),
        "ORCHESTRATOR_MODELS_FILE": str(models),
        "COLUMNS": "200",
    }
    plan = str(REPO / "workflows/customer_refund.yaml")
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "route", "explain", "--plan", plan, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_explain_names_the_winner_and_why_each_candidate_lost(tmp_path: Path) -> None:
    done = explain(tmp_path, "--step", "reply", "--model", "any")
    assert done.returncode == 0, done.stderr
    assert "deployment cheap" in done.stdout
    assert "score" in done.stdout and "strong" in done.stdout

    ruled = explain(tmp_path, "--step", "reply", "--model", "any", "--tenant", "acme")
    assert "deployment strong" in ruled.stdout
    assert "rules fired acme-strong" in ruled.stdout
    assert "not allowed by rule 'acme-strong'" in ruled.stdout


def test_explain_refuses_a_step_that_is_not_an_agent_step(tmp_path: Path) -> None:
    done = explain(tmp_path, "--step", "nope")
    assert done.returncode == 1
    assert "no agent step 'nope' (agent steps: investigate, reply)" in done.stderr.replace(
        "\n", " "
    )


def test_run_refuses_a_session_past_its_budget_before_starting_it(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        MODELS + "budgets:\n  - {tenant: acme, limit_usd: 0.5, session_reserve_usd: 0.6}\n"
    )
    env = {
        **os.environ,
        "ORCHESTRATOR_PROJECT_DIR": str(REPO),
        "ORCHESTRATOR_STATE_DIR": str(tmp_path / "state"),
        "ORCHESTRATOR_MODELS_FILE": str(models),
        # Nothing listens here: the refusal must come before any connection.
        "ORCHESTRATOR_TEMPORAL_ADDRESS": "127.0.0.1:9",
        "COLUMNS": "200",
    }
    plan = str(REPO / "workflows/customer_refund.yaml")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            plan,
            "-i",
            '{"ticket_id": "T-1"}',
            "--tenant",
            "acme",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "budget acme/* (month" in done.stderr and "is exhausted" in done.stderr
