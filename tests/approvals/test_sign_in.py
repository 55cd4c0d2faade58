"""Inbox sign-in: throttled failures, `Secure` cookies over https, and hash-password's
prompt. The decision is unit-tested; the rest runs over real HTTP and a real process."""

from __future__ import annotations

import contextlib
import io
import os
import pty
import select
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from api_process import serve_api, sign_in

from orchestrator.approvals.people import hash_password, load_approvers
from orchestrator.approvals.throttle import MAX_KEYS, SignInThrottle, ThrottleRule, wait_seconds
from orchestrator.cli.approvals import read_password
from orchestrator.exceptions import ApprovalError

RULE = ThrottleRule(limit=3, window_seconds=60)


def test_the_decision_waits_for_the_oldest_counted_failure_to_leave_the_window() -> None:
    assert wait_seconds([], 0, RULE) == 0
    assert wait_seconds([1, 2], 3, RULE) == 0
    assert wait_seconds([1, 2, 3], 4, RULE) == 57  # 1 leaves the window at 61
    assert wait_seconds([1, 2, 3], 61, RULE) == 0
    assert wait_seconds([0, 10, 20, 30], 40, RULE) == 30  # the last three count: 10 + 60 - 40
    assert wait_seconds([1, 2, 3], 200, RULE) == 0


def test_names_and_addresses_are_counted_apart_and_a_success_clears_the_name() -> None:
    throttle = SignInThrottle(per_name=RULE, per_address=ThrottleRule(5, 60))
    for t in range(3):
        assert throttle.retry_after("lee", "10.0.0.1", t) == 0
        throttle.failed("lee", "10.0.0.1", t)
    assert throttle.retry_after("lee", "10.0.0.9", 3) == 57  # the name, from anywhere
    assert throttle.retry_after("sam", "10.0.0.1", 3) == 0
    throttle.failed("sam", "10.0.0.1", 3)
    throttle.failed("kim", "10.0.0.1", 4)
    assert throttle.retry_after("ana", "10.0.0.1", 5) == 55  # the address, over any name
    assert throttle.retry_after("ana", "10.0.0.2", 5) == 0

    throttle.succeeded("sam")
    throttle.failed("sam", "10.0.0.3", 6)
    throttle.failed("sam", "10.0.0.3", 7)
    assert throttle.retry_after("sam", "10.0.0.4", 8) == 0  # only two since the success


def test_the_tables_stay_bounded() -> None:
    throttle = SignInThrottle()
    for i in range(MAX_KEYS + 50):
        throttle.failed(f"name-{i}", f"addr-{i}", 0)
    assert throttle.retry_after("name-0", "-", 0) == 0  # forgotten first
    assert len(throttle._names) == len(throttle._addresses) == MAX_KEYS


@pytest.fixture
async def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.delenv("ORCHESTRATOR_APPROVERS_FILE", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    people = {
        "groups": ["finance"],
        "users": {
            name: {"groups": ["finance"], "password": hash_password(f"{name}-pass")}
            for name in ("lee", "ana")
        },
    }
    (project / "approvers.yaml").write_text(yaml.safe_dump(people))
    async with serve_api(project) as url:
        yield url


async def test_failed_sign_ins_get_429_with_retry_after_until_the_window_passes(
    api: str,
) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        for _ in range(5):
            wrong = await sign_in(http, "lee", "guess")
            assert wrong.status_code == 401
        refused = await sign_in(http, "lee", "lee-pass")  # even the right password waits
        assert refused.status_code == 429
        assert 800 < int(refused.headers["retry-after"]) <= 900
        assert "Too many failed sign-ins; try again in 15 minute(s)." in refused.text
        assert "inbox_session" not in refused.cookies

        # Another name from another address is not held back by lee's failures.
        other = await sign_in(http, "ana", "ana-pass", **{"X-Forwarded-For": "192.0.2.7"})
        assert other.status_code == 303


async def test_a_success_resets_the_names_count(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        for _ in range(4):
            assert (await sign_in(http, "lee", "guess")).status_code == 401
        assert (await sign_in(http, "lee", "lee-pass")).status_code == 303
        for _ in range(5):
            assert (await sign_in(http, "lee", "guess")).status_code == 401
        assert (await sign_in(http, "lee", "lee-pass")).status_code == 429  # five since


async def test_one_address_trying_many_names_is_throttled(api: str) -> None:
    spray = {"X-Forwarded-For": "198.51.100.4"}  # uvicorn trusts it from loopback
    async with httpx.AsyncClient(base_url=api) as http:
        for i in range(20):
            assert (await sign_in(http, f"user{i}", "guess", **spray)).status_code == 401
        assert (await sign_in(http, "ana", "ana-pass", **spray)).status_code == 429
        assert (await sign_in(http, "ana", "ana-pass")).status_code == 303


async def test_cookies_are_secure_over_https_only(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        plain = await sign_in(http, "lee", "lee-pass")
    async with httpx.AsyncClient(base_url=api) as http:
        https = {"X-Forwarded-Proto": "https"}  # a TLS-terminating proxy on loopback
        form = await http.get("/inbox/login", headers=https)
        secure = await sign_in(http, "lee", "lee-pass", **https)
    assert plain.status_code == secure.status_code == 303
    assert "secure" not in plain.headers["set-cookie"].lower()
    assert "inbox_session=" in secure.headers["set-cookie"]
    assert "; secure" in secure.headers["set-cookie"].lower()
    assert "; secure" in form.headers["set-cookie"].lower()


def _hash_password(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "orchestrator", "approvals", "hash-password", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)


def test_hash_password_reads_a_piped_password(tmp_path: Path) -> None:
    done = _hash_password(stdin="correct horse\n")
    assert done.returncode == 0, done.stderr
    stored = done.stdout.strip()
    path = tmp_path / "approvers.yaml"
    path.write_text(yaml.safe_dump({"users": {"lee": {"password": stored}}}))
    directory = load_approvers(path)
    assert directory.login("lee", "correct horse") is not None
    assert directory.login("lee", "correct horse\n") is None


def test_hash_password_refuses_a_password_argument() -> None:
    done = _hash_password("--password", "hunter2", stdin="")
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert "takes no password argument" in line and "| orchestrator approvals hash-password" in line
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr


def test_a_piped_password_is_its_first_line_and_never_empty() -> None:
    assert read_password(io.StringIO("pw with spaces \r\nsecond line\n")) == "pw with spaces "
    for empty in ("", "\n"):
        with pytest.raises(ApprovalError, match="empty password"):
            read_password(io.StringIO(empty))


PROMPTS = (b"Password:", b"Repeat it:")


def _on_a_terminal(*typed: str) -> tuple[int, str]:
    """Run hash-password on a new pseudo-terminal (its controlling tty, as for a person),
    typing each of `typed` after a prompt; every wait is bounded and the child is killed
    if it overruns. Returns the exit status and everything the terminal showed."""
    command = [sys.executable, "-m", "orchestrator", "approvals", "hash-password"]
    with warnings.catch_warnings():  # 3.12+ warns of fork() beside threads; exec follows
        warnings.simplefilter("ignore", DeprecationWarning)
        pid, master = pty.fork()
    if pid == 0:  # the child: the pty is its stdin, stdout, stderr and /dev/tty
        os.execv(command[0], command)
    shown, pending = b"", list(typed)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                # Answer each prompt once it shows (getpass flushes what was typed ahead).
                if pending and shown.rstrip().endswith(PROMPTS[len(typed) - len(pending)]):
                    os.write(master, pending.pop(0).encode() + b"\n")
        else:
            raise AssertionError(f"hash-password did not finish; the terminal showed {shown!r}")
        for _ in range(100):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")
            time.sleep(0.1)
        raise AssertionError("hash-password did not exit after closing its terminal")
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)


def test_hash_password_asks_twice_on_a_terminal_and_shows_nothing_typed() -> None:
    code, shown = _on_a_terminal("tty horse", "tty horse")
    assert code == 0, shown
    assert "Password:" in shown and "Repeat it:" in shown
    assert "tty horse" not in shown  # no echo
    stored = shown.strip().splitlines()[-1].strip()
    assert stored.startswith("scrypt$")


def test_hash_password_refuses_two_different_entries() -> None:
    code, shown = _on_a_terminal("one", "two")
    assert code == 1
    assert "the two passwords differ" in shown and "scrypt$" not in shown
