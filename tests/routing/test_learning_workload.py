"""The learning workload, small: where `small` is overrated on code, the learning router
leaves it and comes within 95% of the oracle's quality per dollar, the static one does not,
and no router sends PII where it may not go (bench/learning.py has the full figures)."""

from __future__ import annotations

from orchestrator.loadgen.learning import run_learning, sessions_to_reach, summary


def test_learning_reaches_95_percent_of_the_oracle_and_static_never_does() -> None:
    figures = summary([0, 1, 2], 150, window=30)
    share = figures["share_of_oracle_second_half"]
    assert share["learning"] >= 0.95
    assert share["static"] < 0.95
    reach = figures["reaches_95_from_session"]
    assert reach["static"] is None
    assert reach["learning"] is not None and reach["learning"] <= 60
    assert figures["violations"] == {"static": 0, "learning": 0, "oracle": 0}


def test_the_overrated_deployment_is_left_for_code_only() -> None:
    run = run_learning("learning", 150, seed=4)
    late = list(zip(run.tasks[90:], run.chosen[90:], strict=True))
    assert {d for t, d in late if t == "code"} == {"mid"}
    # Where its declaration holds, `small` keeps serving.
    assert {d for t, d in late if t == "chat"} == {"small"}
    static = run_learning("static", 150, seed=4)
    assert {d for t, d in zip(static.tasks, static.chosen, strict=True) if t == "code"} == {"small"}
    assert sessions_to_reach([static], [run_learning("oracle", 150, seed=4)]) is None
