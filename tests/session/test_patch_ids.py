"""Patch ids live in one module, each call site uses its constant, and each says its history.

`orchestrator.session.patches` lists every patch id; a live one is called with
`workflow.patched` (a recorded history needs its old path), a retired one with
`workflow.deprecate_patch`. Checked on the source, without a worker.
"""

from __future__ import annotations

import ast
import base64
import itertools
import json
import re
from pathlib import Path

from conftest import REPO

from orchestrator.session import patches

PACKAGE = REPO / "orchestrator"
HISTORIES = REPO / "tests/histories"
CALL = re.compile(r"workflow\.(patched|deprecate_patch)\(\s*([^)]*)\)")


def _constants() -> dict[str, tuple[str, str]]:
    """Each patch constant's name → (id, docstring), read from the module's source."""
    tree = ast.parse(Path(patches.__file__).read_text())
    found: dict[str, tuple[str, str]] = {}
    body = tree.body
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            name = node.targets[0]
            assert isinstance(name, ast.Name)
            found[name.id] = (node.value.value, str(following.value.value))
    return found


def _calls() -> list[tuple[Path, str, str]]:
    """Every `workflow.patched(...)` / `workflow.deprecate_patch(...)` in the package."""
    return [
        (path, kind, arg.strip())
        for path in sorted(PACKAGE.rglob("*.py"))
        for kind, arg in CALL.findall(path.read_text())
    ]


def test_every_call_site_names_a_constant_of_the_patches_module() -> None:
    constants = _constants()
    calls = _calls()
    assert calls
    for path, kind, arg in calls:
        assert arg.startswith("patches."), f"{path}: workflow.{kind}({arg}) spells its id"
        assert arg.removeprefix("patches.") in constants, f"{path}: unknown {arg}"


def test_live_patches_are_patched_and_retired_ones_deprecated() -> None:
    constants = _constants()
    ids = [patch_id for patch_id, _ in constants.values()]
    assert len(ids) == len(set(ids))
    assert patches.LIVE.isdisjoint(patches.RETIRED)
    assert set(ids) == patches.LIVE | patches.RETIRED
    used = {(kind, constants[arg.removeprefix("patches.")][0]) for _, kind, arg in _calls()}
    wanted = {("patched", i) for i in patches.LIVE} | {
        ("deprecate_patch", i) for i in patches.RETIRED
    }
    assert used == wanted


def test_each_patch_names_the_recorded_histories_that_cover_it() -> None:
    recorded = {path.name for path in HISTORIES.glob("*.json")}
    for name, (patch_id, doc) in _constants().items():
        named = set(re.findall(r"`([\w.]+\.json)`", doc))
        state = "Live." if patch_id in patches.LIVE else "Retired."
        assert doc.startswith(state), f"{name}: docstring must start with {state!r}"
        assert named or "No recorded history" in doc, f"{name}: names no recorded history"
        assert named <= recorded, f"{name}: no such history {named - recorded}"


def test_every_marker_in_a_recorded_history_is_a_known_patch() -> None:
    """Renaming an id would strand the histories holding its marker."""
    ids = {patch_id for patch_id, _ in _constants().values()}
    markers: set[str] = set()
    for path in HISTORIES.glob("*.json"):
        for event in json.loads(path.read_text())["events"]:
            marker = event.get("markerRecordedEventAttributes", {})
            if marker.get("markerName") != "core_patch":
                continue
            for detail in marker["details"].values():
                for payload in detail["payloads"]:
                    markers.add(json.loads(base64.b64decode(payload["data"]))["id"])
    assert markers
    assert markers <= ids, markers - ids
