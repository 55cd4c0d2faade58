"""The session workflow's parts pass through the sandbox, and are fit to.

A module passed through is imported once, on the host, and shared by every workflow run,
so the sandbox's per-run checks (its restricted `datetime.now`, `random`, `os`...) do not
see what that module references. These tests hold the two things that make it safe for
`orchestrator.plugin.SESSION_PARTS` (the workflow module among them): no such references in
their source, and no module state a run could change; and they check that a new sandbox
re-imports none of this package's modules (so a session's fixed cost does not creep back).
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import sys
import types

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import WorkflowSerializationContext
from temporalio.converter._extstore import StorageDriverWorkflowInfo
from temporalio.worker import WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import _runner

from orchestrator.plugin import PASSTHROUGH_MODULES, SESSION_PARTS, workflow_runner
from orchestrator.session.workflow import AgentSessionWorkflow

# Names whose use in workflow code is nondeterministic or I/O; workflow code goes
# through `temporalio.workflow` (now, uuid4, random, logger) instead.
FORBIDDEN_MODULES = {"random", "uuid", "time", "os", "socket", "threading", "secrets"}
FORBIDDEN_IMPORTS = {"httpx", "sqlalchemy", "structlog", "logging", "subprocess"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "open", "print"}
# Module-level containers filled at import and only read afterwards.
REGISTRIES = {("orchestrator.session.step_types", "_KINDS")}


def _tree(name: str) -> ast.Module:
    return ast.parse(inspect.getsource(importlib.import_module(name)))


def test_session_parts_are_passed_through() -> None:
    assert set(SESSION_PARTS) <= set(PASSTHROUGH_MODULES)
    assert AgentSessionWorkflow.__module__ in SESSION_PARTS
    # Not the package: passing it through would take in every module under it (the
    # activities among them) unchecked.
    assert "orchestrator.session" not in PASSTHROUGH_MODULES


@pytest.mark.parametrize("name", SESSION_PARTS)
def test_part_has_no_clock_randomness_or_io(name: str) -> None:
    faults: list[str] = []
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
            faults += sorted(roots & (FORBIDDEN_MODULES | FORBIDDEN_IMPORTS))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES | FORBIDDEN_IMPORTS:
                faults.append(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value if isinstance(func, ast.Attribute) else None
            via_workflow = isinstance(owner, ast.Name) and owner.id == "workflow"
            if called in FORBIDDEN_CALLS and not via_workflow:
                faults.append(f"{called}() at line {node.lineno}")
    assert not faults, f"{name} is shared by every workflow run but uses {faults}"


@pytest.mark.parametrize("name", SESSION_PARTS)
def test_part_keeps_no_mutable_module_state(name: str) -> None:
    module = importlib.import_module(name)
    mutable = [
        attr
        for attr, value in vars(module).items()
        if isinstance(value, list | dict | set | bytearray)
        and not attr.startswith("__")
        and (name, attr) not in REGISTRIES
    ]
    assert not mutable, f"{name} is shared by every workflow run but holds {mutable}"


async def test_a_new_sandbox_reimports_none_of_the_package() -> None:
    importers: list[object] = []
    original = _runner.Importer.__init__

    def remember(self: object, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        importers.append(self)

    _runner.Importer.__init__ = remember  # type: ignore[method-assign]
    try:
        workflow_runner().prepare_workflow(
            workflow._Definition.must_from_class(AgentSessionWorkflow)
        )
    finally:
        _runner.Importer.__init__ = original  # type: ignore[method-assign]
    await asyncio.sleep(0)
    modules: dict[str, types.ModuleType] = importers[0].new_modules  # type: ignore[attr-defined]
    own = {
        name
        for name, module in modules.items()
        if name.startswith("orchestrator") and sys.modules.get(name) is not module
    }
    assert own == set()


async def test_payload_contexts_are_read_without_entering_the_sandbox() -> None:
    info = _runner._fake_info
    instance = workflow_runner().create_instance(
        WorkflowInstanceDetails(
            payload_converter_factory=pydantic_data_converter._new_payload_converter,
            failure_converter_class=pydantic_data_converter.failure_converter_class,
            interceptor_classes=[],
            defn=workflow._Definition.must_from_class(AgentSessionWorkflow),
            info=info,
            randomness_seed=-1,
            extern_functions={},
            disable_eager_activity_execution=False,
            worker_level_failure_exception_types=[],
            patch_activation_callback=None,
            last_completion_result=Payloads(),
            last_failure=Failure(),
        )
    )
    entered: list[str] = []
    instance._run_code = lambda code, **_: entered.append(code)  # type: ignore[attr-defined]
    context = instance.get_serialization_context(None)
    assert context == WorkflowSerializationContext(
        namespace=info.namespace, workflow_id=info.workflow_id
    )
    target = instance.get_external_store_context(None).target
    assert isinstance(target, StorageDriverWorkflowInfo)
    assert (target.id, target.run_id) == (info.workflow_id, info.run_id)
    assert entered == []
