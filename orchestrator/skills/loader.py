"""Load a project's skills: contract files and the Python modules they bind to.

`skills/**/*.contract.yaml` files each declare one skill version; `implementation:
mcp:connector/tool` binds a tool of a connector's MCP server (`orchestrator.connectors`),
and `implementation: python:module:function` names a module relative to `skills/` (`payments` is
`skills/payments.py`, `payments.refund` is `skills/payments/refund.py`) or, failing that, an
importable module. Top-level `skills/*.py` files are imported too, and any `@skill` object
in them registers as well. Every fault of every file is reported at once, one line each,
naming the file, the line and column, and the field.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from orchestrator._fields import field_path
from orchestrator._yaml import YamlFault, parse, where
from orchestrator.exceptions import SkillDefinitionError
from orchestrator.skills.contract import Contract
from orchestrator.skills.skill import Skill, bind

__all__ = ["CONTRACT_GLOBS", "import_skill_module", "load_contract", "load_project_skills"]

CONTRACT_GLOBS = ("*.contract.yaml", "*.contract.yml")
_PACKAGE = "orchestrator_project_skills"


def import_skill_module(path: Path, module_name: str) -> ModuleType:
    """Import a project file under `module_name`, once per file.

    Raises:
        SkillDefinitionError: the file fails to import, naming it and the error.
    """
    module = sys.modules.get(module_name)
    if module is not None and getattr(module, "__file__", None) == str(path):
        return module
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SkillDefinitionError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SkillDefinitionError:
        raise
    except Exception as exc:
        del sys.modules[module_name]
        raise SkillDefinitionError(
            f"{path}: failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _python_target(implementation: str, skills_dir: Path) -> Any:
    _kind, module_path, attr = implementation.split(":")
    relative = Path(*module_path.split("."))
    for candidate in (skills_dir / f"{relative}.py", skills_dir / relative / "__init__.py"):
        if candidate.is_file():
            module = import_skill_module(candidate, f"{_PACKAGE}.{module_path}")
            break
    else:
        try:
            module = importlib.import_module(module_path)
        except ImportError:
            raise ValueError(
                f"module {module_path!r} is neither {relative}.py under {skills_dir} nor importable"
            ) from None
    if not hasattr(module, attr):
        raise ValueError(f"module {module_path!r} has no {attr!r}")
    target = getattr(module, attr)
    if isinstance(target, Skill):
        raise ValueError(f"{module_path}.{attr} is a @skill; a contract binds a plain function")
    if not callable(target):
        raise ValueError(f"{module_path}.{attr} is not a function")
    return target


def load_contract(path: Path, skills_dir: Path) -> Skill[Any, Any]:
    """Parse one contract file and bind it to its implementation.

    Raises:
        SkillDefinitionError: one line per fault: `file: line L, column C: field: message`.
    """
    try:
        raw, found = parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SkillDefinitionError(f"{path}: cannot read contract: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SkillDefinitionError(
            f"{path}: not UTF-8 text: byte {exc.start}: {exc.reason}"
        ) from None
    except YamlFault as exc:
        raise SkillDefinitionError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise SkillDefinitionError(f"{path}: a contract must be a YAML mapping")
    try:
        contract = Contract.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {where(found, loc)}: {field_path(loc)}: {message}")
        raise SkillDefinitionError("\n".join(lines)) from exc
    at = f"{path}: {where(found, ['implementation'])}: implementation"
    relative = (
        path.relative_to(skills_dir.parent) if path.is_relative_to(skills_dir.parent) else path
    )
    if contract.implementation.startswith("mcp:"):
        if contract.mcp is None:
            raise SkillDefinitionError(
                f"{at}: {contract.implementation!r}: an MCP-bound contract needs its pinned"
                " tool definition (mcp:); run `orchestrator connectors sync`"
            )
        # Imported here: the connectors package builds on this one.
        from orchestrator.connectors.binding import bind_mcp

        return bind_mcp(contract, project_dir=skills_dir.parent, source=str(relative))
    try:
        fn = _python_target(contract.implementation, skills_dir)
    except ValueError as exc:
        raise SkillDefinitionError(f"{at}: {exc}") from None
    bound = bind(contract, fn, source=str(path), locate=lambda f: where(found, f.split(".")))
    # The catalog names the file relative to the project, not where the server keeps it.
    return dataclasses.replace(bound, spec=bound.spec.model_copy(update={"source": str(relative)}))


def load_project_skills(skills_dir: Path) -> list[Skill[Any, Any]]:
    """Every skill of a project's `skills/` folder: contracts first, then `@skill` objects.

    Raises:
        SkillDefinitionError: every fault of every file, one line each.
    """
    if not skills_dir.is_dir():
        return []
    skills: list[Skill[Any, Any]] = []
    faults: list[str] = []
    contracts = sorted({p for glob in CONTRACT_GLOBS for p in skills_dir.rglob(glob)})
    for path in contracts:
        try:
            skills.append(load_contract(path, skills_dir))
        except SkillDefinitionError as exc:
            faults.append(str(exc))
    for path in sorted(skills_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            module = import_skill_module(path, f"{_PACKAGE}.{path.stem}")
        except SkillDefinitionError as exc:
            faults.append(str(exc))
            continue
        skills.extend(value for value in vars(module).values() if isinstance(value, Skill))
    if faults:
        raise SkillDefinitionError("\n".join(faults))
    return skills
