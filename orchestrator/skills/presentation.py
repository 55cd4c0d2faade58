"""How a person reads a call of a skill: a title, a sentence, labelled and formatted fields.

An approver should read "Refund 1,290.00 EUR to the customer of order A-1001", not
`payments.refund@1.0.0 with {"amount": 1290.0, ...}`. A contract says how, under
`approval:`:

```yaml
approval:
  policy: always
  title: "Refund {{ amount | money(currency) }} to the customer of order {{ order_id }}"
  summary: "{{ reason }}"
  fields:
    amount: {label: Amount, format: money, currency: currency}
```

A template is plain text with `{{ field }}` or `{{ field | filter }}` holes; a filter is
`money(<currency field or "EUR">)`, `date`, `percentage` or `number`. Labels and formats
not given in the contract come from the input model's pydantic fields: `title` for the
label, `description` for the help, `json_schema_extra={"format": "money"}` (or a `date`,
`datetime` or URL type) for the format. Every template and field is checked when the
contract loads (`check_view`), so a typo is a load error with its file and line, not a
blank on an approver's screen. Rendering is pure and never raises: a value that does not
fit its format is shown as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, cast, get_args

from pydantic import AnyUrl, BaseModel, ConfigDict, Field

from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "FORMATS",
    "ApprovalView",
    "FieldView",
    "Format",
    "Presentation",
    "check_view",
    "format_value",
    "humanise",
    "render",
]

Format = Literal["text", "money", "number", "percentage", "date", "datetime", "link"]
"""How a value is shown: `percentage` reads a fraction (0.125 is 12.5%)."""
FORMATS: tuple[str, ...] = get_args(Format)
_FILTERS = {"money", "number", "percentage", "date", "datetime"}
_HOLE = re.compile(r"\{\{(.*?)\}\}", re.S)
_NAME = re.compile(r"^[A-Za-z_]\w*$")
_FILTER = re.compile(r"^([a-z]+)\s*(?:\(\s*(.*?)\s*\))?$")
_CODE = re.compile(r"^[A-Z]{3}$")
_ZERO_DECIMALS = {"JPY", "KRW", "HUF", "ISK", "CLP", "VND"}


class FieldView(BaseModel):
    """How one argument is labelled and shown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str | None = Field(default=None, min_length=1)
    """Default: the pydantic field's `title`, else the name in words."""
    help: str | None = None
    """A line under the label; default: the pydantic field's `description`."""
    format: Format | None = None
    currency: str | None = None
    """For `money`: the input field holding the currency, or an ISO code such as `EUR`."""


class ApprovalView(BaseModel):
    """What the contract's `approval:` says about presenting a call to a person."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str | None = Field(default=None, min_length=1)
    summary: str | None = Field(default=None, min_length=1)
    fields: dict[str, FieldView] = Field(default_factory=dict)


def humanise(name: str) -> str:
    """`order_id` → `Order id`: a label for a field nobody named."""
    words = name.replace("_", " ").replace(".", " ").strip()
    return words[:1].upper() + words[1:]


def _parse_hole(expression: str) -> tuple[str, list[tuple[str, str | None]]]:
    name, *filters = [part.strip() for part in expression.split("|")]
    parsed: list[tuple[str, str | None]] = []
    for text in filters:
        match = _FILTER.match(text)
        if not match:
            raise ValueError(f"{{{{ {expression.strip()} }}}}: {text!r} is not a filter")
        parsed.append((match[1], match[2]))
    return name, parsed


def _check_currency(arg: str, fields: set[str], where: str) -> str | None:
    literal = arg.strip("\"'")
    if literal != arg:
        return None if _CODE.match(literal) else f"{where}: {arg} is not an ISO currency code"
    if arg not in fields:
        return f"{where}: currency {arg!r} is neither an input field nor a quoted code"
    return None


def _check_template(text: str, fields: set[str]) -> list[str]:
    problems: list[str] = []
    if text.count("{{") != text.count("}}"):
        problems.append("unbalanced {{ }}")
    for hole in _HOLE.finditer(text):
        where = f"{{{{ {hole[1].strip()} }}}}"
        try:
            name, filters = _parse_hole(hole[1])
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if not _NAME.match(name) or name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            problems.append(f"{where}: the input has no field {name!r} (it has: {known})")
        for filter_name, arg in filters:
            if filter_name not in _FILTERS:
                allowed = ", ".join(sorted(_FILTERS))
                problems.append(f"{where}: unknown filter {filter_name!r} (use {allowed})")
            elif filter_name == "money":
                wrong = _check_currency(arg or "", fields, where) if arg else None
                problems.extend([wrong] if wrong else [])
                if not arg:
                    problems.append(f'{where}: money needs a currency: money(currency) or ("EUR")')
            elif arg:
                problems.append(f"{where}: {filter_name} takes no argument")
    return problems


def check_view(view: ApprovalView, fields: set[str]) -> list[tuple[str, str]]:
    """Faults of a presentation against the input's field names, as (contract field, message)."""
    faults: list[tuple[str, str]] = []
    for key in ("title", "summary"):
        text = getattr(view, key)
        if text is not None:
            faults.extend((f"approval.{key}", p) for p in _check_template(text, fields))
    for name, field in view.fields.items():
        where = f"approval.fields.{name}"
        if name not in fields:
            faults.append((where, f"the input has no field {name!r}"))
        if field.format == "money" and field.currency is None:
            faults.append((where, "format money needs currency: <field> or an ISO code"))
        if field.currency is not None:
            if field.format not in (None, "money"):
                faults.append((where, "currency is only for format money"))
            is_code = _CODE.match(field.currency) is not None
            if not is_code and field.currency not in fields:
                faults.append(
                    (where, f"currency {field.currency!r} is neither an input field nor a code")
                )
    return faults


def _money(value: JsonValue, currency: str | None) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    decimals = 0 if currency in _ZERO_DECIMALS else 2
    amount = f"{value:,.{decimals}f}"
    return f"{amount} {currency}" if currency else amount


def _when(value: JsonValue, with_time: bool) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    day = f"{moment.day} {moment:%b %Y}"
    if not with_time or (len(value) <= 10 and isinstance(moment, date)):
        return day
    zone = f" {moment.tzname()}" if moment.tzinfo else ""
    return f"{day}, {moment:%H:%M}{zone}"


def format_value(value: JsonValue, fmt: str | None, currency: str | None = None) -> str:
    """`value` as a person reads it in `fmt`; as it is when it does not fit the format."""
    shown: str | None = None
    if fmt == "money":
        shown = _money(value, currency)
    elif fmt == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        shown = f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
    elif fmt == "percentage" and isinstance(value, int | float) and not isinstance(value, bool):
        shown = f"{value * 100:.4g}%"
    elif fmt in ("date", "datetime"):
        shown = _when(value, fmt == "datetime")
    if shown is not None:
        return shown
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return f"{value:,.1f}"
    if isinstance(value, int | float):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(format_value(v, None) for v in value)
    return "; ".join(f"{humanise(k)}: {format_value(v, None)}" for k, v in value.items())


def _currency_of(spec: str | None, arguments: Mapping[str, JsonValue]) -> str | None:
    if spec is None:
        return None
    literal = spec.strip("\"'")
    if literal != spec or _CODE.match(spec):
        return literal
    found = arguments.get(spec)
    return found if isinstance(found, str) else None


def render(
    text: str, arguments: Mapping[str, JsonValue], fields: Mapping[str, FieldView] | None = None
) -> str:
    """A checked template filled with `arguments`.

    A hole's filter formats its value; a hole without one takes its field's format.
    """

    def fill(hole: re.Match[str]) -> str:
        try:
            name, filters = _parse_hole(hole[1])
        except ValueError:
            return hole[0]
        fmt: str | None
        currency: str | None
        if filters:
            fmt, currency = filters[-1]
        else:
            field = (fields or {}).get(name, FieldView())
            fmt, currency = field.format, field.currency
        currency = _currency_of(currency, arguments) if fmt == "money" else None
        return format_value(arguments.get(name), fmt, currency)

    return _HOLE.sub(fill, text)


def _model_format(info: object) -> Format | None:
    extra = getattr(info, "json_schema_extra", None)
    declared = extra.get("format") if isinstance(extra, dict) else None
    if isinstance(declared, str) and declared in FORMATS:
        return cast(Format, declared)
    annotation = getattr(info, "annotation", None)
    if annotation is datetime:
        return "datetime"
    if annotation is date:
        return "date"
    if isinstance(annotation, type) and issubclass(annotation, AnyUrl):
        return "link"
    return None


@dataclass(frozen=True)
class Presentation:
    """A skill's presentation, merged from its contract and its input model's fields."""

    title: str | None
    summary: str | None
    fields: dict[str, FieldView]
    """Every input field, with its label and format resolved."""

    @classmethod
    def of(cls, view: ApprovalView | None, model: type[BaseModel]) -> Presentation:
        """The contract's view, with labels and formats from `model` where it gives none."""
        view = view or ApprovalView()
        fields: dict[str, FieldView] = {}
        for name, info in model.model_fields.items():
            own = view.fields.get(name, FieldView())
            fields[name] = FieldView(
                label=own.label or info.title or humanise(name),
                help=own.help or info.description,
                format=own.format or _model_format(info),
                currency=own.currency,
            )
        return cls(view.title, view.summary, fields)

    def title_for(self, arguments: Mapping[str, JsonValue]) -> str | None:
        """The call's title in words, or None when the contract gives none."""
        return render(self.title, arguments, self.fields) if self.title else None

    def summary_for(self, arguments: Mapping[str, JsonValue]) -> str | None:
        """The call's one-sentence summary, or None when the contract gives none."""
        return render(self.summary, arguments, self.fields) if self.summary else None

    def rows(self, arguments: JsonObject) -> list[tuple[str, str, str | None]]:
        """(label, formatted value, link target or None) for each argument, in order."""
        rows: list[tuple[str, str, str | None]] = []
        for name, value in arguments.items():
            field = self.fields.get(name, FieldView())
            shown = format_value(value, field.format, _currency_of(field.currency, arguments))
            link = (
                value
                if field.format == "link"
                and isinstance(value, str)
                and value.startswith(("https://", "http://"))
                else None
            )
            rows.append((field.label or humanise(name), shown, link))
        return rows
