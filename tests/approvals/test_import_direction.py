"""The approvals domain and the session engine depend on each other one way only.

The session imports the approvals domain (its payloads, rules and binding hash); nothing
in `orchestrator.approvals` imports `orchestrator.session`. Read from the source with
`ast`, every import counted (inside functions and under `TYPE_CHECKING` too), so a
cycle cannot hide behind a lazy import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import orchestrator

ROOT = Path(orchestrator.__file__).parent


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = ["orchestrator", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The orchestrator modules `name` imports (a `from pkg import sub` counts as `pkg.sub`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _in(package: str, module: str) -> bool:
    return module == package or module.startswith(package + ".")


def _reach(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_graph_is_read() -> None:
    """A guard for the guard: the walk finds the imports that are known to exist."""
    assert "orchestrator.approvals.rules" in GRAPH["orchestrator.session.approval_gate"]
    assert "orchestrator.approvals.types" in GRAPH["orchestrator.session.types"]
    assert "orchestrator.names" in GRAPH["orchestrator.approvals.delegation"]


def test_no_approvals_module_imports_the_session() -> None:
    offenders = {
        name: sorted(m for m in imported if _in("orchestrator.session", m))
        for name, imported in GRAPH.items()
        if _in("orchestrator.approvals", name)
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_what_the_session_uses_of_approvals_never_leads_back_to_it() -> None:
    """No package cycle: the approvals modules the session reaches reach no session module.

    (The surfaces, `api` and `inbox`, reach the session through `orchestrator.service`, a
    layer above both; the session never reaches them.)
    """
    session = [m for m in GRAPH if _in("orchestrator.session", m)]
    used = {m for s in session for m in _reach(s) if _in("orchestrator.approvals", m)}
    back = {m: sorted(s for s in _reach(m) if _in("orchestrator.session", s)) for m in used}
    assert {m: found for m, found in back.items() if found} == {}
    assert "orchestrator.approvals.rules" in used


def test_the_rules_depend_on_no_surface() -> None:
    """The pure rules import only payloads, people and errors: no I/O, no Temporal client."""
    assert GRAPH["orchestrator.approvals.rules"] <= {
        "orchestrator.approvals.people",
        "orchestrator.approvals.types",
        "orchestrator.exceptions",
    }
