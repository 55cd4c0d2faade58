"""How a person reads a call: contract templates checked at load, values formatted."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from conftest import REPO
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.exceptions import SkillDefinitionError
from orchestrator.skills import SkillRegistry
from orchestrator.skills.presentation import ApprovalView, FieldView, Presentation, format_value

LEDGER = Path(__file__).resolve().parent / "project" / "ledger.py"

CONTRACT = """\
name: ledger.credit
version: 1.0.0
implementation: python:ledger:credit
risk: irreversible_write
approval:
  policy: always
  title: 'Credit {{ amount | money("EUR") }} to {{ account }}'
  fields:
    amount: {label: Amount, format: money, currency: EUR}
"""


def _load(tmp_path: Path, text: str) -> SkillRegistry:
    (tmp_path / "ledger.py").write_text(LEDGER.read_text())
    (tmp_path / "c.contract.yaml").write_text(text)
    return SkillRegistry.load_directory(tmp_path)


def test_the_demo_refund_reads_as_a_sentence() -> None:
    refund = SkillRegistry.load_directory(REPO / "skills").get("payments.refund", "1.0.0")
    view = Presentation.of(refund.view, refund.input_model)
    args = {"order_id": "A-1001", "amount": 1290.0, "currency": "EUR", "reason": "broken"}
    assert view.title_for(args) == "Refund 1,290.00 EUR to the customer of order A-1001"
    assert "1,290.00 EUR back for order A-1001" in (view.summary_for(args) or "")
    assert ("Amount", "1,290.00 EUR", None) in view.rows(args)
    assert refund.spec.requires_approval  # the long form keeps the policy


def test_a_good_presentation_loads_and_keeps_the_policy(tmp_path: Path) -> None:
    credit = _load(tmp_path, CONTRACT).get("ledger.credit", "1.0.0")
    assert credit.spec.requires_approval
    view = Presentation.of(credit.view, credit.input_model)
    assert view.title_for({"account": "ACME", "amount": 1234.5}) == "Credit 1,234.50 EUR to ACME"


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        (
            ("{{ account }}", "{{ acount }}"),
            "line 7, column 10: approval.title: {{ acount }}: the input has no field 'acount'",
        ),
        (
            ('money("EUR")', "dollars"),
            "line 7, column 10: approval.title: {{ amount | dollars }}: unknown filter 'dollars'",
        ),
        (('money("EUR")', "money(curr)"), "currency 'curr' is neither an input field nor"),
        (('money("EUR")', "money"), "money needs a currency"),
        (("{{ account }}", "{{ account }"), "approval.title: unbalanced {{ }}"),
        (
            ("amount: {label", "amont: {label"),
            "line 9, column 12: approval.fields.amont: the input has no field 'amont'",
        ),
        (("format: money, currency: EUR", "format: money"), "format money needs currency"),
        (("format: money", "format: cash"), "approval: fields.amount.format: Input should be"),
        (("policy: always", "policy: always\n  when: 'amount > 5'"), "policy or when, not both"),
        (("  policy: always\n", "  colour: red\n"), "approval: must be none, always, or"),
    ],
)
def test_each_faulty_presentation_names_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], fault: str
) -> None:
    with pytest.raises(SkillDefinitionError) as info:
        _load(tmp_path, CONTRACT.replace(*change))
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{tmp_path / 'c.contract.yaml'}: ")
    assert any(fault in line for line in lines), lines


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claim_id: str = Field(title="Claim")
    total: float = Field(
        description="What the employee paid", json_schema_extra={"format": "money"}
    )
    spent_on: date
    share: float = Field(json_schema_extra={"format": "percentage"})
    receipt_url: str = Field(json_schema_extra={"format": "link"})


def test_labels_and_formats_come_from_the_pydantic_fields_when_the_contract_is_silent() -> None:
    view = Presentation.of(ApprovalView(fields={"total": FieldView(currency="EUR")}), Claim)
    rows = view.rows(
        {
            "claim_id": "E-2002",
            "total": 1290.0,
            "spent_on": "2026-11-03",
            "share": 0.125,
            "receipt_url": "https://receipts.example/E-2002",
        }
    )
    assert rows == [
        ("Claim", "E-2002", None),
        ("Total", "1,290.00 EUR", None),
        ("Spent on", "3 Nov 2026", None),
        ("Share", "12.5%", None),
        ("Receipt url", "https://receipts.example/E-2002", "https://receipts.example/E-2002"),
    ]
    assert view.fields["total"].help == "What the employee paid"


@pytest.mark.parametrize(
    ("value", "fmt", "currency", "shown"),
    [
        (1290, "money", "EUR", "1,290.00 EUR"),
        (1290, "money", "JPY", "1,290 JPY"),
        ("not a number", "money", "EUR", "not a number"),
        ("2026-12-05T14:30:00+00:00", "datetime", None, "5 Dec 2026, 14:30 UTC"),
        ("soon", "date", None, "soon"),
        (True, None, None, "yes"),
        (None, None, None, "-"),
        ([1, 2], None, None, "1, 2"),
        (1234567, "number", None, "1,234,567"),
    ],
)
def test_format_value(value: object, fmt: str | None, currency: str | None, shown: str) -> None:
    assert format_value(value, fmt, currency) == shown  # type: ignore[arg-type]
