"""`orchestrator route explain` prints the decision and every candidate's reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REPO

from orchestrator.routing.learning import Signal
from orchestrator.store import Store
from orchestrator.store.outcomes import OutcomeRecord

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
        - {name: beta-cheap, when: 'tenant == "beta"', prefer: {cheap: 0.25}}
"""


def explain(
    tmp_path: Path, *args: str, plan: Path = REPO / "workflows/customer_refund.yaml"
) -> subprocess.CompletedProcess[str]:
    models = tmp_path / "models.yaml"
    models.write_text(MODELS)
    env = {
        **os.environ,
        "ORCHESTRATOR_PROJECT_DIR": str(REPO),
        "ORCHESTRATOR_STATE_DIR": str(tmp_path / "state"),
        "ORCHESTRATOR_MODELS_FILE": str(models),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "route", "explain", "--plan", str(plan), *args],
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


def test_explain_shows_each_candidates_score_terms(tmp_path: Path) -> None:
    """Quality, cost, latency, errors and rule bonuses per candidate, as the router summed."""
    done = explain(tmp_path, "--step", "reply", "--model", "any", "--tenant", "beta", "--json")
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout)
    terms = {c["deployment"]: c["terms"] for c in decision["candidates"]}
    assert decision["deployment"] == "cheap" and decision["rules_fired"] == ["beta-cheap"]
    assert terms["cheap"]["rules"] == 0.25 and terms["strong"]["rules"] == 0.0
    assert terms["strong"]["quality_value"] == 0.9
    # Default weights: quality 0.6, cost 0.3 (strong is the dearer), latency 0.1.
    assert terms["strong"]["quality"] == pytest.approx(0.54)
    assert terms["strong"]["cost"] == pytest.approx(-0.3)
    for t in terms.values():
        parts = t["quality"] + t["cost"] + t["latency"] + t["errors"] + t["rules"]
        assert t["total"] == pytest.approx(parts, abs=1e-5)

    text = explain(tmp_path, "--step", "reply", "--model", "any", "--tenant", "beta")
    assert text.returncode == 0, text.stderr
    header = next(line for line in text.stdout.splitlines() if "deployment" in line and "┃" in line)
    for column in ("quality", "cost", "latency", "errors", "rules", "score"):
        assert column in header, column
    [strong] = [line for line in text.stdout.splitlines() if line.startswith("│ strong")]
    assert "+0.540" in strong and "-0.300" in strong and "+0.000" in strong
    [cheap] = [line for line in text.stdout.splitlines() if line.startswith("│ cheap")]
    assert "+0.250" in cheap
    # What a session tells the router besides the step: `reply` is the plan's last step.
    assert decision["inputs"]["horizon_steps"] == 1.0
    assert "session 1 steps left, prefix 0 tokens" in text.stdout


def test_explain_shows_the_steps_left_a_session_tells_the_router(tmp_path: Path) -> None:
    done = explain(tmp_path, "--step", "investigate", "--model", "any", "--json")
    assert done.returncode == 0, done.stderr
    # `investigate`, then `reply`; the demo's tool definitions are shorter than a provider
    # caches, so there is no session prefix to price.
    assert json.loads(done.stdout)["inputs"] == {
        "expected_calls": 2.0,
        "horizon_steps": 2.0,
        "session_prefix_tokens": 0,
    }


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


async def test_explain_shows_learned_quality_beside_the_declared(tmp_path: Path) -> None:
    """Outcomes in the store move the quality the router scores on; both are shown."""
    fresh = explain(tmp_path, "--step", "reply", "--model", "any", "--json")
    assert fresh.returncode == 0, fresh.stderr
    assert not (tmp_path / "state" / "orchestrator.db").exists()  # explain made no store
    url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'orchestrator.db'}"

    async def record(first: int, count: int, score: float) -> None:
        async with await Store.open(url) as store:
            for i in range(first, first + count):
                await store.outcomes.record(
                    OutcomeRecord(
                        outcome_key=f"o{i}",
                        session_id="s",
                        tenant="default",
                        task_type="default",
                        deployment="cheap",
                        signal=Signal.FEEDBACK,
                        score=score,
                        created_at=datetime.now(UTC),
                    )
                )

    await record(0, 10, 1.0)
    done = explain(tmp_path, "--step", "reply", "--model", "any", "--json")
    terms = {c["deployment"]: c["terms"] for c in json.loads(done.stdout)["candidates"]}
    assert terms["cheap"]["declared_quality"] == 0.5
    assert terms["cheap"]["observations"] == 10
    assert terms["cheap"]["quality_value"] == pytest.approx(15 / 20, abs=1e-6)
    assert terms["strong"]["observations"] == 0 and terms["strong"]["quality_value"] == 0.9
    table = explain(tmp_path, "--step", "reply", "--model", "any")
    assert "learned (n)" in table.stdout and "0.750 (10)" in table.stdout
    # The reply step declares no difficulty: the estimate (low) is shown with its drivers.
    assert "difficulty low (estimated by heuristic: score" in table.stdout
    # Many failures later, cheap falls below a medium step's quality floor and strong serves.
    await record(10, 30, 0.0)
    medium = tmp_path / "medium.yaml"
    source = (REPO / "workflows/customer_refund.yaml").read_text()
    medium.write_text(
        source.replace("model: demo-fast\n", "model: demo-fast\n    difficulty: medium\n")
    )
    worse = explain(tmp_path, "--step", "reply", "--model", "any", plan=medium)
    assert "deployment strong" in worse.stdout
    assert "quality 0.30 below medium floor" in worse.stdout
