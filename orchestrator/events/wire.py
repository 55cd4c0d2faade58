"""Deltas as bytes between processes: a JSON array, split to fit a carrier's limit."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from pydantic import TypeAdapter, ValidationError

from orchestrator.events.models import StreamDelta

__all__ = ["decode_deltas", "encode_deltas"]

_LIST = TypeAdapter(list[StreamDelta])


def encode_deltas(deltas: Sequence[StreamDelta], limit: int) -> Iterator[bytes]:
    """JSON arrays of `deltas`, in order, each at most `limit` bytes.

    A delta too large on its own is cut into several with the same tags, so text is
    never lost to the limit (a delta's `n` then repeats; the text is what matters). Each
    delta is encoded once.
    """
    batch: list[bytes] = []
    size = 2
    for delta in deltas:
        for item in _pieces(delta, limit):
            if batch and size + len(item) + 1 > limit:
                yield b"[" + b",".join(batch) + b"]"
                batch, size = [], 2
            batch.append(item)
            size += len(item) + 1
    if batch:
        yield b"[" + b",".join(batch) + b"]"


def _pieces(delta: StreamDelta, limit: int) -> Iterator[bytes]:
    encoded = delta.model_dump_json().encode()
    if len(encoded) + 2 <= limit:
        yield encoded
        return
    # JSON escaping can grow a character to 6 bytes (\uXXXX).
    room = max((limit - (len(encoded) - len(delta.text.encode())) - 16) // 6, 1)
    for start in range(0, len(delta.text), room):
        piece = delta.model_copy(update={"text": delta.text[start : start + room]})
        yield piece.model_dump_json().encode()


def decode_deltas(data: bytes | str) -> list[StreamDelta]:
    """The deltas of one message; an unreadable message gives none (they are best effort)."""
    try:
        return _LIST.validate_json(data)
    except (ValidationError, json.JSONDecodeError, ValueError):
        return []
