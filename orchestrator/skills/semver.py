"""Semantic versions and the ranges plans ask for, npm-style.

Only `MAJOR.MINOR.PATCH` is a version (no pre-releases: a skill version is a deployed
contract, not a build). A range is one of:

| range | means |
| --- | --- |
| `2.1.0` | exactly that version |
| `^2.1` / `^2.1.3` | same major, at least 2.1(.3); under 0.x the minor is the major |
| `~1.2` / `~1.2.3` | same major and minor, at least 1.2(.3) |
| `>=1.0,<2` | every comparator holds (`>`, `>=`, `<`, `<=`, `=`), comma or space separated |
| `*` or nothing | any version |

Pure functions only: the workflow sandbox passes this module through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Version", "VersionRange", "parse_ref", "parse_version"]

_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_PARTIAL = re.compile(r"^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?$")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|==|=)?\s*(.+)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class Version(NamedTuple):
    """A `MAJOR.MINOR.PATCH` version; tuples order the way versions do."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_version(text: str) -> Version:
    """Parse `MAJOR.MINOR.PATCH`.

    Raises:
        ValueError: anything else, with the text quoted.
    """
    match = _VERSION.match(text.strip())
    if not match:
        raise ValueError(f"version {text!r} must be MAJOR.MINOR.PATCH, e.g. 1.2.0")
    return Version(*(int(part) for part in match.groups()))


def _partial(text: str, whole: str) -> tuple[int, int | None, int | None]:
    match = _PARTIAL.match(text.strip())
    if not match:
        raise ValueError(f"version range {whole!r}: {text!r} is not a version")
    major, minor, patch = match.groups()
    return int(major), None if minor is None else int(minor), None if patch is None else int(patch)


@dataclass(frozen=True)
class VersionRange:
    """A set of versions: `lower <= v < upper` (either side open), plus exclusions."""

    text: str
    lower: Version | None = None
    lower_inclusive: bool = True
    upper: Version | None = None
    upper_inclusive: bool = False

    def __contains__(self, version: Version) -> bool:
        if self.lower is not None and (
            version < self.lower or (version == self.lower and not self.lower_inclusive)
        ):
            return False
        return self.upper is None or (
            version < self.upper or (version == self.upper and self.upper_inclusive)
        )

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Parse a range (see the module docstring).

        Raises:
            ValueError: the range is malformed or empty, naming it.
        """
        spec = text.strip()
        if spec in ("", "*"):
            return cls("*")
        if spec[0] in "^~":
            return cls._prefixed(spec)
        parts = [p for p in re.split(r"[,\s]+", spec) if p]
        if len(parts) == 1 and _PARTIAL.match(parts[0]):
            return cls._exact(spec)
        result = cls(spec)
        for part in parts:
            result = result._and(part)
        low, high = result.lower, result.upper
        if low and high and (low > high or (low == high and low not in result)):
            raise ValueError(f"version range {spec!r} matches no version")
        return result

    @classmethod
    def _exact(cls, spec: str) -> VersionRange:
        major, minor, patch = _partial(spec, spec)
        if minor is None:
            return cls(spec, Version(major, 0, 0), True, Version(major + 1, 0, 0))
        if patch is None:
            return cls(spec, Version(major, minor, 0), True, Version(major, minor + 1, 0))
        exact = Version(major, minor, patch)
        return cls(spec, exact, True, exact, True)

    @classmethod
    def _prefixed(cls, spec: str) -> VersionRange:
        major, minor, patch = _partial(spec[1:], spec)
        lower = Version(major, minor or 0, patch or 0)
        if spec[0] == "~":
            upper = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
        elif major > 0 or minor is None:
            upper = Version(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            upper = Version(0, minor + 1, 0)
        else:
            upper = Version(0, 0, (patch or 0) + 1)
        return cls(spec, lower, True, upper, False)

    def _and(self, part: str) -> VersionRange:
        match = _COMPARATOR.match(part)
        if not match or not match.group(1):
            raise ValueError(
                f"version range {self.text!r}: {part!r} must start with >=, >, <=, < or ="
            )
        op, rest = match.groups()
        major, minor, patch = _partial(rest, self.text)
        bound = Version(major, minor or 0, patch or 0)
        lower, lower_inc, upper, upper_inc = (
            self.lower,
            self.lower_inclusive,
            self.upper,
            self.upper_inclusive,
        )
        if op in (">", ">=", "=", "=="):
            inclusive = op != ">"
            if lower is None or bound > lower or (bound == lower and not inclusive):
                lower, lower_inc = bound, inclusive
        if op in ("<", "<=", "=", "=="):
            inclusive = op != "<"
            if upper is None or bound < upper or (bound == upper and not inclusive):
                upper, upper_inc = bound, inclusive
        return VersionRange(self.text, lower, lower_inc, upper, upper_inc)


def parse_ref(ref: str) -> tuple[str, VersionRange]:
    """Split `payments.refund@^2.1` into the skill name and its range (`*` when absent).

    Raises:
        ValueError: the name or the range is malformed.
    """
    name, _, spec = ref.partition("@")
    name = name.strip()
    if not _NAME.match(name):
        raise ValueError(f"skill {ref!r}: name {name!r} must be dotted lowercase")
    if "@" in ref and not spec.strip():
        raise ValueError(f"skill {ref!r}: nothing after '@'; give a range or drop the '@'")
    return name, VersionRange.parse(spec)
