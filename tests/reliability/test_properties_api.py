"""Property tests: bad API requests get a clear 4xx naming the field, and change nothing.

A demo refund session waits for its approval on the real dev server; the approvals JSON
API and the skill catalog are served as `orchestrator api` serves them. Hypothesis draws
bad decision bodies (random JSON, the real body with keys dropped, retyped or added, huge
and unicode values, bytes that are not JSON), bad approval ids, status filters and skill
references. Every answer is a 4xx with `{"error": "<field>: <what>"}`, never a 5xx; and
afterwards the approval record, the session's audit trail and the workflow's pending
approval are exactly as before. Then a real approval still releases the refund once.

Examples are drawn first (hypothesis runs synchronously) and sent afterwards, because
the requests need the test's event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from _drawing import drawn
from _drawing import json_values as any_json
from conftest import REPO, Env
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount

from orchestrator.approvals.api import approval_routes
from orchestrator.approvals.people import ApproverDirectory, hash_token
from orchestrator.plans import load_plan
from orchestrator.service import query_state, start_session
from orchestrator.session.types import SessionResult
from orchestrator.session_start import StartOptions
from orchestrator.skills.http import catalog_app
from orchestrator.store.records import ApprovalRecord, EventKind, SessionStatus
from orchestrator.testing import wait_for_pending_approval
from orchestrator.types import JsonValue

TOKENS = {"maria": "tok-maria", "lee": "tok-lee", "sam": "tok-sam"}
DIRECTORY = ApproverDirectory.model_validate(
    {
        "groups": ["finance", "support-leads"],
        "policy": {"default_group": "support-leads", "skills": {"payments.refund": "finance"}},
        "users": {
            "maria": {"groups": ["finance"], "tokens": [hash_token(TOKENS["maria"])]},
            "lee": {"groups": ["finance"], "tokens": [hash_token(TOKENS["lee"])]},
            "sam": {"groups": ["support-leads"], "tokens": [hash_token(TOKENS["sam"])]},
        },
    }
)
REFUND_ARGUMENTS: dict[str, JsonValue] = {
    "order_id": "A-1001",
    "amount": 42.5,
    "currency": "EUR",
    "reason": "Kettle arrived with a cracked base",
}
_PART = r"""(?:[\w-]+|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
FIELD = re.compile(rf"^{_PART}(?:\.{_PART})*: \S")
"""`field.path: message`; a key that is not a word is quoted, so even "" is named."""


def json_values() -> st.SearchStrategy[JsonValue]:
    return any_json(["", "x" * 5000, "\u202e\ufeff\u0000", "approve", "reject", "🎉"])


@st.composite
def mutated_bodies(draw: st.DrawFn) -> JsonValue:
    """The real decision body with fields dropped, retyped, added or made huge."""
    body: dict[str, JsonValue] = {
        "decision": draw(st.sampled_from(["approve", "reject"])),
        "reason": "order checked",
        "arguments": dict(REFUND_ARGUMENTS),
    }
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop", "retype", "add", "argument", "huge"]))
        key = draw(st.sampled_from(sorted(body) or ["decision"]))
        if action == "drop" and key in body:
            del body[key]
        elif action == "retype":
            body[key] = draw(json_values())
        elif action == "add":
            body[draw(st.text(min_size=1, max_size=12))] = draw(json_values())
        elif action == "argument" and isinstance(body.get("arguments"), dict):
            arguments = body["arguments"]
            assert isinstance(arguments, dict)
            arguments[draw(st.sampled_from([*REFUND_ARGUMENTS, "extra"]))] = draw(json_values())
        else:
            body["reason"] = "r" * draw(st.sampled_from([2001, 100_000]))
    return body


def _would_change_something(body: JsonValue) -> bool:
    """Whether `body` is a decision the API must accept (those are not bad input)."""
    if not isinstance(body, dict) or set(body) - {"decision", "reason", "arguments"}:
        return False
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 2000):
        return False
    arguments = body.get("arguments")
    if body.get("decision") == "approve":
        return arguments is None or arguments == REFUND_ARGUMENTS or _valid_refund(arguments)
    if body.get("decision") == "reject":
        return isinstance(reason, str) and bool(reason.strip()) and arguments is None
    return False


def _valid_refund(arguments: JsonValue) -> bool:
    from orchestrator.skills.registry import SkillRegistry

    skill = SkillRegistry.load_directory(REPO / "skills").get("payments.refund", "1.0.0")
    try:
        skill.validate_arguments(arguments)  # type: ignore[arg-type]
    except Exception:
        return False
    return True


BAD_BODIES = st.one_of(mutated_bodies(), json_values()).filter(
    lambda b: not _would_change_something(b)
)
BAD_DELEGATIONS = st.one_of(
    json_values(),
    st.fixed_dictionaries(
        {"to": json_values()}, optional={"reason": json_values(), "extra": json_values()}
    ),
).filter(lambda b: not (isinstance(b, dict) and str(b.get("to")) in TOKENS))
RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([b"", b"{", b'{"decision": "approve",}', b"\xff\xfe", b"[" * 5000, b"null"]),
).filter(lambda raw: not _json_would_change_something(raw))


def _json_would_change_something(raw: bytes) -> bool:
    try:
        return _would_change_something(json.loads(raw))
    except (ValueError, RecursionError):
        return False


def _one_segment(text: str) -> bool:
    """Whether `text`, quoted, stays one path segment (no "/", not "." or "..")."""
    return "/" not in text and text not in {".", ".."}


@dataclass
class Served:
    env: Env
    http: httpx.AsyncClient
    pending: ApprovalRecord

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[who]}"}

    async def snapshot(self) -> tuple[object, ...]:
        """Everything a refused request must leave alone."""
        store = self.env.runtime.store
        record = await store.get_approval(self.pending.approval_id)
        events = await store.list_events(self.pending.session_id)
        state = await query_state(self.env.client, self.pending.session_id)
        pending = [p.approval_id for p in state.pending_approvals]
        return (
            record.model_dump() if record else None,
            [(e.kind, e.event_key) for e in events],
            pending,
        )


@pytest.fixture
async def served(env_factory: Callable[[Path], Awaitable[Env]]) -> AsyncIterator[Served]:
    env = await env_factory(REPO / "model_scripts/customer_refund.yaml")
    handle = await start_session(
        env.client,
        load_plan(REPO / "workflows/customer_refund.yaml"),
        {"ticket_id": "T-1001"},
        StartOptions(requested_by="maria"),
        task_queue=env.settings.task_queue,
    )
    pending = await wait_for_pending_approval(env.runtime.store, handle.id.removeprefix("session-"))

    async def client() -> object:
        return env.client

    routes = approval_routes(env.runtime.store, DIRECTORY, client, env.runtime.skills)  # type: ignore[arg-type]
    app = Starlette(routes=[*routes, Mount("/api/skills", app=catalog_app(env.runtime.skills))])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield Served(env, http, pending)


def assert_clear_refusal(answer: httpx.Response, statuses: set[int], sent: object) -> None:
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300], sent)
    assert answer.headers["content-type"].startswith("application/json"), answer.text[:300]
    error = answer.json()["error"]
    assert isinstance(error, str) and error, answer.text
    assert "Traceback" not in error


async def test_bad_decision_bodies_are_clear_422s_and_change_nothing(served: Served) -> None:
    url = f"/api/approvals/{served.pending.approval_id}/decision"
    before = await served.snapshot()
    bodies = drawn(BAD_BODIES, 80)
    raws = drawn(RAW_BODIES, 30)
    for body in bodies:
        answer = await served.http.post(url, json=body, headers=served.auth("lee"))
        assert_clear_refusal(answer, {422}, body)
        assert FIELD.match(answer.json()["error"]), (answer.json()["error"], body)
    for raw in raws:
        answer = await served.http.post(url, content=raw, headers=served.auth("lee"))
        assert_clear_refusal(answer, {422}, raw)
        assert FIELD.match(answer.json()["error"]), (answer.json()["error"], raw)
    huge = await served.http.post(
        url, json={"decision": "approve", "reason": "x" * (2 << 20)}, headers=served.auth("lee")
    )
    assert_clear_refusal(huge, {413}, "2 MiB reason")
    delegation = f"/api/approvals/{served.pending.approval_id}/delegation"
    for body in drawn(BAD_DELEGATIONS, 40):
        answer = await served.http.post(delegation, json=body, headers=served.auth("lee"))
        assert_clear_refusal(answer, {422}, body)
        assert FIELD.match(answer.json()["error"]), (answer.json()["error"], body)
    assert await served.snapshot() == before


async def test_unauthorised_callers_and_unknown_ids_are_refused_and_change_nothing(
    served: Served,
) -> None:
    url = f"/api/approvals/{served.pending.approval_id}/decision"
    before = await served.snapshot()
    good = {"decision": "approve", "reason": "ok"}
    tokens = drawn(st.text(max_size=60).filter(lambda t: t.strip() not in TOKENS.values()), 20)
    for token in tokens:
        header = {"Authorization": f"Bearer {token}"}
        try:
            answer = await served.http.post(url, json=good, headers=header)
        except (httpx.LocalProtocolError, UnicodeEncodeError):
            continue  # not a header value the client will send at all
        assert_clear_refusal(answer, {401}, token)
    for who, status in [("sam", 403), ("maria", 403)]:
        answer = await served.http.post(url, json=good, headers=served.auth(who))
        assert_clear_refusal(answer, {status}, who)
    # Another path ("/" inside, "..") is the router's 404 before the API's.
    ids = drawn(st.text(min_size=1, max_size=80).filter(_one_segment), 25)
    for approval_id in ids:
        path = f"/api/approvals/{quote(approval_id, safe='')}"
        answer = await served.http.post(f"{path}/decision", json=good, headers=served.auth("lee"))
        assert_clear_refusal(answer, {404}, approval_id)
        shown = await served.http.get(path, headers=served.auth("lee"))
        assert_clear_refusal(shown, {404}, approval_id)
    assert await served.snapshot() == before


async def test_query_and_catalog_inputs_never_fail_the_server(served: Served) -> None:
    before = await served.snapshot()
    for status in drawn(st.text(max_size=30), 25):
        answer = await served.http.get(
            "/api/approvals", params={"status": status}, headers=served.auth("lee")
        )
        if status in {"pending", "approved", "rejected", "expired", "all"}:
            assert answer.status_code == 200
        else:
            assert_clear_refusal(answer, {400}, status)
            assert answer.json()["error"].startswith("status: ")
    refs = drawn(
        st.one_of(
            st.text(min_size=1, max_size=40).filter(_one_segment),
            st.builds(
                lambda name, spec: f"{name}@{spec}",
                st.sampled_from(["payments.refund", "tickets.get", "nope"]),
                st.text(alphabet="^~<>=,.0123456789 *xv-+|", max_size=20),
            ),
        ),
        40,
    )
    for ref in refs:
        answer = await served.http.get(f"/api/skills/{quote(ref, safe='')}")
        assert answer.status_code in {200, 404}, (answer.status_code, answer.text[:300], ref)
        if answer.status_code == 404 and "\n" not in ref:
            # (A line break ends Starlette's mount pattern: the router's plain 404 answers.)
            assert_clear_refusal(answer, {404}, ref)
    assert await served.snapshot() == before


async def test_after_the_barrage_a_real_approval_releases_the_refund_once(served: Served) -> None:
    url = f"/api/approvals/{served.pending.approval_id}/decision"
    for body in drawn(BAD_BODIES, 20):
        await served.http.post(url, json=body, headers=served.auth("lee"))
    answer = await served.http.post(
        url, json={"decision": "approve", "reason": "ok"}, headers=served.auth("lee")
    )
    assert answer.status_code == 200, answer.text
    handle = served.env.client.get_workflow_handle(
        served.pending.workflow_id, result_type=SessionResult
    )
    assert (await handle.result()).status is SessionStatus.COMPLETED
    events = await served.env.runtime.store.list_events(served.pending.session_id)
    refunds = [e for e in events if e.kind is EventKind.TOOL_CALL and e.skill == "payments.refund"]
    assert len(refunds) == 1
