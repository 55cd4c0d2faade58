"""How long an endpoint asks us to wait, read from every header real endpoints send.

Providers and gateways say it in different ways, and a hint that is missed turns a long
rate limit into a row of doomed retries:

| header | sent by | form |
| --- | --- | --- |
| `retry-after-ms` | OpenAI, Azure | milliseconds |
| `retry-after` | everyone (RFC 9110) | seconds, or an HTTP date |
| `llm_provider-<header>` | LiteLLM proxy (the backend's own headers, forwarded) | as above |
| `x-ratelimit-reset-{requests,tokens}` | OpenAI, Groq | durations: `1s`, `6m0s`, `20ms` |
| `anthropic-ratelimit-*-reset` | Anthropic | RFC 3339 time when the limit resets |

Explicit hints (`retry-after*`) win; `-ms` is the precise form of the same hint, so it is
read first. The reset times only describe when a limit refills, so
they are read for a 429 alone, and a limit whose `remaining` header says it is not spent is
skipped. When several parties hint (the gateway and, forwarded, the backend), or several limits
are spent, the longest wait counts: waiting less only meets the limit again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["parse_duration", "retry_after_hint"]

_PREFIXES = ("", "llm_provider-")
_OPENAI_LIMITS = ("requests", "tokens")
_ANTHROPIC_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")


def _finite(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration (`6m0s`, `1h2m3.5s`, `20ms`) or a bare number.

    Returns:
        The seconds, or None when the text is neither.
    """
    text = text.strip()
    try:
        return _finite(float(text))
    except ValueError:
        pass
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return _finite(total) if position == len(text) and position else None


def _http_retry_after(text: str, now: datetime) -> float | None:
    """RFC 9110 `Retry-After`: delay-seconds or an HTTP date."""
    try:
        return _finite(float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _rfc3339_delay(text: str, now: datetime) -> float | None:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _spent(headers: Mapping[str, str], remaining: str) -> bool:
    """Whether a limit may be the one hit: its `remaining` is 0, or not given."""
    raw = headers.get(remaining)
    if raw is None:
        return True
    try:
        return float(raw) <= 0
    except ValueError:
        return True


def _explicit(headers: Mapping[str, str], prefix: str, now: datetime) -> float | None:
    """One party's explicit hint: `retry-after-ms` (the precise form) before `retry-after`."""
    raw_ms = headers.get(f"{prefix}retry-after-ms")
    if raw_ms is not None:
        try:
            seconds = _finite(float(raw_ms) / 1000)
        except ValueError:
            seconds = None
        if seconds is not None:
            return seconds
    raw = headers.get(f"{prefix}retry-after")
    return _http_retry_after(raw, now) if raw is not None else None


def _resets(headers: Mapping[str, str], prefix: str, now: datetime) -> list[float]:
    hints: list[float] = []
    for limit in _OPENAI_LIMITS:
        raw = headers.get(f"{prefix}x-ratelimit-reset-{limit}")
        if raw is not None and _spent(headers, f"{prefix}x-ratelimit-remaining-{limit}"):
            seconds = parse_duration(raw)
            if seconds is not None:
                hints.append(seconds)
    for limit in _ANTHROPIC_LIMITS:
        raw = headers.get(f"{prefix}anthropic-ratelimit-{limit}-reset")
        if raw is not None and _spent(headers, f"{prefix}anthropic-ratelimit-{limit}-remaining"):
            seconds = _rfc3339_delay(raw, now)
            if seconds is not None:
                hints.append(seconds)
    return hints


def retry_after_hint(
    headers: Mapping[str, str], *, now: datetime, rate_limited: bool
) -> float | None:
    """Seconds the endpoint asks us to wait before sending again, or None if it gave no hint.

    Args:
        headers: The error response's headers (any case).
        now: The current time, for hints given as a point in time.
        rate_limited: The status was 429, so rate-limit reset times apply too.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    hints = [_explicit(lowered, prefix, now) for prefix in _PREFIXES]
    explicit = [hint for hint in hints if hint is not None]
    if explicit:
        return max(explicit)
    if not rate_limited:
        return None
    resets = [hint for prefix in _PREFIXES for hint in _resets(lowered, prefix, now)]
    return max(resets) if resets else None
