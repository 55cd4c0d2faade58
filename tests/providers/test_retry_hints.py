"""The retry-hint parser on the headers real providers and gateways send (pure, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from orchestrator.providers.retry_hints import parse_duration, retry_after_hint

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("2m59.56s", 179.56),
        ("7.66s", 7.66),
        ("0s", 0.0),
        ("12", 12.0),
        ("0.5", 0.5),
        ("  3s ", 3.0),
        ("1.5us", 1.5e-6),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5x", "1s2", "-1s", "soon", "1 s", "nan", "inf"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("headers", "rate_limited", "seconds"),
    [
        ({"Retry-After": "7"}, False, 7.0),
        ({"retry-after": "0.5"}, True, 0.5),
        ({"retry-after-ms": "1500"}, True, 1.5),
        # The same hint in two precisions: -ms first, as OpenAI's SDK reads it.
        ({"retry-after-ms": "1500", "retry-after": "2"}, True, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "2"}, True, 2.0),
        ({"Retry-After": format_datetime(NOW + timedelta(seconds=90), usegmt=True)}, True, 90.0),
        ({"Retry-After": format_datetime(NOW - timedelta(seconds=90), usegmt=True)}, True, 0.0),
        # LiteLLM forwards the backend's headers with a prefix.
        ({"llm_provider-retry-after": "120"}, True, 120.0),
        ({"llm_provider-retry-after-ms": "250"}, True, 0.25),
        ({"retry-after": "1", "llm_provider-retry-after": "120"}, True, 120.0),
        # OpenAI's reset durations, for a 429 only.
        ({"x-ratelimit-reset-requests": "6m0s"}, True, 360.0),
        ({"x-ratelimit-reset-tokens": "20ms"}, True, 0.02),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, True, 360.0),
        # A limit with requests left is not the one hit.
        (
            {
                "x-ratelimit-reset-requests": "6m0s",
                "x-ratelimit-remaining-requests": "59",
                "x-ratelimit-reset-tokens": "12s",
                "x-ratelimit-remaining-tokens": "0",
            },
            True,
            12.0,
        ),
        ({"llm_provider-x-ratelimit-reset-tokens": "2m"}, True, 120.0),
        # Anthropic's reset times are RFC 3339.
        ({"anthropic-ratelimit-requests-reset": "2026-05-01T12:00:45Z"}, True, 45.0),
        (
            {
                "anthropic-ratelimit-input-tokens-reset": "2026-05-01T12:02:00+00:00",
                "anthropic-ratelimit-input-tokens-remaining": "0",
                "anthropic-ratelimit-output-tokens-reset": "2026-05-01T12:10:00Z",
                "anthropic-ratelimit-output-tokens-remaining": "8000",
            },
            True,
            120.0,
        ),
        # Explicit hints win over reset times.
        ({"retry-after": "3", "x-ratelimit-reset-tokens": "6m0s"}, True, 3.0),
    ],
)
def test_hints(headers: dict[str, str], rate_limited: bool, seconds: float) -> None:
    assert retry_after_hint(headers, now=NOW, rate_limited=rate_limited) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("headers", "rate_limited"),
    [
        ({}, True),
        ({"retry-after": "soon"}, True),
        ({"retry-after": "-3"}, True),
        ({"retry-after-ms": "fast"}, True),
        ({"x-ratelimit-reset-tokens": "6m0s"}, False),  # a 503's reset times say nothing
        ({"anthropic-ratelimit-tokens-reset": "tomorrow"}, True),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-remaining-requests": "3"}, True),
    ],
)
def test_no_hint(headers: dict[str, str], rate_limited: bool) -> None:
    assert retry_after_hint(headers, now=NOW, rate_limited=rate_limited) is None
