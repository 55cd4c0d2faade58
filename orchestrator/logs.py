"""structlog set-up: JSON off a terminal, readable on one, and never a secret.

Secrets are removed twice: any key that looks like a credential has its value replaced,
and the values of every API-key environment variable the models file names are scrubbed
from all strings, so a key echoed in an error body cannot reach a log line.

A key names a credential when it mentions an API key, a secret, a password, authorization,
a cookie or a credential, or when one of its words is a singular *token* (`token`,
`access_token`, `csrfToken`). Counts of model tokens (`tokens`, `input_tokens`,
`cached_tokens`, `token_count`, `max_tokens`) are not secrets and stay readable: they are
what an operator reads a log for.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from itertools import pairwise
from typing import Any, TextIO, cast

import structlog

__all__ = ["configure_logging", "get_logger", "is_secret_key", "redact", "register_secret"]

_SECRET_KEY = re.compile(
    r"(api[_-]?key|secret|passw(or)?d|authorization|cookie|credential|private[_-]?key)", re.I
)
# Words of a key: snake, kebab, dotted and camelCase parts, lower-cased.
_KEY_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+")
# A word next to `token` that makes the key a count or a limit rather than a credential.
_COUNT_WORDS = frozenset(
    {"count", "counts", "usage", "limit", "limits", "max", "min", "num", "total"}
)
# Words before a plural `tokens` that make it a list of credentials, not a count.
_CREDENTIAL_KINDS = frozenset(
    {"access", "refresh", "bearer", "auth", "session", "csrf", "api", "id"}
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_SECRETS: set[str] = set()
REDACTED = "[redacted]"


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a field called `key` holds a credential whose value must never be logged.

    Cached: a log line asks it for every key of every field, and the same few dozen field
    names come back on every line (the regular expressions cost more than the rest of a
    line's redaction). The answer depends on the name alone.
    """
    if _SECRET_KEY.search(key):
        return True
    words = [word.lower() for word in _KEY_WORDS.findall(key)]
    if any(word in _COUNT_WORDS for word in words):
        return False
    if any(word.endswith("token") for word in words):
        return True
    return any(word == "tokens" and before in _CREDENTIAL_KINDS for before, word in pairwise(words))


def register_secret(value: str | None) -> None:
    """Scrub this value from every log line from now on (values under 6 chars are ignored)."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Remove registered secrets and bearer tokens from a string."""
    for secret in _SECRETS:
        text = text.replace(secret, REDACTED)
    return _BEARER.sub(r"\1" + REDACTED, text)


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and is_secret_key(k) else _scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _redact_processor(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at each write.

    A stream captured at configuration time can be one a caller has since closed (a CLI
    runner's, in tests); later lines would then fail the activity that logs them.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    *, level: str = "INFO", fmt: str = "auto", secrets: Iterable[str | None] = ()
) -> None:
    """Configure structlog and stdlib logging once for the process.

    Args:
        level: Minimum level name.
        fmt: `json`, `console`, or `auto` (JSON unless stderr is a terminal).
        secrets: Values to scrub from every line.
    """
    for secret in secrets:
        register_secret(secret)
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger carrying its module name.

    It stays lazy (configuration is read at first use), so a module-level logger created
    at import time still follows `configure_logging` called later.
    """
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(module=name)
    return logger
