"""The gateway's JSON reader and writer: the standard library's bytes, orjson's speed."""

from __future__ import annotations

import json

import pytest

from orchestrator.gateway import jsonio

SAMPLES = [
    {"model": "a", "messages": [{"role": "user", "content": "héllo ✓ \u2028"}], "n": 1},
    {"x": 1.0, "y": 1e20, "z": 0.1, "t": True, "f": None, "l": [1, "2", {"a": []}]},
    [],
    "text",
]


@pytest.mark.parametrize("value", SAMPLES)
def test_dumps_writes_what_the_standard_library_writes(value: object) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert jsonio.dumps(value) == expected


def test_an_integer_beyond_64_bits_is_written_by_the_standard_library() -> None:
    assert jsonio.dumps({"n": 2**70}) == b'{"n":1180591620717411303424}'


@pytest.mark.parametrize("text", [b"{", b'{"a": NaN}', b"\xff", b""])
def test_loads_refuses_what_is_not_json(text: bytes) -> None:
    with pytest.raises(jsonio.JSONDecodeError):
        jsonio.loads(text)


def test_without_orjson_the_standard_library_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonio, "AVAILABLE", False)
    assert (
        jsonio.dumps(SAMPLES[0])
        == json.dumps(SAMPLES[0], ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert jsonio.loads(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(jsonio.JSONDecodeError):
        jsonio.loads(b"\xff")
