"""The README's gateway section runs as written: bash and Python blocks, in order.

They run in a copy of the project (models file, example keys, model scripts) with the
README's ports swapped for free ones, so parallel test runs never collide.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from orchestrator.devserver import free_port

_BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.DOTALL)


def _section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## Model gateway")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_gateway_blocks_run(tmp_path: Path) -> None:
    replay_port, gateway_port = free_port(), free_port()
    for name in ("models.yaml", "gateway_keys.example.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "model_scripts", tmp_path / "model_scripts")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "ORCHESTRATOR_REPLAY_URL": f"http://127.0.0.1:{replay_port}/v1",
        "ORCHESTRATOR_PROJECT_DIR": str(tmp_path),
    }
    blocks = [
        (kind, code.replace("8765", str(replay_port)).replace("8010", str(gateway_port)))
        for kind, code in _BLOCK.findall(_section())
    ]
    assert [kind for kind, _ in blocks] == ["bash", "bash", "python", "python", "bash"]
    start = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", blocks[0][1]],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )
    try:
        assert start.wait(timeout=60) == 0
        outputs = []
        for kind, code in blocks[1:]:
            argv = (
                ["bash", "-euo", "pipefail", "-c", code]
                if kind == "bash"
                else [
                    sys.executable,
                    "-c",
                    code,
                ]
            )
            done = subprocess.run(
                argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout)
    finally:
        os.killpg(start.pid, signal.SIGTERM)
    curl, openai_out, anthropic_out, story = outputs
    assert '"model":"demo-fast"' in curl.replace(" ", "")
    assert "Hello from the replay model" in curl
    assert openai_out.startswith("user_turn Hello from the replay model")
    assert anthropic_out.startswith("demo-fast Hello from the replay model")
    assert "gw:acme:readme-1" in story
    assert "demo-fast" in story
