from __future__ import annotations

import pytest

from orchestrator.approvals import approval_id_for, binding_hash
from orchestrator.session.templating import TemplateError, render_text, render_value


def test_render_text_and_values() -> None:
    inputs = {"ticket_id": "T-1", "n": 3}
    outputs = {"lookup": {"order": {"id": "A-1", "amount": 42.5}}, "note": "hello"}
    assert render_text("t={{ input.ticket_id }} n={{input.n}}", inputs, outputs) == "t=T-1 n=3"
    assert render_text("{{ steps.note.output }}!", inputs, outputs) == "hello!"
    assert render_value("{{ steps.lookup.output.order.amount }}", inputs, outputs) == 42.5
    assert render_value({"a": ["{{ input.n }}", "x {{ input.ticket_id }}"]}, inputs, outputs) == {
        "a": [3, "x T-1"]
    }
    with pytest.raises(TemplateError, match="no field 'missing'"):
        render_text("{{ steps.lookup.output.missing }}", inputs, outputs)
    with pytest.raises(TemplateError, match="has no output yet"):
        render_text("{{ steps.later.output }}", inputs, outputs)


def test_binding_covers_every_part_of_the_action() -> None:
    base = {
        "workflow_id": "session-1",
        "step_id": "investigate",
        "call_id": "2.0",
        "skill": "payments.refund",
        "skill_version": "1.0.0",
        "arguments": {"amount": 42.5, "order_id": "A-1"},
    }
    reference = binding_hash(**base)  # type: ignore[arg-type]
    assert reference == binding_hash(**{**base, "arguments": {"order_id": "A-1", "amount": 42.5}})  # type: ignore[arg-type]
    for key, other in [
        ("workflow_id", "session-2"),
        ("step_id", "reply"),
        ("call_id", "2.1"),
        ("skill", "payments.charge"),
        ("skill_version", "1.0.1"),
        ("arguments", {"amount": 4250, "order_id": "A-1"}),
    ]:
        assert binding_hash(**{**base, key: other}) != reference, key  # type: ignore[arg-type]
    assert approval_id_for(reference) == f"apr_{reference[:12]}"
