"""The compatibility check: what changed between two versions of a skill, against its bump.

A change is breaking when a caller or a running plan that worked with the old version can
fail, or be put at more risk, with the new one:

- input: a field removed (unknown fields are refused), retyped or narrowed (fewer types or
  enum values, tighter bounds, a new pattern); a new required field; an optional field
  made required. Compatible: a new optional field, wider types or values.
- output: a field removed, retyped or widened (new types or enum values); a required field
  made optional. Compatible: a new field, narrower types or values.
- contract: a higher risk level; stricter approval (none to a condition or always, a
  condition to always); no longer idempotent. Compatible: lower risk, looser approval,
  another timeout or retry policy.

A breaking change needs a major bump (under 0.x, a minor bump); under a minor or patch bump
it fails the check.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.skills.models import SkillSpec
from orchestrator.skills.semver import Version, parse_version
from orchestrator.types import JsonObject, JsonValue

__all__ = ["Bump", "Change", "VersionCheck", "bump_of", "check_versions", "compare"]

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


class Bump(StrEnum):
    """The kind of a version step, as semantic versioning reads it."""

    MAJOR = "major"
    MINOR = "minor"
    PATCH = "patch"


def bump_of(old: Version, new: Version) -> Bump:
    """The bump from `old` to `new`; under 0.x a minor bump may break, as a major does."""
    if new.major != old.major or (new.major == 0 and new.minor != old.minor):
        return Bump.MAJOR
    return Bump.MINOR if new.minor != old.minor else Bump.PATCH


@dataclass(frozen=True)
class Change:
    """One difference between two versions."""

    kind: str
    where: str
    message: str
    breaking: bool


@dataclass
class VersionCheck:
    """One version compared with the one before it."""

    name: str
    old: str
    new: str
    bump: Bump
    changes: list[Change] = field(default_factory=list)

    @property
    def breaking(self) -> list[Change]:
        """The breaking changes."""
        return [c for c in self.changes if c.breaking]

    @property
    def ok(self) -> bool:
        """False when a breaking change comes under a minor or patch bump."""
        return self.bump is Bump.MAJOR or not self.breaking


def check_versions(specs: list[SkillSpec]) -> list[VersionCheck]:
    """Compare each version of each skill with the one before it."""
    by_name: dict[str, list[SkillSpec]] = {}
    for spec in specs:
        by_name.setdefault(spec.name, []).append(spec)
    checks = []
    for name in sorted(by_name):
        ordered = sorted(by_name[name], key=lambda s: parse_version(s.version))
        for old, new in itertools.pairwise(ordered):
            bump = bump_of(parse_version(old.version), parse_version(new.version))
            checks.append(VersionCheck(name, old.version, new.version, bump, compare(old, new)))
    return checks


def compare(old: SkillSpec, new: SkillSpec) -> list[Change]:
    """Every difference between two versions of one skill that the check knows."""
    changes: list[Change] = []
    _Schemas(old.input_schema, new.input_schema, "input", changes).object(
        old.input_schema, new.input_schema, "input"
    )
    _Schemas(old.output_schema, new.output_schema, "output", changes).object(
        old.output_schema, new.output_schema, "output"
    )
    changes.extend(_contract_changes(old, new))
    return changes


def _approval_level(spec: SkillSpec) -> int:
    if spec.requires_approval:
        return 2
    return 1 if spec.approval_condition else 0


def _contract_changes(old: SkillSpec, new: SkillSpec) -> list[Change]:
    changes = []
    if new.risk.rank != old.risk.rank:
        higher = new.risk.rank > old.risk.rank
        changes.append(
            Change(
                "higher risk" if higher else "lower risk",
                "risk",
                f"risk level {old.risk.value} -> {new.risk.value}",
                breaking=higher,
            )
        )
    before, after = _approval_level(old), _approval_level(new)
    if before != after or old.approval_condition != new.approval_condition:
        names = {0: "none", 1: "when ", 2: "always"}
        changes.append(
            Change(
                "stricter approval" if after > before else "approval changed",
                "approval",
                f"approval {names[before]}{old.approval_condition or ''}"
                f" -> {names[after]}{new.approval_condition or ''}",
                breaking=after > before,
            )
        )
    if old.idempotent and not new.idempotent:
        changes.append(
            Change("no longer idempotent", "idempotency", "idempotent true -> false", True)
        )
    return changes


class _Schemas:
    """Walks two JSON Schemas side by side; `role` says which way is narrower."""

    def __init__(self, old: JsonObject, new: JsonObject, role: str, out: list[Change]) -> None:
        self.old_defs = _defs(old)
        self.new_defs = _defs(new)
        self.input = role == "input"
        self.out = out

    def add(self, kind: str, where: str, message: str, breaking: bool) -> None:
        self.out.append(Change(kind, where, message, breaking))

    def object(self, old: JsonObject, new: JsonObject, where: str) -> None:
        old_props, new_props = _props(old), _props(new)
        old_req, new_req = _required(old), _required(new)
        for name, old_field in old_props.items():
            path = f"{where}.{name}"
            if name not in new_props:
                self.add("removed field", path, f"{path} was removed", True)
                continue
            self.field(old_field, new_props[name], path)
            if self.input and name in new_req and name not in old_req:
                self.add("became required", path, f"{path} is now required", True)
            if not self.input and name in old_req and name not in new_req:
                self.add("may be missing", path, f"{path} is no longer always present", True)
        for name in new_props.keys() - old_props.keys():
            path = f"{where}.{name}"
            if self.input and name in new_req:
                self.add("new required input", path, f"{path} is new and required", True)
            else:
                self.add("new field", path, f"{path} is new", False)

    def field(self, old: JsonValue, new: JsonValue, where: str) -> None:
        old_s, new_s = _resolve(old, self.old_defs), _resolve(new, self.new_defs)
        old_t, new_t = _types(old_s, self.old_defs), _types(new_s, self.new_defs)
        wide, narrow = (new_t, old_t) if self.input else (old_t, new_t)
        if not _covers(wide, narrow):
            self.add(
                "retyped",
                where,
                f"{where} type {'|'.join(sorted(old_t))} -> {'|'.join(sorted(new_t))}",
                True,
            )
            return
        old_v, new_v = _values(old_s, self.old_defs), _values(new_s, self.new_defs)
        wide_v, narrow_v = (new_v, old_v) if self.input else (old_v, new_v)
        if wide_v is not None and (narrow_v is None or not narrow_v <= wide_v):
            self.add(
                "narrower input" if self.input else "wider output",
                where,
                f"{where} allowed values {_show(old_v)} -> {_show(new_v)}",
                True,
            )
        if self.input:
            self.bounds(old_s, new_s, where)
        old_o, new_o = (
            _member(old_s, "object", self.old_defs),
            _member(new_s, "object", self.new_defs),
        )
        if old_o is not None and new_o is not None:
            self.object(old_o, new_o, where)
        old_a, new_a = (
            _member(old_s, "array", self.old_defs),
            _member(new_s, "array", self.new_defs),
        )
        if old_a is not None and new_a is not None:
            self.field(old_a.get("items", {}), new_a.get("items", {}), f"{where}[]")

    def bounds(self, old: JsonObject, new: JsonObject, where: str) -> None:
        for key in (*_LOWER_BOUNDS, *_UPPER_BOUNDS, "pattern"):
            before, after = old.get(key), new.get(key)
            if after is None or after == before:
                continue
            tighter = (
                before is None
                or key == "pattern"
                or (key in _LOWER_BOUNDS and _num(after) > _num(before))
                or (key in _UPPER_BOUNDS and _num(after) < _num(before))
            )
            if tighter:
                self.add("narrower input", where, f"{where} {key} {before} -> {after}", True)


def _num(value: JsonValue) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _defs(schema: JsonObject) -> JsonObject:
    defs = schema.get("$defs", {})
    return defs if isinstance(defs, dict) else {}


def _resolve(schema: JsonValue, defs: JsonObject) -> JsonObject:
    node = schema if isinstance(schema, dict) else {}
    seen = 0
    while isinstance(node.get("$ref"), str) and seen < 32:
        target = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**(target if isinstance(target, dict) else {}), **rest}
        seen += 1
    return node


def _members(schema: JsonObject) -> list[JsonValue] | None:
    for key in ("anyOf", "oneOf"):
        value = schema.get(key)
        if isinstance(value, list):
            return value
    return None


def _member(schema: JsonObject, kind: str, defs: JsonObject) -> JsonObject | None:
    """The schema itself, or its one union member, when it describes an object or array."""
    members = _members(schema)
    if members is None:
        return schema if _types(schema, defs) == {kind} else None
    found = [r for r in (_resolve(m, defs) for m in members) if _types(r, defs) == {kind}]
    return found[0] if len(found) == 1 else None


def _types(schema: JsonObject, defs: JsonObject) -> set[str]:
    members = _members(schema)
    if members is not None:
        return set().union(*(_types(_resolve(m, defs), defs) for m in members))
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {str(t) for t in declared}
    values = _values(schema, defs)
    if values is not None:
        return {_json_type(json.loads(v)) for v in values}
    return {"object"} if "properties" in schema else {"any"}


def _values(schema: JsonObject, defs: JsonObject) -> set[str] | None:
    """The allowed values (as canonical JSON) when the schema lists them, else None."""
    if "const" in schema:
        return {json.dumps(schema["const"], sort_keys=True)}
    enum = schema.get("enum")
    if isinstance(enum, list):
        return {json.dumps(v, sort_keys=True) for v in enum}
    members = _members(schema)
    if members is None:
        return None
    found: set[str] = set()
    for member in members:
        resolved = _resolve(member, defs)
        if resolved.get("type") == "null":
            found.add("null")
            continue
        values = _values(resolved, defs)
        if values is None:
            return None
        found |= values
    return found


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def _covers(wide: set[str], narrow: set[str]) -> bool:
    if "any" in wide:
        return True
    return all(t in wide or (t == "integer" and "number" in wide) for t in narrow)


def _show(values: set[str] | None) -> str:
    return "any" if values is None else "{" + ", ".join(sorted(values)) + "}"


def _props(schema: JsonObject) -> JsonObject:
    props = schema.get("properties", {})
    return props if isinstance(props, dict) else {}


def _required(schema: JsonObject) -> set[str]:
    required = schema.get("required", [])
    return {str(r) for r in required} if isinstance(required, list) else set()
