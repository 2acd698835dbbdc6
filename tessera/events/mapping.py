"""Import mappings: how the columns of an offline file become Segment messages.

A mapping is YAML (see docs/imports.md):

    type: track                    # identify (default) or track
    event: Order Completed         # a fixed event name, or `event_column: col`
    timestamp: purchased_at        # column holding the event time
    timestamp_format: "%d/%m/%Y %H:%M"   # optional; ISO-8601 otherwise
    identifiers: {userId: customer_id, email: email, loyalty_id: card}
    traits: {first_name: first, city: town}
    properties: {revenue: {column: total, type: number}, order_id: order_ref}
    message_id: order_ref          # optional: a column that is already unique

Pure: `parse_mapping` checks a mapping against the file's columns, and
`row_to_message` turns one row into a message dict for the event contract.
"""

from __future__ import annotations

import hashlib
import math
import re
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from tessera.errors import InvalidField, InvalidMapping, field_problem, worded
from tessera.events.nesting import fits_64_bits

VALUE_TYPES = ("string", "number", "integer", "boolean", "date")
#: Identifier names that have a home in the Segment message itself.
_STANDARD_IDS = {"userId", "anonymousId", "email", "phone", "deviceId", "advertisingId"}
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}
_WHOLE = re.compile(r"[+-]?[0-9]+")
#: Shows a mapping's values in errors, bounded: YAML aliases can make a small document
#: whose full repr would be enormous.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother = 2, 60, 60
_BRIEF.maxlist = _BRIEF.maxtuple = _BRIEF.maxdict = _BRIEF.maxset = 4


def _brief(value: Any) -> str:
    return _BRIEF.repr(value)


@dataclass(frozen=True, slots=True)
class Column:
    """A message field fed from a file column, with the type its text becomes."""

    column: str
    type: str = "string"


@dataclass(frozen=True, slots=True)
class Mapping:
    type: str
    event: str | None
    event_column: str | None
    timestamp: str | None
    timestamp_format: str | None
    identifiers: dict[str, str]
    traits: dict[str, Column]
    properties: dict[str, Column]
    message_id: str | None
    file_format: str | None
    delimiter: str | None

    def columns(self) -> set[str]:
        named = set(self.identifiers.values())
        named |= {c.column for c in self.traits.values()}
        named |= {c.column for c in self.properties.values()}
        for optional in (self.event_column, self.timestamp, self.message_id):
            if optional:
                named.add(optional)
        return named


_KNOWN_KEYS = (
    "type", "event", "event_column", "timestamp", "timestamp_format", "identifiers",
    "traits", "properties", "message_id", "format", "csv",
)  # fmt: skip
_CSV_KEYS = ("delimiter",)
#: A delimiter that is also CSV's quote or a line break could not split anything.
_BAD_DELIMITERS = {'"', "\r", "\n"}


#: What each text key of a mapping holds, for its error message.
_EXPECTED = {
    "event": "an event name, e.g. `event: Order Completed`",
    "event_column": "a column name",
    "timestamp": "the column holding the event time",
    "timestamp_format": "a strptime format, e.g. '%d/%m/%Y %H:%M'",
    "message_id": "a column whose values are unique",
}


def _text_message(key: str, expected: str) -> Callable[[Any], str]:
    return lambda raw: f"{key} must be {expected}, got {_brief(raw)}"


_MESSAGES: dict[str, Callable[[Any], str]] = {
    "type": lambda kind: f"mapping type {_brief(kind)} must be 'identify' or 'track'",
    **{key: _text_message(key, expected) for key, expected in _EXPECTED.items()},
    "format": lambda raw: f"format {_brief(raw)} must be csv, jsonl or parquet",
    "identifiers": lambda _missing: (
        "mapping needs `identifiers:` naming at least one column, "
        "e.g. `identifiers: {email: email_address}`"
    ),
}


def _as_text(raw: Any) -> Any:
    """A YAML number where a name is expected is read as its text (`event: 2024`)."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    return raw


#: An optional name in a mapping: text that is not blank (a number is read as its text).
_Text = Annotated[str, BeforeValidator(_as_text), Field(pattern=r"\S")]


class MappingDefinition(BaseModel):
    """A mapping document (parsed YAML, or the console's form through `document_from_form`).

    Any problem is an InvalidMapping naming the key, the value found and what is expected.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Literal["identify", "track"] = "identify"
    event: _Text | None = None
    event_column: _Text | None = None
    identifiers: dict[str, str] = Field(description="identifier name → column; at least one")
    format: Literal["csv", "jsonl", "parquet"] | None = None
    timestamp: _Text | None = None
    timestamp_format: _Text | None = None
    traits: dict[str, Column] = Field(default_factory=dict)
    properties: dict[str, Column] = Field(default_factory=dict)
    message_id: _Text | None = None
    csv: str | None = Field(
        default=None, description="the CSV delimiter, from `csv: {delimiter: ...}`"
    )

    @model_validator(mode="wrap")
    @classmethod
    def _worded(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> MappingDefinition:
        """Pydantic's findings as our InvalidMapping, worded as the rest of Tessera words them."""
        if isinstance(data, MappingDefinition):
            return data
        if not isinstance(data, dict):
            raise InvalidMapping("a mapping is a YAML mapping with at least `identifiers:`")
        try:
            checked: MappingDefinition = handler(data)
        except ValidationError as e:
            raise field_problem(
                e,
                data,
                _MESSAGES,
                lambda keys: (
                    f"mapping has unknown key(s) {', '.join(keys)}; "
                    f"known keys: {', '.join(sorted(_KNOWN_KEYS))}"
                ),
                InvalidMapping,
            ) from None
        return checked

    @field_validator("identifiers", mode="plain")
    @classmethod
    def _identifiers(cls, identifiers: Any) -> dict[str, str]:
        if not isinstance(identifiers, dict) or not identifiers:
            raise worded(
                "mapping needs `identifiers:` naming at least one column, "
                "e.g. `identifiers: {email: email_address}`"
            )
        for name, column in identifiers.items():
            if not isinstance(column, str) or not column:
                raise worded(f"identifiers.{name} must name a column, got {_brief(column)}")
        return {str(name): column for name, column in identifiers.items()}

    @field_validator("traits", "properties", mode="plain")
    @classmethod
    def _sections(cls, raw: Any, info: ValidationInfo) -> dict[str, Column]:
        return _columns(raw, str(info.field_name))

    @field_validator("csv", mode="plain")
    @classmethod
    def _csv(cls, raw: Any) -> str | None:
        return _delimiter(raw)

    @field_validator("timestamp_format")
    @classmethod
    def _strptime(cls, fmt: str | None) -> str | None:
        return None if fmt is None else _timestamp_format(fmt)

    @model_validator(mode="after")
    def _track_has_an_event(self) -> MappingDefinition:
        if self.type == "track" and not (self.event or self.event_column):
            raise InvalidMapping("a track mapping needs `event: NAME` or `event_column: COLUMN`")
        return self

    def mapping(self) -> Mapping:
        return Mapping(
            type=self.type,
            event=self.event,
            event_column=self.event_column,
            timestamp=self.timestamp,
            timestamp_format=self.timestamp_format,
            identifiers=self.identifiers,
            traits=self.traits,
            properties=self.properties,
            message_id=self.message_id,
            file_format=self.format,
            delimiter=self.csv,
        )


def parse_mapping(document: Any) -> Mapping:
    """Check a mapping document (parsed YAML) and build a Mapping, or InvalidMapping
    naming the key, the value found and what is expected."""
    return MappingDefinition.model_validate(document).mapping()


def _timestamp_format(fmt: str) -> str:
    try:
        datetime.strptime("", fmt)
    except ValueError as e:
        # "does not match" is the expected answer for an empty text; anything else
        # ("bad directive", "stray %") is the format's own fault.
        if "does not match" not in str(e):
            raise worded(
                f"timestamp_format {fmt!r} is not a strptime format ({e}); e.g. '%d/%m/%Y %H:%M'"
            ) from None
    return fmt


def _delimiter(options: Any) -> str | None:
    if options is None:
        return None
    if not isinstance(options, dict):
        raise worded(
            f"csv must be a mapping of CSV options such as `csv: {{delimiter: ';'}}`, "
            f"got {_brief(options)}"
        )
    unknown = sorted(str(key) for key in options if key not in _CSV_KEYS)
    if unknown:
        raise worded(
            f"csv has unknown option(s) {', '.join(unknown)}; known: {', '.join(_CSV_KEYS)}"
        )
    delimiter = options.get("delimiter")
    if delimiter is None:
        return None
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in _BAD_DELIMITERS:
        raise worded(
            f"csv.delimiter must be one character other than a quote or a line break, "
            f"e.g. ';' or \"\\t\" for a tab, got {_brief(delimiter)}"
        )
    return delimiter


def document_from_form(
    *,
    kind: str,
    event: str = "",
    timestamp: str = "",
    identifiers: str = "",
    traits: str = "",
    properties: str = "",
) -> dict[str, Any]:
    """A mapping document from the console's form, where each section is lines of
    `name = column` (or `name = column : type`, type one of VALUE_TYPES). The result goes
    through `parse_mapping` like a YAML file does."""
    document: dict[str, Any] = {"type": kind}
    if event.strip():
        document["event"] = event.strip()
    if timestamp.strip():
        document["timestamp"] = timestamp.strip()
    for section, text in (("identifiers", identifiers), ("traits", traits),
                          ("properties", properties)):  # fmt: skip
        pairs = _form_lines(section, text)
        if section == "identifiers":
            document[section] = {name: column.column for name, column in pairs.items()}
        elif pairs:
            document[section] = {
                name: {"column": column.column, "type": column.type}
                for name, column in pairs.items()
            }
    return document


def _form_lines(section: str, text: str) -> dict[str, Column]:
    found: dict[str, Column] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, equals, rest = line.partition("=")
        column, _, value_type = rest.partition(":")
        if not equals or not name.strip() or not column.strip():
            raise InvalidMapping(
                f"{section}, line {number}: {line.strip()!r} should read `name = column`"
            )
        value_type = value_type.strip() or "string"
        if value_type not in VALUE_TYPES:
            raise InvalidMapping(
                f"{section}, line {number}: type {_brief(value_type)} must be one of "
                f"{', '.join(VALUE_TYPES)}"
            )
        found[name.strip()] = Column(column.strip(), value_type)
    return found


def check_columns(mapping: Mapping, available: list[str]) -> None:
    """Every column the mapping names must be in the file's header."""
    missing = sorted(mapping.columns() - set(available))
    if missing:
        raise InvalidMapping(
            f"mapping names column(s) {', '.join(repr(m) for m in missing)} that the file "
            f"does not have; its columns are: {', '.join(available)}"
        )


def row_to_message(mapping: Mapping, row: dict[str, Any], occurrence: int) -> dict[str, Any]:
    """Build a Segment message from one row.

    The messageId is derived from the row's content (and how many identical rows came
    before it), so importing the same file twice adds nothing, whatever its order.

    Raises InvalidField naming the column and value when a cell cannot be converted.
    """
    message: dict[str, Any] = {"type": mapping.type}
    traits: dict[str, Any] = {}
    context: dict[str, Any] = {}
    external: list[dict[str, str]] = []
    for name, column in mapping.identifiers.items():
        value = _text(row.get(column), column)
        if value is None:
            continue
        if name in ("userId", "anonymousId"):
            message[name] = value
        elif name in ("email", "phone"):
            traits[name] = value
        elif name == "deviceId":
            context.setdefault("device", {})["id"] = value
        elif name == "advertisingId":
            context.setdefault("device", {})["advertisingId"] = value
        else:
            external.append({"id": value, "type": name, "collection": "users", "encoding": "none"})
    for name, spec in mapping.traits.items():
        value = convert(row.get(spec.column), spec)
        if value is not None:
            traits[name] = value
    if external:
        context["externalIds"] = external
    if mapping.type == "identify":
        if traits:
            message["traits"] = traits
    else:
        message["event"] = mapping.event or _text(
            row.get(mapping.event_column or ""), mapping.event_column or ""
        )
        properties = {}
        for name, spec in mapping.properties.items():
            value = convert(row.get(spec.column), spec)
            if value is not None:
                properties[name] = value
        message["properties"] = properties
        if traits:
            context["traits"] = traits
    if context:
        message["context"] = context
    if mapping.timestamp:
        message["timestamp"] = _timestamp(row.get(mapping.timestamp), mapping)
    given_id = (
        _text(row.get(mapping.message_id), mapping.message_id) if mapping.message_id else None
    )
    message["messageId"] = given_id or _content_id(row, occurrence)
    return message


def content_fingerprint(row: dict[str, Any]) -> str:
    return hashlib.blake2b(
        orjson.dumps(row, option=orjson.OPT_SORT_KEYS, default=str), digest_size=16
    ).hexdigest()


def _content_id(row: dict[str, Any], occurrence: int) -> str:
    suffix = f"-{occurrence}" if occurrence else ""
    return f"import-{content_fingerprint(row)}{suffix}"


def convert(raw: Any, spec: Column) -> Any:
    """A cell as the mapped type; empty cells are absent (None).

    Whole numbers keep every digit (an integer beyond 64 bits stays text, as JSON numbers
    beyond 64 bits do on the collect API); NaN and infinities are refused, since JSON
    cannot carry them.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    text = raw.strip() if isinstance(raw, str) else raw
    try:
        if spec.type == "string":
            return _string(text)
        if spec.type == "number":
            return _number(text, whole=False)
        if spec.type == "integer":
            return _number(text, whole=True)
        if spec.type == "boolean":
            if isinstance(text, bool):
                return text
            lowered = str(text).lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(text)
        if spec.type == "date":
            return _iso(text, None, spec.column)
    except (ValueError, TypeError, OverflowError):
        pass
    else:
        raise AssertionError(spec.type)
    raise InvalidField(
        f"column {spec.column!r} value {_show(raw)} is not a {spec.type}",
        field=spec.column,
        value=raw,
    )


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):  # a JSON-lines cell: its JSON, not Python's repr
        return orjson.dumps(value, default=str).decode()
    return str(value)


def _number(value: Any, *, whole: bool) -> int | float | str:
    if isinstance(value, bool | dict | list):
        raise TypeError(value)
    if isinstance(value, int):
        return value if fits_64_bits(value) else str(value)
    text = str(value)
    if _WHOLE.fullmatch(text):
        exact = int(text)
        return exact if fits_64_bits(exact) else text.lstrip("+")
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    if whole:
        if not number.is_integer():
            raise ValueError(text)
        return int(number)
    return number


def _columns(raw: Any, section: str) -> dict[str, Column]:
    if raw is None:
        return {}
    if isinstance(raw, list):
        for position, name in enumerate(raw):
            if not isinstance(name, str) or not name:
                raise worded(f"{section}[{position}] must be a column name, got {_brief(name)}")
        raw = {name: name for name in raw}
    if not isinstance(raw, dict):
        raise worded(
            f"{section} must map names to columns, e.g. `{section}: {{city: town}}`, "
            f"got {_brief(raw)}"
        )
    found = {}
    for name, spec in raw.items():
        if isinstance(spec, str) and spec:
            found[str(name)] = Column(spec)
        elif isinstance(spec, dict) and isinstance(spec.get("column"), str) and spec["column"]:
            extra = sorted(str(key) for key in spec if key not in ("column", "type"))
            if extra:
                raise worded(
                    f"{section}.{name} has unknown key(s) {', '.join(extra)}; known: column, type"
                )
            value_type = spec.get("type", "string")
            if value_type not in VALUE_TYPES:
                raise worded(
                    f"{section}.{name}.type {_brief(value_type)} must be one of "
                    f"{', '.join(VALUE_TYPES)}"
                )
            found[str(name)] = Column(spec["column"], value_type)
        else:
            raise worded(
                f"{section}.{name} must be a column name or {{column: NAME, type: TYPE}}, "
                f"got {_brief(spec)}"
            )
    return found


def _text(raw: Any, column: str = "") -> str | None:
    if raw is None:
        return None
    if isinstance(raw, dict | list):
        raise InvalidField(
            f"column {column!r} holds a JSON {'object' if isinstance(raw, dict) else 'array'} "
            f"{_show(raw)}; identifiers, event names and message ids are text",
            field=column,
        )
    text = raw.strip() if isinstance(raw, str) else str(raw)
    return text or None


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else _string(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _timestamp(raw: Any, mapping: Mapping) -> str | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return _iso(raw, mapping.timestamp_format, mapping.timestamp or "timestamp")


def _iso(raw: Any, fmt: str | None, column: str) -> str:
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day)
    else:
        text = str(raw).strip()
        try:
            moment = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
        except ValueError:
            expected = f"the format {fmt!r}" if fmt else "ISO-8601 (or set timestamp_format)"
            raise InvalidField(
                f"column {_brief(column)} value {_show(text)} does not match {expected}",
                field=column,
                value=text,
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()
