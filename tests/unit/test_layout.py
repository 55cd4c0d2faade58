"""Test and benchmark machinery stays out of the runtime's imports."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "orchestrator"
MACHINERY = ("chaos", "loadgen")


def test_no_runtime_module_imports_the_test_machinery() -> None:
    imports = re.compile(r"^\s*(from|import)\s+orchestrator\.(chaos|loadgen)\b", re.M)
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in MACHINERY and imports.search(path.read_text())
    ]
    assert offenders == []
    for name in MACHINERY:
        doc = (PACKAGE / name / "__init__.py").read_text()
        assert "Test and benchmark machinery, not part of the runtime" in doc
