"""The skill registry, first form: one version per skill name, loaded from a project.

Skills live as Python modules in the project's `skills/` folder; loading imports each file
and collects every `Skill` object defined at module level.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, TypeAlias

from orchestrator.exceptions import SkillDefinitionError, UnknownSkillError
from orchestrator.skills.models import SkillSpec
from orchestrator.skills.skill import Skill

__all__ = ["SkillRegistry"]

AnySkill: TypeAlias = Skill[Any, Any]
"""The registry holds skills of every input and output type."""


class SkillRegistry:
    """Skills by name."""

    def __init__(self, skills: list[AnySkill] | None = None) -> None:
        self._skills: dict[str, AnySkill] = {}
        self._tools: dict[str, str] = {}
        for item in skills or []:
            self.register(item)

    def register(self, item: AnySkill) -> None:
        """Add a skill.

        Raises:
            SkillDefinitionError: the name, or the tool name the model would see, is taken.
        """
        name = item.spec.name
        if name in self._skills:
            other = self._skills[name].module
            raise SkillDefinitionError(
                f"{item.module}: skill {name!r} is already defined in {other}"
            )
        tool = item.spec.tool_name
        if tool in self._tools:
            raise SkillDefinitionError(
                f"{item.module}: skill {name!r} would be offered to models as {tool!r},"
                f" which {self._tools[tool]!r} already is"
            )
        self._skills[name] = item
        self._tools[tool] = name

    def get(self, name: str) -> AnySkill:
        """The skill called `name`.

        Raises:
            UnknownSkillError: no such skill; the message lists the known ones.
        """
        try:
            return self._skills[name]
        except KeyError:
            known = ", ".join(sorted(self._skills)) or "none"
            raise UnknownSkillError(f"unknown skill {name!r} (registered: {known})") from None

    def specs(self, names: list[str]) -> list[SkillSpec]:
        """Specs of the named skills, in order."""
        return [self.get(name).spec for name in names]

    def names(self) -> list[str]:
        """Registered skill names, sorted."""
        return sorted(self._skills)

    def __len__(self) -> int:
        return len(self._skills)

    @classmethod
    def load_directory(cls, directory: Path) -> SkillRegistry:
        """Import every `*.py` file in `directory` (not starting with `_`) and collect its skills.

        Raises:
            SkillDefinitionError: a file fails to import, or defines a skill badly.
        """
        registry = cls()
        if not directory.is_dir():
            return registry
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            module_name = f"orchestrator_project_skills.{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise SkillDefinitionError(f"{path}: cannot be imported")
            module = sys.modules.get(module_name)
            if module is None or getattr(module, "__file__", None) != str(path):
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
            for value in vars(module).values():
                if isinstance(value, Skill):
                    registry.register(value)
        return registry
