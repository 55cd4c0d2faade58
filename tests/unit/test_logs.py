from __future__ import annotations

import json

import pytest
import structlog

from orchestrator.logs import configure_logging, get_logger, is_secret_key


def test_json_lines_carry_session_ids_and_never_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "sk-live-0123456789abcdef"
    configure_logging(level="INFO", fmt="json", secrets=[secret])
    log = get_logger("test")
    with structlog.contextvars.bound_contextvars(
        session_id="s1", workflow_id="session-s1", run_id="r1"
    ):
        log.info(
            "provider said",
            error=f"401: bad key {secret}",
            api_key=secret,
            headers={"Authorization": f"Bearer {secret}", "accept": "json"},
            note="Authorization: Bearer abc.def-ghi",
        )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert secret not in line
    assert record["session_id"] == "s1"
    assert record["workflow_id"] == "session-s1"
    assert record["run_id"] == "r1"
    assert record["module"] == "test"
    assert record["api_key"] == "[redacted]"
    assert record["headers"] == {"Authorization": "[redacted]", "accept": "json"}
    assert record["error"] == "401: bad key [redacted]"
    assert "abc.def-ghi" not in record["note"]


def test_levels_filter(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="WARNING", fmt="json")
    log = get_logger("test")
    log.info("quiet")
    log.warning("loud")
    err = capsys.readouterr().err
    assert "quiet" not in err and "loud" in err


def test_logging_follows_a_replaced_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """A stream captured when logging was configured may be closed later; logging goes on."""
    import io
    import sys

    configure_logging(level="INFO", fmt="json")
    old = sys.stderr
    replaced = io.StringIO()
    sys.stderr = replaced
    try:
        get_logger("test").info("after the swap")
    finally:
        sys.stderr = old
    assert "after the swap" in replaced.getvalue()


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "x-api-key",
        "apiKey",
        "Authorization",
        "password",
        "client_secret",
        "token",
        "access_token",
        "refresh_tokens",
        "csrfToken",
        "X-Auth-Token",
        "set-cookie",
        "private_key",
    ],
)
def test_credential_keys_are_secret(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "tokens",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cache_read_input_tokens",
        "prompt_tokens",
        "max_tokens",
        "tokens_so_far",
        "token_count",
        "totalTokens",
        "model",
    ],
)
def test_token_counts_are_not_secret(key: str) -> None:
    assert not is_secret_key(key)


def test_a_log_line_keeps_token_counts_and_hides_token_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Counts are what an operator reads a log for; a token's value never reaches it."""
    configure_logging(level="INFO", fmt="json")
    get_logger("test").info(
        "model call",
        tokens=1234,
        usage={"input_tokens": 1000, "output_tokens": 234, "cached_tokens": 800},
        token="tok-abcdef123456",
        auth={"access_token": "at-abcdef123456", "password": "hunter22"},
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["tokens"] == 1234
    assert record["usage"] == {"input_tokens": 1000, "output_tokens": 234, "cached_tokens": 800}
    assert record["token"] == "[redacted]"
    assert record["auth"] == {"access_token": "[redacted]", "password": "[redacted]"}
    assert "abcdef123456" not in line and "hunter22" not in line
