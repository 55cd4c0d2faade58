"""The skill registry: every version of every skill in a project, side by side.

A session resolves the versions it will use once, at its start (`resolve_refs`), and keeps
the resolved specs in its history; a worker holding several versions then runs exactly
the version a session recorded (`get(name, version)`), so deploying 2.2.0 never changes a
session that started on 2.1.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeAlias

from orchestrator.exceptions import SkillDefinitionError, UnknownSkillError
from orchestrator.skills.loader import load_project_skills
from orchestrator.skills.models import SkillSpec
from orchestrator.skills.semver import Version, VersionRange, parse_ref, parse_version
from orchestrator.skills.skill import Skill

__all__ = ["AnySkill", "SkillRegistry"]

AnySkill: TypeAlias = Skill[Any, Any]
"""The registry holds skills of every input and output type."""


class SkillRegistry:
    """Skill versions by name and version."""

    def __init__(self, skills: Iterable[AnySkill] | None = None) -> None:
        self._versions: dict[str, dict[Version, AnySkill]] = {}
        self._tools: dict[str, str] = {}
        for item in skills or []:
            self.register(item)

    def register(self, item: AnySkill) -> None:
        """Add a skill version.

        Raises:
            SkillDefinitionError: the version is already registered, or the tool name the
                model would see belongs to another skill.
        """
        spec = item.spec
        versions = self._versions.setdefault(spec.name, {})
        version = parse_version(spec.version)
        if version in versions:
            raise SkillDefinitionError(
                f"{item.module}: version: skill {spec.ref} is already defined in"
                f" {versions[version].module}"
            )
        tool = spec.tool_name
        owner = self._tools.get(tool)
        if owner is not None and owner != spec.name:
            if not versions:
                del self._versions[spec.name]
            raise SkillDefinitionError(
                f"{item.module}: name: skill {spec.name!r} would be offered to models as"
                f" {tool!r}, which {owner!r} already is"
            )
        versions[version] = item
        self._tools[tool] = spec.name

    def versions(self, name: str) -> list[AnySkill]:
        """Every registered version of `name`, oldest first.

        Raises:
            UnknownSkillError: no such skill; the message lists the known ones.
        """
        try:
            found = self._versions[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownSkillError(f"unknown skill {name!r} (registered: {known})") from None
        return [found[v] for v in sorted(found)]

    def get(self, name: str, version: str | None = None) -> AnySkill:
        """Exactly `name@version`, or the latest non-deprecated version when none is given.

        Raises:
            UnknownSkillError: no such skill or version, naming what there is.
        """
        if version is None:
            return self.resolve(name)
        for item in self.versions(name):
            if item.spec.version == version:
                return item
        raise UnknownSkillError(
            f"skill {name}@{version} is not registered (versions: {self._listing(name)})"
        )

    def resolve(self, ref: str) -> AnySkill:
        """The version a reference like `payments.refund@^2.1` asks for.

        The highest matching version that is not deprecated; a deprecated one only when
        nothing else matches and the reference names a range.

        Raises:
            UnknownSkillError: the reference is malformed, or no version matches.
        """
        name, wanted = _parse(ref)
        return self._pick(name, [wanted], ref)

    def resolve_refs(self, refs: Iterable[str]) -> list[SkillSpec]:
        """One spec per skill named in `refs`, matching every range given for it.

        A session uses one version of each skill, so two steps asking for
        `tickets.get@^1.0` and `tickets.get@~1.1` get the highest version in both.

        Raises:
            UnknownSkillError: a reference is malformed, or no version fits all its ranges.
        """
        ranges: dict[str, list[VersionRange]] = {}
        texts: dict[str, list[str]] = {}
        for ref in refs:
            name, wanted = _parse(ref)
            ranges.setdefault(name, []).append(wanted)
            texts.setdefault(name, []).append(ref)
        return [
            self._pick(name, wanted, " and ".join(dict.fromkeys(texts[name]))).spec
            for name, wanted in ranges.items()
        ]

    def names(self) -> list[str]:
        """Registered skill names, sorted."""
        return sorted(self._versions)

    def all(self) -> list[AnySkill]:
        """Every registered version, by name and then oldest first."""
        return [item for name in self.names() for item in self.versions(name)]

    def __len__(self) -> int:
        return len(self._versions)

    def _pick(self, name: str, wanted: list[VersionRange], ref: str) -> AnySkill:
        matching = [
            item
            for item in self.versions(name)
            if all(parse_version(item.spec.version) in r for r in wanted)
        ]
        current = [item for item in matching if not item.spec.deprecated]
        if current:
            return current[-1]
        if matching and any(str(r) != "*" for r in wanted):
            return matching[-1]
        if matching:
            raise UnknownSkillError(
                f"every version of {name} is deprecated ({self._listing(name)});"
                f" name one explicitly, e.g. {name}@{matching[-1].spec.version}"
            )
        raise UnknownSkillError(
            f"no version of {name} matches {ref!r} (versions: {self._listing(name)})"
        )

    def _listing(self, name: str) -> str:
        return ", ".join(
            item.spec.version + (" (deprecated)" if item.spec.deprecated else "")
            for item in self.versions(name)
        )

    @classmethod
    def load_directory(cls, directory: Path) -> SkillRegistry:
        """Load a project's `skills/` folder: contract files and `@skill` modules.

        Raises:
            SkillDefinitionError: any file is malformed, or two declare one version.
        """
        return cls(load_project_skills(directory))


def _parse(ref: str) -> tuple[str, VersionRange]:
    try:
        return parse_ref(ref)
    except ValueError as exc:
        raise UnknownSkillError(str(exc)) from None
