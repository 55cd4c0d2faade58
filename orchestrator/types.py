"""Small shared type aliases.

JSON values cross durable boundaries (workflow inputs, activity payloads, store rows), so
they get one precise alias instead of `Any`. pydantic's recursive `JsonValue` validates them.
"""

from __future__ import annotations

from typing import TypeAlias

from pydantic import JsonValue

__all__ = ["JsonObject", "JsonValue"]

JsonObject: TypeAlias = dict[str, JsonValue]
