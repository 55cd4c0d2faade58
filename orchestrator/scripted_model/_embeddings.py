"""The scripted model server's `/v1/embeddings`: deterministic vectors, so caches can be tested.

A text's vector is a hashed bag of its content words: each lower-cased word (common
function words dropped, a plural `s` trimmed) adds ±1 at a position chosen by its SHA-256,
and the sum is scaled to length 1. Paraphrases that share their content words get the
same vector and a question about something else a distant one, with no model to download;
what it cannot tell apart (order 7 from order 8) is what a real embedding also blurs.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct

from pydantic import BaseModel, ValidationError

from orchestrator.types import JsonObject, JsonValue

__all__ = ["DIMENSIONS", "embedding_of", "embeddings_body"]

DIMENSIONS = 256
_WORD = re.compile(r"[a-z0-9$%]+")
_STOP_WORDS = (
    "a an the i me my we our you your it its is are was were be been do does did can could"
    " would should will shall may might must of to in on at for from by with about how what"
    " which who whom when where why please tell show give let us there this that these"
    " those and or if so just any some"
)
_STOP = frozenset(_STOP_WORDS.split())


def _words(text: str) -> list[str]:
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word in _STOP:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def embedding_of(text: str) -> list[float]:
    """The text's unit vector of `DIMENSIONS` floats (all zero for a text of no words)."""
    vector = [0.0] * DIMENSIONS
    for word in _words(text):
        digest = hashlib.sha256(word.encode()).digest()
        index = int.from_bytes(digest[:4], "big") % DIMENSIONS
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = sum(x * x for x in vector) ** 0.5
    return [x / norm for x in vector] if norm else vector


class _EmbeddingsRequest(BaseModel):
    model: str
    input: str | list[str]
    encoding_format: str = "float"


def embeddings_body(raw: bytes) -> JsonObject | str:
    """The endpoint's answer to a request body, or what is wrong with the body."""
    try:
        request = _EmbeddingsRequest.model_validate_json(raw)
    except ValidationError as exc:
        return f"scripted model: bad embeddings request: {exc.errors()[0]['msg']}"
    texts = [request.input] if isinstance(request.input, str) else request.input
    data: list[JsonObject] = []
    tokens = 0
    for index, text in enumerate(texts):
        vector = embedding_of(text)
        tokens += max(1, len(text.split()))
        encoded: JsonValue = list[JsonValue](vector)
        if request.encoding_format == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": list[JsonValue](data),
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
