"""Property tests: every bad plan, contract or connector file is refused with what and where.

The files are mutations of the repository's real examples (keys dropped, renamed or given
values of the wrong type, YAML syntax garbage, huge values, unicode) and random YAML
structures. Whatever the file holds, its loader either accepts it or raises its own error
class, one line per fault: `file: line L, column C: field: message` (or a whole-file fault:
not YAML, not UTF-8, not a mapping). It never crashes with another exception, never takes
long, and never writes to the file it reads.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from _drawing import json_values
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.connectors.models import load_connector
from orchestrator.exceptions import ConfigError, OrchestratorError, PlanError, SkillDefinitionError
from orchestrator.plans import load_plan
from orchestrator.skills.loader import load_contract
from orchestrator.types import JsonValue

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# The connector examples of connectors/README.md: one per transport.
CONNECTORS: list[dict[str, JsonValue]] = [
    {
        "name": "time",
        "transport": "stdio",
        "command": "mcp-server-time",
        "args": ["--local-timezone", "UTC"],
        "env": {"TZ": "UTC"},
        "trusted": False,
        "default_risk": "reversible_write",
        "owner": "platform-team",
        "tools": [{"tool": "get_current_time", "skill": "time.now"}],
    },
    {
        "name": "time",
        "transport": "http",
        "url": "http://127.0.0.1:3001/mcp",
        "headers": {"X-Team": "support"},
        "bearer_token_env": "EVERYTHING_TOKEN",
        "tools": [{"tool": "echo"}],
    },
]

# A value no field of these files accepts where another type is expected, plus edge values.
WRONG: list[JsonValue] = [
    None,
    True,
    0,
    -1,
    10**40,
    1.5e308,
    "",
    "x" * 20_000,
    "\u202e\u0000\ufeff",
    "日本語 ✓ 🎉",
    "{{ input.x }}",
    "${HOME}",
    "(((",
    "steps.x.output != ",
    [],
    {},
    [[[[]]]],
    {"a": {"b": [None]}},
]
GARBAGE = [
    ":",
    "- ",
    "{",
    "[",
    '"',
    "'",
    "\t",
    "&a ",
    "*nope ",
    "!!python/object:os.system ",
    "%",
    "@",
    "`",
    "? ",
    "|\n",
    "\x00",
    "\udcff",
]

JsonStrategy = st.SearchStrategy[JsonValue]


def _examples(folder: str, pattern: str) -> list[dict[str, JsonValue]]:
    docs = [
        yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted((REPO / folder).glob(pattern))
    ]
    assert docs, f"no examples {folder}/{pattern}"
    return docs


PLANS = _examples("workflows", "*.yaml")
CONTRACTS = _examples("skills", "*.contract.yaml")


def _paths(value: JsonValue, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, examples: list[dict[str, JsonValue]]) -> str:
    """A real example with one to three keys dropped, renamed or retyped, maybe garbled."""
    doc: JsonValue = copy.deepcopy(draw(st.sampled_from(examples)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: JsonValue = doc
        for part in path[:-1]:
            parent = parent[part]  # type: ignore[index,call-overload]
        key = path[-1]
        action = draw(st.sampled_from(["drop", "rename", "retype", "random"]))
        if action == "drop":
            del parent[key]  # type: ignore[arg-type,union-attr]
        elif action == "rename" and isinstance(parent, dict):
            parent[f"{key}{draw(st.sampled_from(['_', 'X', 'é', ' ']))}"] = parent.pop(str(key))
        elif action == "random":
            parent[key] = draw(json_values())  # type: ignore[index,call-overload]
        else:
            # A copy: the same list placed twice and then mutated would form a cycle.
            parent[key] = copy.deepcopy(draw(st.sampled_from(WRONG)))  # type: ignore[index,call-overload]
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(GARBAGE)) + text[at:]
    return text


@st.composite
def random_documents(draw: st.DrawFn, vocabulary: list[str]) -> str:
    """A random structure over the file kind's own keys, or plain random text."""
    keys = st.one_of(st.sampled_from(vocabulary), st.text(max_size=10))
    doc = draw(
        st.one_of(
            st.dictionaries(keys, json_values(), max_size=8),
            json_values(),
        )
    )
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=200))
    return yaml.safe_dump(doc, allow_unicode=True)


def _vocabulary(examples: list[dict[str, JsonValue]]) -> list[str]:
    return sorted({str(p[-1]) for doc in examples for p in _paths(doc) if isinstance(p[-1], str)})


_PART = r"""(?:[\w-]+|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_LINE = re.compile(rf"^line (\d+), column (\d+): ({_PART}(?:\.{_PART})*|<root>): .+")
_WHOLE_FILE = (
    "not valid YAML: ",
    "not UTF-8 text: ",
    "nested deeper than ",
    "a plan must be a YAML mapping",
    "a contract must be a YAML mapping",
    "a connector file must be a YAML mapping",
)
_YAML_SHAPE = re.compile(
    r"^line \d+, column \d+: (more than \d+ values|key .* appears twice|nested)"
)


def assert_names_what_and_where(error: OrchestratorError, source: Path, text: str) -> None:
    """The error is `source: <whole-file fault>`, or one line per fault, each
    `source: line L, column C: field: message` with the position inside the file."""
    message = str(error)
    prefix = f"{source}: "
    assert message.startswith(prefix), message
    assert "Traceback" not in message, message
    if message.removeprefix(prefix).startswith(_WHOLE_FILE):
        return
    rows = text.splitlines() or [""]
    for line in message.split("\n"):
        assert line.startswith(prefix), f"a fault without its file: {line!r}"
        body = line.removeprefix(prefix)
        if _YAML_SHAPE.match(body):
            continue
        match = _LINE.match(body)
        assert match, f"no position and field in {body!r}"
        row, column = int(match.group(1)), int(match.group(2))
        assert 1 <= row <= len(rows) + 1, f"line {row} is outside the file: {body!r}"
        width = len(rows[row - 1]) if row <= len(rows) else 0
        assert 1 <= column <= width + 1, f"column {column} is outside line {row}: {body!r}"


def _load_checked(
    path: Path, text: str, load: Callable[[Path], object], error: type[OrchestratorError]
) -> OrchestratorError | None:
    """Write `text`, load it; the loader's own error or None. The file is left as written."""
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    try:
        load(path)
    except error as exc:
        assert_names_what_and_where(exc, path, text)
        return exc
    finally:
        assert (path.read_bytes(), path.stat().st_mtime_ns) == before, f"{path} was changed"
    return None


SKILLS = REPO / "skills"
"""Contracts written elsewhere bind to the example project's real modules."""


@dataclass(frozen=True)
class Kind:
    """One kind of definition file: its real examples, file name, loader and error."""

    examples: list[dict[str, JsonValue]]
    file_name: str
    load: Callable[[Path], object]
    error: type[OrchestratorError]
    required: list[str]


KINDS = {
    "plan": Kind(PLANS, "plan.yaml", load_plan, PlanError, ["name", "steps"]),
    "contract": Kind(
        CONTRACTS,
        "fuzz@1.0.0.contract.yaml",
        lambda p: load_contract(p, SKILLS),
        SkillDefinitionError,
        ["name", "version", "implementation", "risk"],
    ),
    "connector": Kind(
        CONNECTORS, "time.yaml", load_connector, ConfigError, ["name", "transport", "tools"]
    ),
}


def per_kind(test: Callable[..., None]) -> Callable[..., None]:
    """Run `test(kind, tmp_path, data)` for each kind, over hypothesis-drawn examples."""
    marked: Callable[..., None] = pytest.mark.parametrize("kind", sorted(KINDS))(
        EXAMPLES(given(data=st.data())(test))
    )
    return marked


@per_kind
def test_any_file_loads_or_is_refused_with_file_line_and_field(
    kind: str, tmp_path: Path, data: st.DataObject
) -> None:
    spec = KINDS[kind]
    text = data.draw(
        st.one_of(mutated(spec.examples), random_documents(_vocabulary(spec.examples))), "text"
    )
    _load_checked(tmp_path / spec.file_name, text, spec.load, spec.error)


@per_kind
def test_a_dropped_or_retyped_required_key_is_named_with_its_line(
    kind: str, tmp_path: Path, data: st.DataObject
) -> None:
    spec = KINDS[kind]
    doc = copy.deepcopy(data.draw(st.sampled_from(spec.examples)))
    key = data.draw(st.sampled_from(spec.required))
    retype = data.draw(st.booleans())
    if retype:
        doc[key] = data.draw(st.sampled_from([{"a": {"b": None}}, [[1]], None]))
    else:
        del doc[key]
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    refused = _load_checked(tmp_path / spec.file_name, text, spec.load, spec.error)
    assert refused is not None, f"{kind} without a valid {key!r} was accepted:\n{text}"
    assert re.search(rf"line \d+, column \d+: {key}\b", str(refused)), str(refused)
    if retype:
        # The position is where the bad value is written, not the top of the file.
        row = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(f"{key}:"))
        assert f"line {row}," in str(refused) or f"line {row + 1}," in str(refused), str(refused)


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        (
            "name: x\nname: y\nsteps: [{id: a, type: agent, goal: g}]\n",
            "line 2, column 1: key 'name' appears twice",
        ),
        ("name: x\nsteps: " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper than 64 levels"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"a{i}: &a{i} [{', '.join(['*a' + ('' if i == 1 else str(i - 1))] * 10)}]\n"
                for i in range(1, 7)
            )
            + "name: x\nsteps: []\n",
            "more than 100000 values once aliases are expanded",
        ),
        (
            "name: x\nsteps: [{id: a, type: agent, goal: g, max_rounds: " + "9" * 5000 + "}]\n",
            "not valid YAML",
        ),
        ("name: !!python/object/apply:os.system [echo]\nsteps: []\n", "not valid YAML"),
    ],
)
def test_hostile_yaml_is_refused_quickly_with_where(tmp_path: Path, text: str, fault: str) -> None:
    for path, load, error in [
        (tmp_path / "plan.yaml", load_plan, PlanError),
        (tmp_path / "time.yaml", load_connector, ConfigError),
    ]:
        refused = _load_checked(path, text, load, error)
        assert refused is not None and fault in str(refused), refused


def test_bytes_that_are_not_utf8_are_refused_naming_the_file(tmp_path: Path) -> None:
    loaders: list[tuple[Path, Callable[[Path], object]]] = [
        (tmp_path / "plan.yaml", load_plan),
        (tmp_path / "bytes@1.0.0.contract.yaml", lambda p: load_contract(p, SKILLS)),
        (tmp_path / "time.yaml", load_connector),
    ]
    for path, load in loaders:
        path.write_bytes(b"name: \xff\xfe\n")
        with pytest.raises(OrchestratorError) as refused:
            load(path)
        assert str(refused.value) == f"{path}: not UTF-8 text: byte 6: invalid start byte"


def test_a_broken_condition_is_one_line_naming_its_step(tmp_path: Path) -> None:
    """A CEL parser's multi-line report (message, source line, caret) stays one fault line."""
    plan = (REPO / "workflows/incident_triage.yaml").read_text(encoding="utf-8")
    text, replaced = re.subn(r"(?m)^(\s+when: ).*$", r'\1"((("', plan, count=1)
    assert replaced == 1
    refused = _load_checked(tmp_path / "plan.yaml", text, load_plan, PlanError)
    assert refused is not None and "\n" not in str(refused), refused
    assert re.search(r"line \d+, column \d+: steps\.\d+\.when: .*not a valid CEL", str(refused))
