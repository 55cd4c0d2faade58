"""How an error names the field at fault, whatever key a file, body or model sent.

Plan, contract and connector files, API bodies and tool-call arguments all report a
pydantic error's location as a dotted path (`steps.0.goal`). The keys come from people and
models, so a key that is not a plain word is quoted: an empty, blank or control-character
key is still visibly named instead of vanishing from the message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["field_path"]

_WORD = re.compile(r"[\w-]+")


def field_path(loc: Sequence[str | int]) -> str:
    """A validation error's location as `steps.0.goal`; `<root>` for the whole value."""
    parts = [str(p) if _WORD.fullmatch(str(p)) else repr(str(p)) for p in loc]
    return ".".join(parts) or "<root>"
