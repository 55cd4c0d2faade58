"""Who may decide approval requests: the project's `approvers.yaml`.

The file names people, the groups they belong to, a password hash for the inbox and
hashed API tokens for the HTTP API, and which group decides which skill. Nothing secret
is stored in clear: passwords use scrypt with a per-password salt, tokens (long random
strings) a SHA-256 digest. The group that decides a request is chosen from this file and
the request's skill, never by the model; the model has no credential at all.

```yaml
groups: [support-leads, finance]
policy:
  default_group: support-leads
  skills: {payments.refund: finance}
users:
  maria:
    groups: [finance]
    password: scrypt$16384$8$1$<salt>$<hash>
    tokens: [sha256:<hex digest>]
```
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator._yaml import YamlFault, parse, where
from orchestrator.approvals.notify.config import Notifications
from orchestrator.exceptions import ConfigError
from orchestrator.store.records import ApprovalRecord, SessionRecord

__all__ = [
    "Approver",
    "ApproverDirectory",
    "GroupPolicy",
    "approvers_file",
    "hash_password",
    "hash_token",
    "load_approvers",
    "new_token",
    "sees_session",
    "verify_password",
]

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """An scrypt hash of `password` in the form the approvers file stores."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches an scrypt hash; False for any malformed hash."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.urlsafe_b64decode(salt_b64)
        expected = base64.urlsafe_b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def hash_token(token: str) -> str:
    """The stored form of an API token (tokens are random, so a plain digest suffices)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh API token to hand to a person once; store only `hash_token` of it."""
    return "apt_" + secrets.token_urlsafe(32)


class Approver(BaseModel):
    """One person who may decide requests of their groups."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    groups: tuple[str, ...] = ()
    password: str | None = None
    """An scrypt hash (`hash_password`); None: no inbox login."""
    tokens: tuple[str, ...] = ()
    """`sha256:` digests of the person's API tokens (`hash_token`)."""
    tenants: tuple[str, ...] | None = None
    """Whose sessions the person may watch (`/api/sessions`); None: every tenant's."""
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    """Where notices of requests waiting for the person go (`notifications.email`)."""

    def sees_tenant(self, tenant: str) -> bool:
        """Whether the person may see a session of `tenant`."""
        return self.tenants is None or tenant in self.tenants


def sees_session(person: Approver, session: SessionRecord | None) -> bool:
    """Whether `person` may see a session (and its requests): one of their tenants'.

    A session with no record has no tenant to check, so only a person who sees every
    tenant sees it; the inbox answers the rest like an unknown request (404).
    """
    if session is None:
        return person.tenants is None
    return person.sees_tenant(session.tenant)


class GroupPolicy(BaseModel):
    """Which group decides a request: by skill, else the default."""

    model_config = ConfigDict(extra="forbid")

    default_group: str | None = None
    skills: dict[str, str] = Field(default_factory=dict)
    """Skill name → the group that decides calls of it."""
    steps: str | None = None
    """The group that decides approval steps of plans (default: `default_group`)."""
    two_person_risks: tuple[str, ...] = ()
    """Risk levels (from skill contracts) that need two distinct people to approve, e.g.
    `[external_side_effect]`; none by default, so a project without the file is unchanged."""
    escalation: dict[str, str] = Field(default_factory=dict)
    """Group → the group a request moves to when nobody decided within the timeout."""
    timeout_seconds: float | None = Field(default=None, gt=0)
    """How long each group has; None waits for ever. After the last, the request expires."""
    webhooks: dict[str, str] = Field(default_factory=dict)
    """Group → URL that is POSTed a JSON notice when a request escalates to the group."""


class ApproverDirectory(BaseModel):
    """The approvers file, checked: every group named is declared."""

    model_config = ConfigDict(extra="forbid")

    groups: tuple[str, ...] = ()
    policy: GroupPolicy = Field(default_factory=GroupPolicy)
    users: dict[str, Approver] = Field(default_factory=dict)
    notifications: Notifications | None = None
    """E-mail and chat notices of waiting requests (`orchestrator.approvals.notify`)."""

    @model_validator(mode="after")
    def _check(self) -> ApproverDirectory:
        known = set(self.groups)
        for name, user in self.users.items():
            unknown = [g for g in user.groups if g not in known]
            if unknown:
                raise ValueError(f"users.{name}: unknown group(s) {', '.join(unknown)}")
            if user.password is not None and not user.password.startswith("scrypt$"):
                raise ValueError(f"users.{name}.password: not an scrypt hash (hash_password)")
            bad = [t for t in user.tokens if not t.startswith("sha256:")]
            if bad:
                raise ValueError(f"users.{name}.tokens: store sha256: digests, not tokens")
        named = [
            self.policy.default_group,
            self.policy.steps,
            *self.policy.skills.values(),
            *self.policy.escalation,
            *self.policy.escalation.values(),
            *self.policy.webhooks,
        ]
        unknown = sorted({g for g in named if g is not None and g not in known})
        if unknown:
            raise ValueError(f"policy: unknown group(s) {', '.join(unknown)}")
        chats = self.notifications.groups_named() if self.notifications else []
        unknown = sorted(g for g in chats if g not in known)
        if unknown:
            raise ValueError(f"notifications.chat: unknown group(s) {', '.join(unknown)}")
        self.users = {n: u.model_copy(update={"name": n}) for n, u in self.users.items()}
        return self

    def by_token(self, token: str) -> Approver | None:
        """The person an API token belongs to, or None."""
        digest = hash_token(token)
        for user in self.users.values():
            if any(hmac.compare_digest(digest, t) for t in user.tokens):
                return user
        return None

    def login(self, name: str, password: str) -> Approver | None:
        """The person if `password` is theirs, else None (same answer for unknown names)."""
        user = self.users.get(name)
        stored = user.password if user else None
        if stored is None:
            verify_password(password, hash_password("x"))  # same cost either way
            return None
        return user if verify_password(password, stored) else None

    def group_for(self, record: ApprovalRecord) -> str | None:
        """The group that first decides `record`, from this file's policy."""
        return self.group_for_skill(record.skill)

    def group_for_skill(self, skill: str | None) -> str | None:
        """The group that first decides a call of `skill` (None: an approval step)."""
        if skill is None:
            return self.policy.steps or self.policy.default_group
        return self.policy.skills.get(skill, self.policy.default_group)

    def chain_after(self, group: str | None) -> list[str]:
        """The groups a request of `group` escalates to, in order (a cycle stops)."""
        chain: list[str] = []
        seen = {group}
        while group in self.policy.escalation:
            group = self.policy.escalation[group]
            if group in seen:
                break
            chain.append(group)
            seen.add(group)
        return chain


def approvers_file(project_dir: Path) -> Path:
    """The approvers file: `ORCHESTRATOR_APPROVERS_FILE`, else `<project>/approvers.yaml`."""
    override = os.environ.get("ORCHESTRATOR_APPROVERS_FILE")
    return Path(override) if override else project_dir / "approvers.yaml"


def load_approvers(path: Path) -> ApproverDirectory:
    """Read an approvers file; a missing file is an empty directory (nobody may decide).

    Raises:
        ConfigError: the file is malformed, naming the file and the field.
    """
    if not path.exists():
        return ApproverDirectory()
    try:
        data, found = parse(path.read_text(encoding="utf-8"))
    except YamlFault as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: byte {exc.start}: {exc.reason}") from None
    try:
        return ApproverDirectory.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        message = first["msg"].removeprefix("Value error, ")
        named, colon, rest = message.partition(": ")
        if not loc and colon and " " not in named:
            # The directory's own checks name the field first: "users.lee.password: ...".
            loc, message = named.split("."), rest
        field = ".".join(loc) or "top level"
        raise ConfigError(f"{path}: {where(found, loc)}: {field}: {message}") from None
