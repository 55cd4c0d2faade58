"""The approvers file as the API process sees it now: re-read when it changes.

People are added to `approvers.yaml` (a password hash, a token digest) while the API
process runs; they must not wait for a restart. `ReloadingApprovers.current()` compares
the file's stat (modification time, size, inode) with the one it last read, which costs
one `stat` per use, and reads the file again only when that changed. The new directory
replaces the old one whole (an atomic swap: a request sees the old people or the new,
never a mix). A file that fails to load keeps the last good directory in force, so a
broken edit does not lock everybody out, and is logged once per edit as an error naming
the file and the line. The file that is there at start must load (`ConfigError`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias

from orchestrator.approvals.people import ApproverDirectory, load_approvers
from orchestrator.exceptions import ConfigError
from orchestrator.logs import get_logger

__all__ = ["Approvers", "ReloadingApprovers", "current"]

log = get_logger(__name__)

_Stamp: TypeAlias = tuple[int, int, int, int] | None
"""What a change of the file changes: (mtime ns, ctime ns, size, inode); None: no file."""


def _stamp(path: Path) -> _Stamp:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_mtime_ns, found.st_ctime_ns, found.st_size, found.st_ino)


class ReloadingApprovers:
    """An approvers file, re-read on use when it changed; the last good one kept."""

    def __init__(self, path: Path) -> None:
        """Load `path` now.

        Raises:
            ConfigError: the file is malformed (at start there is no last good one).
        """
        self.path = path
        self._stamp = _stamp(path)
        self._directory = load_approvers(path)
        self._refused: _Stamp = None

    def current(self) -> ApproverDirectory:
        """The directory as the file says now, or the last good one if it cannot load."""
        stamp = _stamp(self.path)  # taken before reading: a later write changes it again
        if stamp == self._stamp or (stamp is not None and stamp == self._refused):
            return self._directory
        try:
            directory = load_approvers(self.path)
        except ConfigError as exc:
            self._refused = stamp
            log.error(
                "approvers file not reloaded; the last good one stays in force",
                file=str(self.path),
                error=str(exc),
            )
            return self._directory
        self._directory, self._stamp, self._refused = directory, stamp, None
        log.info("approvers file reloaded", file=str(self.path), users=len(directory.users))
        return directory


Approvers: TypeAlias = ApproverDirectory | ReloadingApprovers
"""What the API's handlers take: a fixed directory (tests, tools) or the file."""


def current(approvers: Approvers) -> ApproverDirectory:
    """The directory in force now."""
    return approvers.current() if isinstance(approvers, ReloadingApprovers) else approvers
