"""The cache's pure decisions: who may use it, what it is keyed by, what guards a match."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.cache import CacheConfig
from orchestrator.cache.keys import Skip, guard_words, key_of, skip_reason, writes_in
from orchestrator.exceptions import ConfigError
from orchestrator.providers.messages import ChatMessage, ModelRequest, ToolCall, ToolDefinition
from orchestrator.providers.registry import load_model_registry

CONFIG = CacheConfig(models=frozenset({"support"}), read_only_tools=frozenset({"get_order"}))
TOOL = ToolDefinition(name="get_order", description="Read an order", parameters={})


def loop(tool: str) -> ModelRequest:
    """A question, a call of `tool`, and its result: the request inside a tool loop."""
    return ModelRequest(
        model="m",
        messages=[
            ChatMessage(role="user", content="Refund order 7"),
            ChatMessage(
                role="assistant",
                tool_calls=[ToolCall(id="c1", name=tool, arguments_json='{"id": "7"}')],
            ),
            ChatMessage(role="tool", tool_call_id="c1", content="done"),
        ],
    )


def ask(
    text: str, system: str = "Be brief.", tools: list[ToolDefinition] | None = None
) -> ModelRequest:
    return ModelRequest(
        model="m",
        messages=[
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=text),
        ],
        tools=tools or [],
    )


def test_a_read_only_tool_result_is_not_a_write_and_any_other_is() -> None:
    assert writes_in(loop("get_order").messages, CONFIG.read_only_tools) == []
    assert writes_in(loop("refund_order").messages, CONFIG.read_only_tools) == ["refund_order"]
    assert skip_reason(loop("get_order"), "support", CONFIG) is None
    assert skip_reason(loop("refund_order"), "support", CONFIG) is Skip.AFTER_WRITE
    # A plan can declare a skill read-only for its own request.
    assert skip_reason(loop("refund_order"), "support", CONFIG, read_only={"refund_order"}) is None


def test_a_tool_result_whose_call_is_unknown_counts_as_a_write() -> None:
    orphan = [ChatMessage(role="tool", tool_call_id="nowhere", content="x")]
    assert writes_in(orphan, frozenset({"get_order"})) == ["?"]


def test_names_not_opted_in_and_uncacheable_requests_are_skipped() -> None:
    assert skip_reason(ask("hi"), "other", CONFIG) is Skip.OFF
    assert skip_reason(ask("hi"), "support", CONFIG, uncacheable=True) is Skip.UNCACHEABLE
    assert skip_reason(ask("hi"), "support", CONFIG) is None


def test_the_key_separates_tenant_name_system_prompt_and_tools() -> None:
    base = key_of("acme", "support", ask("Where is order 7?"))
    assert key_of("acme", "support", ask("Where  is order 7? ")).entry == base.entry
    others = [
        key_of("beta", "support", ask("Where is order 7?")),
        key_of("acme", "smart", ask("Where is order 7?")),
        key_of("acme", "support", ask("Where is order 7?", system="Be long.")),
        key_of("acme", "support", ask("Where is order 7?", tools=[TOOL])),
    ]
    assert all(k.entry != base.entry for k in others)
    # The frame leaves the question out, so paraphrases share it; tools and system do not.
    assert key_of("acme", "support", ask("where's order 7")).frame == base.frame
    assert others[2].frame != base.frame and others[3].frame != base.frame


def test_inside_a_tool_loop_there_is_no_question_so_only_exact_matches() -> None:
    assert key_of("acme", "support", loop("get_order")).question == ""


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Where is order 7?", "where is my order 7", True),
        ("Where is order 7?", "Where is order 8?", False),
        ("Which items can I return?", "Which items can I not return?", False),
        ("Orders over $100?", "Orders over $500?", False),
        ("How do I reset my password?", "Reset my password: how?", True),
    ],
)
def test_guard_words_tell_numbers_and_negations_apart(a: str, b: str, same: bool) -> None:
    assert (guard_words(a) == guard_words(b)) is same


def test_the_models_file_refuses_a_cache_naming_what_it_lacks(tmp_path: Path) -> None:
    base = (
        "providers:\n  r: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
        "  a: {kind: anthropic, base_url: 'http://127.0.0.1:9'}\n"
        "models:\n  m: {provider: r, model: x}\n  c: {provider: a, model: y}\n"
        "default_model: m\n"
    )
    cases = {
        "cache: {models: [nope]}": "cache.models: unknown model 'nope'",
        "cache: {models: [m], embeddings: gone}": "cache.embeddings: unknown model 'gone'",
        "cache: {models: [m], embeddings: c}": "no /v1/embeddings",
        "cache: {models: [m], similarity: 1.5}": "cache.similarity",
    }
    for extra, expected in cases.items():
        path = tmp_path / "models.yaml"
        path.write_text(base + extra + "\n")
        with pytest.raises(ConfigError, match=re.escape(expected)):
            load_model_registry(path)
