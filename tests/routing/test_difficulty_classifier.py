"""The classifier deployment's difficulty estimate, asked over real HTTP of the scripted
model server: its level is used when it answers one, its cost is counted, and a timeout,
an error or an answer that is not one level falls back to the heuristic, saying why."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.providers.adapters import adapter_for
from orchestrator.providers.registry import ModelRegistry
from orchestrator.routing import Difficulty, Router, RouteRequest
from orchestrator.routing.classifier import (
    MAX_TASK_CHARS,
    Classified,
    classifier_request,
    classify_difficulty,
    parse_level,
)
from orchestrator.routing.complexity import estimate_difficulty
from orchestrator.routing.policy import Complexity
from orchestrator.scripted_model import ReplayScript, ScriptedModelServer

EASY = "Say hello to the customer."


@pytest.mark.parametrize(
    ("answer", "level"),
    [
        ("high", Difficulty.HIGH),
        ("Medium.", Difficulty.MEDIUM),
        ('{"difficulty": "low"}', Difficulty.LOW),
        ("medium or high", None),
        ("hard", None),
        ("", None),
        (None, None),
        ("highly", None),
    ],
)
def test_an_answer_names_exactly_one_level_or_none(answer: str | None, level: object) -> None:
    assert parse_level(answer) == level


def test_the_request_asks_for_one_word_about_the_task_head() -> None:
    long = "x " * MAX_TASK_CHARS
    request = classifier_request("small", long, tools=2, output_schema=True, max_tokens=8)
    assert request.model == "small" and request.max_tokens == 8 and not request.stream
    system, user = request.messages
    assert system.role == "system" and "exactly one word" in (system.content or "")
    assert user.content is not None and len(user.content) < MAX_TASK_CHARS + 200
    assert "2 tool(s)" in user.content and "JSON Schema" in user.content


def registry(base_url: str, classifier: str | None = "judge") -> ModelRegistry:
    def deployment(model: str, price: float, quality: float) -> dict[str, Any]:
        return {
            "provider": "scripted",
            "model": model,
            "input_price_per_mtok": price,
            "output_price_per_mtok": price * 4,
            "quality": {"default": quality},
        }

    return ModelRegistry.model_validate(
        {
            "providers": {"scripted": {"kind": "openai", "base_url": base_url}},
            "models": {
                "strong": deployment("m-strong", 3.0, 0.9),
                "cheap": deployment("m-cheap", 0.1, 0.6),
                "judge": deployment("m-judge", 1.0, 0.5),
            },
            "aliases": {"answerers": {"deployments": ["strong", "cheap"]}},
            "default_model": "answerers",
            "routing": {"complexity": {"classifier": classifier, "timeout_seconds": 0.3}},
        }
    )


def judge_script(**turn: Any) -> ReplayScript:
    return ReplayScript.model_validate(
        {
            "conversations": [
                {
                    "name": "judge",
                    "match": {"model": "m-judge"},
                    "turns": [{"usage": {"input_tokens": 1000, "output_tokens": 250}, **turn}],
                    "after_last": "repeat_last",
                }
            ]
        }
    )


async def ask(script: ReplayScript, text: str = EASY) -> tuple[Classified, ModelRegistry]:
    async with ScriptedModelServer(script) as server:
        models = registry(server.base_url)
        _key, entry, provider_entry = models.resolve("judge")
        provider = adapter_for(provider_entry)
        try:
            asked = await classify_difficulty(
                "judge",
                entry,
                provider,
                text,
                tools=0,
                output_schema=False,
                config=models.routing.complexity,
            )
        finally:
            await provider.aclose()
        assert len(server.requests) == 1
    return asked, models


async def test_the_classifiers_level_is_used_and_its_cost_counted() -> None:
    asked, models = await ask(judge_script(content="high"))
    guess = asked.estimate
    heuristic = estimate_difficulty(EASY)
    assert heuristic.difficulty is Difficulty.LOW
    assert (guess.difficulty, guess.source, guess.classifier, guess.fallback) == (
        Difficulty.HIGH,
        "classifier",
        "judge",
        None,
    )
    assert asked.result == "ok" and asked.failure is None
    # 1000 input tokens at $1/M and 250 output at $4/M.
    assert guess.cost_usd == pytest.approx(0.002) and guess.tokens == 1250
    # The heuristic's view stays beside the classifier's level.
    assert (guess.score, guess.features) == (heuristic.score, heuristic.features)

    # Routed on that estimate, an easy-looking step meets the high floor.
    router = Router(models)
    request = RouteRequest(name="answerers", difficulty=None, prompt=EASY)
    decision = router.decide(request, difficulty_estimate=guess)
    assert decision.deployment == "strong" and decision.difficulty_estimate == guess
    assert router.decide(request).deployment == "cheap"  # the heuristic alone: low
    # A declared difficulty wins over any estimate passed in.
    declared = request.model_copy(update={"difficulty": Difficulty.LOW})
    kept = router.decide(declared, difficulty_estimate=guess)
    assert kept.deployment == "cheap" and kept.difficulty_estimate is None


@pytest.mark.parametrize(
    ("turn", "result", "why", "cost"),
    [
        (
            {"content": "high", "fault": {"kind": "timeout", "seconds": 5}},
            "timeout",
            "timed out after 0.3s",
            0.0,
        ),
        (
            {"content": "high", "fault": {"kind": "status", "status": 400}},
            "error",
            "failed: ",
            0.0,
        ),
        ({"content": "It is rather tricky."}, "unparseable", "not one level", 0.002),
    ],
)
async def test_a_classifier_that_cannot_answer_falls_back_to_the_heuristic(
    turn: dict[str, Any], result: str, why: str, cost: float
) -> None:
    asked, _ = await ask(judge_script(**turn))
    guess = asked.estimate
    assert asked.result == result
    assert guess.source == "heuristic" and guess.classifier == "judge"
    assert guess.difficulty is estimate_difficulty(EASY).difficulty
    assert guess.fallback is not None and why in guess.fallback
    assert guess.cost_usd == pytest.approx(cost)  # an answer, usable or not, was paid for
    assert (asked.failure is not None) == (result == "error")


def test_the_classifier_must_be_a_known_model() -> None:
    with pytest.raises(ValidationError, match=r"routing\.complexity\.classifier: unknown model"):
        registry("http://127.0.0.1:9/v1", classifier="nobody")
    with pytest.raises(ValidationError):
        Complexity(timeout_seconds=0)
