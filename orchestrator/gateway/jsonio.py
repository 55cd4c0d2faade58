"""JSON in and out of the gateway's hot path: orjson when installed (the `fast` extra), else json.

A request through the gateway parses the client's body and the deployment's answer and
writes the upstream body and the client's answer: with the standard library that was a
tenth of the gateway's CPU per request, orjson does it in C several times faster. The
output is the same bytes the standard library writes with `ensure_ascii=False` and compact
separators; the input accepted differs only where the standard library goes beyond JSON
(`NaN`, `Infinity`, lone surrogates: refused), and an integer beyond 64 bits is read as a
float.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["AVAILABLE", "JSONDecodeError", "dumps", "loads"]

JSONDecodeError = json.JSONDecodeError
"""What `loads` raises for a text that is not JSON (orjson's error subclasses it)."""


def _std_dumps(value: Any) -> bytes:
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


def _std_loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise JSONDecodeError(str(exc), "", 0) from None


try:
    from orjson import dumps as _fast_dumps
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - the fast extra is installed where tests run
    AVAILABLE = False
else:
    AVAILABLE = True
"""Whether orjson is installed."""


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON (with orjson, NaN and infinities as `null`).

    Raises:
        TypeError: a value JSON cannot hold.
        ValueError: without orjson, NaN or an infinity.
    """
    if not AVAILABLE:
        return _std_dumps(value)
    try:
        return _fast_dumps(value)
    except TypeError:
        # An integer beyond 64 bits, a key that is not a string...: the standard
        # library's rules, and its errors.
        return _std_dumps(value)


def loads(data: bytes | str) -> Any:
    """The value of a JSON text.

    Raises:
        JSONDecodeError: not JSON, or not UTF-8.
    """
    if not AVAILABLE:
        return _std_loads(data)
    return _fast_loads(data)
