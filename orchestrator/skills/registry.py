"""The skill registry: every version of every skill in a project, side by side.

A session resolves the versions it will use once, at its start (`resolve_refs`), and keeps
the resolved specs in its history; a worker holding several versions then runs exactly
the version a session recorded (`get(name, version)`), so deploying 2.2.0 never changes a
session that started on 2.1.0.

Contracts written by `orchestrator connectors sync` (`skills/mcp/**`) are data, bound to
no Python code, so a registry loaded from a folder picks their changes up while it runs:
`refresh()` compares their files' stats with the last read and, when they changed, reads
them again. It is called where a new session chooses its versions (the start activity,
the MCP server's listing and calls, the catalog), never for a running session's call,
which asks for the exact version it recorded; versions are added or replaced, never
removed, so a session keeps what it pinned. A synced file that fails to load leaves the
registry as it was and is logged once, naming the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeAlias

from orchestrator.exceptions import SkillDefinitionError, UnknownSkillError
from orchestrator.logs import get_logger
from orchestrator.skills.loader import CONTRACT_GLOBS, load_contract, load_project_skills
from orchestrator.skills.models import SkillSpec
from orchestrator.skills.semver import Version, VersionRange, parse_ref, parse_version
from orchestrator.skills.skill import Skill

__all__ = ["SYNCED_FOLDER", "AnySkill", "SkillRegistry"]

AnySkill: TypeAlias = Skill[Any, Any]
"""The registry holds skills of every input and output type."""

log = get_logger(__name__)

SYNCED_FOLDER = "mcp"
"""Where `connectors sync` writes contracts, under `skills/`; `refresh()` watches it."""

_Stamp: TypeAlias = tuple[tuple[str, int, int, int], ...]


def _synced_files(skills_dir: Path) -> list[Path]:
    folder = skills_dir / SYNCED_FOLDER
    if not folder.is_dir():
        return []
    return sorted({p for glob in CONTRACT_GLOBS for p in folder.rglob(glob)})


def _stamp(paths: Iterable[Path]) -> _Stamp:
    """Each file's path, modification time, size and inode: what a rewrite changes."""
    stamps = []
    for path in paths:
        try:
            found = os.stat(path)
        except FileNotFoundError:
            continue
        stamps.append((str(path), found.st_mtime_ns, found.st_size, found.st_ino))
    return tuple(stamps)


class SkillRegistry:
    """Skill versions by name and version."""

    def __init__(self, skills: Iterable[AnySkill] | None = None) -> None:
        self._versions: dict[str, dict[Version, AnySkill]] = {}
        self._tools: dict[str, str] = {}
        for item in skills or []:
            self.register(item)
        self._skills_dir: Path | None = None
        self._synced: _Stamp = ()
        self._refused: _Stamp | None = None

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

        An exact version not registered yet is looked for once more after `refresh()`:
        a session started by another process after a sync asks for it.

        Raises:
            UnknownSkillError: no such skill or version, naming what there is.
        """
        if version is None:
            return self.resolve(name)
        wanted = _exact(version)
        for attempt in range(2):
            found = self._versions.get(name, {}).get(wanted) if wanted is not None else None
            if found is not None:
                return found
            # A version another process resolved after a sync: read the synced files once.
            if attempt or not self.refresh():
                break
        self.versions(name)  # an unknown name: say which there are
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

        The registry watches the folder's synced contracts (`refresh`).

        Raises:
            SkillDefinitionError: any file is malformed, or two declare one version.
        """
        stamp = _stamp(_synced_files(directory))  # before reading: a later write shows
        registry = cls(load_project_skills(directory))
        registry._skills_dir, registry._synced = directory, stamp
        return registry

    def refresh(self) -> bool:
        """Read the synced contracts again if their files changed; whether anything did.

        Costs one `stat` per synced file when nothing changed. New versions are added
        and re-read files replace their own versions (a deprecation, an edited risk);
        a version whose file is gone stays. When any synced file fails to load, or
        declares a version another file holds, nothing changes and the fault is logged
        once per state of the files.
        """
        if self._skills_dir is None:
            return False
        paths = _synced_files(self._skills_dir)
        stamp = _stamp(paths)
        if stamp in (self._synced, self._refused):
            return False
        try:
            versions, tools = self._with([load_contract(p, self._skills_dir) for p in paths])
        except SkillDefinitionError as exc:
            self._refused = stamp
            log.error(
                "synced skill contracts not reloaded; the registry keeps the ones it has",
                folder=str(self._skills_dir / SYNCED_FOLDER),
                error=str(exc),
            )
            return False
        self._versions, self._tools, self._synced, self._refused = versions, tools, stamp, None
        log.info("synced skill contracts reloaded", folder=str(self._skills_dir / SYNCED_FOLDER))
        return True

    def _with(
        self, loaded: list[AnySkill]
    ) -> tuple[dict[str, dict[Version, AnySkill]], dict[str, str]]:
        """This registry's tables with `loaded` added, each replacing its own file's version.

        Raises:
            SkillDefinitionError: a version is held by another file, or a tool name by
                another skill.
        """
        versions = {name: dict(found) for name, found in self._versions.items()}
        tools = dict(self._tools)
        for item in loaded:
            spec = item.spec
            found = versions.setdefault(spec.name, {})
            version = parse_version(spec.version)
            held = found.get(version)
            if held is not None and held.spec.source != spec.source:
                raise SkillDefinitionError(
                    f"{item.module}: version: skill {spec.ref} is already defined in {held.module}"
                )
            owner = tools.get(spec.tool_name)
            if owner is not None and owner != spec.name:
                raise SkillDefinitionError(
                    f"{item.module}: name: skill {spec.name!r} would be offered to models as"
                    f" {spec.tool_name!r}, which {owner!r} already is"
                )
            found[version] = item
            tools[spec.tool_name] = spec.name
        return versions, tools


def _exact(version: str) -> Version | None:
    try:
        return parse_version(version)
    except ValueError:
        return None


def _parse(ref: str) -> tuple[str, VersionRange]:
    try:
        return parse_ref(ref)
    except ValueError as exc:
        raise UnknownSkillError(str(exc)) from None
