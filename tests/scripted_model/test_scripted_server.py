"""The scripted model server over real HTTP on loopback, its script loader and its CLI."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import orchestrator.scripted_model
from orchestrator.exceptions import ConfigError
from orchestrator.scripted_model import ScriptedModelServer, load_model_script

REPO = Path(__file__).resolve().parents[2]

SCRIPT_YAML = """\
conversations:
  - name: strong
    match:
      model: scripted-strong
      contains: "Step: investigate"
    turns:
      - tool_calls:
          - name: tickets_get
            arguments: {ticket_id: T-1001, priority: 2}
      - content: "Refund approved for A-1001."
        usage: {input_tokens: 120, output_tokens: 30}
  - name: fast
    match:
      model: scripted-fast
      contains: "Step: investigate"
    turns:
      - content: "fast answer"
    after_last: repeat_last
  - name: by-user
    match:
      contains: "refund please"
    turns:
      - content: "matched on the first user message"
"""


def _body(
    model: str,
    system: str = "Step: investigate",
    users: tuple[str, ...] = ("hello",),
    assistants: int = 0,
) -> dict[str, object]:
    messages: list[dict[str, object]] = [{"role": "system", "content": system}]
    messages += [{"role": "user", "content": text} for text in users]
    messages += [{"role": "assistant", "content": f"answer {i}"} for i in range(assistants)]
    return {
        "model": model,
        "messages": messages,
        "tools": [{"type": "function", "function": {"name": "tickets_get", "parameters": {}}}],
    }


@pytest.fixture
def script_path(tmp_path: Path) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(SCRIPT_YAML, encoding="utf-8")
    return path


@pytest.fixture
async def replay(script_path: Path) -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(str(script_path)) as server:
        yield server


@pytest.fixture
async def client(replay: ScriptedModelServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=replay.base_url, timeout=5) as http:
        yield http


def test_public_api_is_locked() -> None:
    assert set(orchestrator.scripted_model.__all__) == {
        "Conversation",
        "ConversationMatch",
        "Fault",
        "LoopbackServer",
        "ReplayScript",
        "ScriptedModelServer",
        "ScriptedToolCall",
        "ScriptedUsage",
        "ServedRequest",
        "Turn",
        "create_replay_app",
        "load_model_script",
    }


async def test_answers_a_chat_completion(
    replay: ScriptedModelServer, client: httpx.AsyncClient
) -> None:
    response = await client.post("/chat/completions", json=_body("scripted-strong"))
    assert response.status_code == 200
    body = response.json()
    arguments = '{"priority": 2, "ticket_id": "T-1001"}'
    assert body.pop("id").startswith("chatcmpl-")
    assert abs(body.pop("created") - time.time()) < 3600
    assert body == {
        "object": "chat.completion",
        "model": "scripted-strong",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_strong_0_0",
                            "type": "function",
                            "function": {"name": "tickets_get", "arguments": arguments},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": len("Step: investigatehello") // 4 + 1,
            "completion_tokens": len(arguments) // 4 + 1,
            "total_tokens": len("Step: investigatehello") // 4 + 1 + len(arguments) // 4 + 1,
        },
    }
    assert replay.base_url == f"http://127.0.0.1:{replay.port}/v1"


async def test_same_request_same_answer(client: httpx.AsyncClient) -> None:
    first = (await client.post("/chat/completions", json=_body("scripted-strong"))).json()
    again = (await client.post("/chat/completions", json=_body("scripted-strong"))).json()
    assert first["id"] != again["id"]
    assert (first["choices"], first["usage"]) == (again["choices"], again["usage"])


async def test_turn_is_the_number_of_assistant_messages(client: httpx.AsyncClient) -> None:
    second = await client.post("/chat/completions", json=_body("scripted-strong", assistants=1))
    assert second.status_code == 200
    assert second.json()["choices"][0]["message"]["content"] == "Refund approved for A-1001."
    assert second.json()["choices"][0]["finish_reason"] == "stop"
    assert second.json()["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
    }

    past_end = await client.post("/chat/completions", json=_body("scripted-strong", assistants=2))
    assert past_end.status_code == 400
    assert past_end.json()["error"] == {
        "message": "scripted model: conversation 'strong' has 2 turns but the request already holds"
        " 2 assistant messages (after_last: error)",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request",
    }


async def test_repeat_last_answers_past_the_end(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=_body("scripted-fast", assistants=5))
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "fast answer"
    assert response.json()["choices"][0]["message"]["content"] == "fast answer"


async def test_match_by_model_and_contains(
    replay: ScriptedModelServer, client: httpx.AsyncClient
) -> None:
    requests = [
        _body("scripted-strong"),
        _body("scripted-fast"),
        _body("anything", system="other", users=("I want a refund please",)),
    ]
    answers = [await client.post("/chat/completions", json=body) for body in requests]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [(r.conversation, r.model) for r in replay.requests] == [
        ("strong", "scripted-strong"),
        ("fast", "scripted-fast"),
        ("by-user", "anything"),
    ]
    assert replay.requests[0].tools == ["tickets_get"]
    assert replay.requests[0].tool_calls
    assert not replay.requests[1].tool_calls


async def test_only_the_first_user_message_is_matched(
    replay: ScriptedModelServer, client: httpx.AsyncClient
) -> None:
    body = _body("anything", system="other", users=("hello there", "refund please"))
    response = await client.post("/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == (
        "scripted model: no conversation matches model='anything' first user message starts"
        " 'hello there' (tried: strong[model='scripted-strong', contains='Step: investigate'],"
        " fast[model='scripted-fast', contains='Step: investigate'],"
        " by-user[contains='refund please'])"
    )
    assert replay.requests[-1].conversation is None
    assert replay.requests[-1].status == 400


async def test_content_parts_are_matched(client: httpx.AsyncClient) -> None:
    body = {
        "model": "scripted-fast",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Step: investigate"}]},
            {"role": "user", "content": "hi"},
        ],
    }
    response = await client.post("/chat/completions", json=body)
    assert response.json()["choices"][0]["message"]["content"] == "fast answer"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "scripted model: malformed chat-completions request: <body>: Invalid JSON"),
        (
            b'{"model": "m"}',
            "scripted model: malformed chat-completions request: messages: Field required",
        ),
        (
            b'{"model": "m", "messages": []}',
            "scripted model: malformed chat-completions request: messages: List should have"
            " at least 1",
        ),
    ],
)
async def test_malformed_request_is_400(
    client: httpx.AsyncClient, content: bytes, problem: str
) -> None:
    response = await client.post("/chat/completions", content=content)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(problem)


async def test_api_key_is_required_when_set(script_path: Path) -> None:
    async with (
        ScriptedModelServer(script_path, api_key="sk-replay-1") as replay,
        httpx.AsyncClient(base_url=replay.base_url, timeout=5) as http,
    ):
        missing = await http.post("/chat/completions", json=_body("scripted-fast"))
        wrong = await http.post(
            "/chat/completions",
            json=_body("scripted-fast"),
            headers={"Authorization": "Bearer sk-other"},
        )
        right = await http.post(
            "/chat/completions",
            json=_body("scripted-fast"),
            headers={"Authorization": "Bearer sk-replay-1"},
        )
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert "sk-" not in wrong.text
    assert [r.status for r in replay.requests] == [200]


async def test_health_and_served_requests(replay: ScriptedModelServer) -> None:
    async with httpx.AsyncClient(base_url=replay.url, timeout=5) as http:
        assert (await http.get("/health")).status_code == 200
        await http.post("/v1/chat/completions", json=_body("scripted-strong"))
        served = (await http.get("/_replay/requests")).json()
    assert served == [
        {
            "conversation": "strong",
            "turn": 0,
            "model": "scripted-strong",
            "message_count": 2,
            "tools": ["tickets_get"],
            "tool_calls": True,
            "status": 200,
            "fault": None,
            "tool_results": [],
            "received_at": served[0]["received_at"],
            "api": "openai",
            "stream": False,
        }
    ]


async def test_busy_port_is_a_config_error(script_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with ScriptedModelServer(script_path, port=port):
                pass


def _invalid(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_model_script(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    return message


def test_turn_with_neither_content_nor_tool_calls_is_rejected(tmp_path: Path) -> None:
    message = _invalid(
        tmp_path,
        """\
conversations:
  - name: a
    turns:
      - content: ok
      - usage: {input_tokens: 1, output_tokens: 1}
""",
    )
    assert message.endswith(
        "conversations.0.turns.1: a turn must have content, tool_calls, or both"
    )


def test_tool_call_needs_exactly_one_argument_form(tmp_path: Path) -> None:
    message = _invalid(
        tmp_path,
        """\
conversations:
  - name: a
    turns:
      - tool_calls:
          - {name: t, arguments: {x: 1}, arguments_raw: "{}"}
          - {name: t}
""",
    )
    expected = "a tool call must have exactly one of arguments or arguments_raw"
    assert f"conversations.0.turns.0.tool_calls.0: {expected}" in message
    assert f"conversations.0.turns.0.tool_calls.1: {expected}" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "conversations: [{name: a, turns: [{content: x}], colour: red}]",
            "conversations.0.colour: Extra inputs are not permitted",
        ),
        (
            "conversations: [{name: a, match: {modle: m}, turns: [{content: x}]}]",
            "conversations.0.match.modle: Extra inputs are not permitted",
        ),
        ("conversations: [{name: a, turns: []}]", "conversations.0.turns: List should have"),
        (
            "conversations: [{name: a, turns: [{content: x}], after_last: loop}]",
            "conversations.0.after_last: Input should be 'error' or 'repeat_last'",
        ),
        ("conversations: [{name: 'has space', turns: [{content: x}]}]", "conversations.0.name"),
        (
            "conversations: [{name: a, turns: [{content: x}]}, {name: a, turns: [{content: y}]}]",
            "duplicate conversation name 'a'",
        ),
        ("conversations: [{name: a", "not valid YAML"),
    ],
)
def test_script_errors_name_the_field(tmp_path: Path, text: str, problem: str) -> None:
    assert problem in _invalid(tmp_path, text)


def test_missing_script(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model script not found"):
        ScriptedModelServer(tmp_path / "absent.yaml")


def test_repository_demo_script_loads() -> None:
    script = load_model_script(REPO / "model_scripts" / "customer_refund.yaml")
    assert script.conversations


def test_cli_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.scripted_model", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "SCRIPT" in result.stdout
    assert "--port" in result.stdout


async def test_cli_serves_until_terminated(script_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator.scripted_model",
        str(script_path),
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            assert process.stdout is not None
            line = (await process.stdout.readline()).decode().strip()
            assert line.startswith("scripted model server serving on http://127.0.0.1:"), line
            base_url = line.rsplit(" ", 1)[-1]
            async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
                response = await http.post("/chat/completions", json=_body("scripted-fast"))
            assert response.json()["choices"][0]["message"]["content"] == "fast answer"
            process.send_signal(signal.SIGTERM)
            _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
