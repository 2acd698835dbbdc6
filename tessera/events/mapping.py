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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from tessera.errors import InvalidField, InvalidMapping

VALUE_TYPES = ("string", "number", "integer", "boolean", "date")
#: Identifier names that have a home in the Segment message itself.
_STANDARD_IDS = {"userId", "anonymousId", "email", "phone", "deviceId", "advertisingId"}
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


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


def parse_mapping(document: Any) -> Mapping:
    """Check a mapping document (parsed YAML) and build a Mapping, or InvalidMapping."""
    if not isinstance(document, dict):
        raise InvalidMapping("a mapping is a YAML mapping with at least `identifiers:`")
    known = {
        "type",
        "event",
        "event_column",
        "timestamp",
        "timestamp_format",
        "identifiers",
        "traits",
        "properties",
        "message_id",
        "format",
        "csv",
    }
    unknown = sorted(set(document) - known)
    if unknown:
        raise InvalidMapping(
            f"mapping has unknown key(s) {', '.join(unknown)}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    kind = document.get("type", "identify")
    if kind not in ("identify", "track"):
        raise InvalidMapping(f"mapping type {kind!r} must be 'identify' or 'track'")
    event, event_column = document.get("event"), document.get("event_column")
    if kind == "track" and not (event or event_column):
        raise InvalidMapping("a track mapping needs `event: NAME` or `event_column: COLUMN`")
    identifiers = document.get("identifiers")
    if not isinstance(identifiers, dict) or not identifiers:
        raise InvalidMapping(
            "mapping needs `identifiers:` naming at least one column, "
            "e.g. `identifiers: {email: email_address}`"
        )
    for name, column in identifiers.items():
        if not isinstance(column, str):
            raise InvalidMapping(f"identifiers.{name} must name a column, got {column!r}")
    csv_options = document.get("csv") or {}
    delimiter = csv_options.get("delimiter") if isinstance(csv_options, dict) else None
    file_format = document.get("format")
    if file_format is not None and file_format not in ("csv", "jsonl", "parquet"):
        raise InvalidMapping(f"format {file_format!r} must be csv, jsonl or parquet")
    return Mapping(
        type=kind,
        event=str(event) if event else None,
        event_column=event_column,
        timestamp=document.get("timestamp"),
        timestamp_format=document.get("timestamp_format"),
        identifiers={str(k): str(v) for k, v in identifiers.items()},
        traits=_columns(document.get("traits"), "traits"),
        properties=_columns(document.get("properties"), "properties"),
        message_id=document.get("message_id"),
        file_format=file_format,
        delimiter=delimiter,
    )


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
                f"{section}, line {number}: type {value_type!r} must be one of "
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
        value = _text(row.get(column))
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
        message["event"] = mapping.event or _text(row.get(mapping.event_column or ""))
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
    given_id = _text(row.get(mapping.message_id)) if mapping.message_id else None
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
    """A cell as the mapped type; empty cells are absent (None)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    text = raw.strip() if isinstance(raw, str) else raw
    try:
        if spec.type == "string":
            return text if isinstance(text, str) else str(text)
        if spec.type == "number":
            value = float(text)
            return int(value) if value.is_integer() and "." not in str(text) else value
        if spec.type == "integer":
            return int(float(text)) if not isinstance(text, int) else text
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
        f"column {spec.column!r} value {raw!r} is not a {spec.type}",
        field=spec.column,
        value=raw,
    )


def _columns(raw: Any, section: str) -> dict[str, Column]:
    if raw is None:
        return {}
    if isinstance(raw, list):
        raw = {str(name): str(name) for name in raw}
    if not isinstance(raw, dict):
        raise InvalidMapping(
            f"{section} must map names to columns, e.g. `{section}: {{city: town}}`"
        )
    found = {}
    for name, spec in raw.items():
        if isinstance(spec, str):
            found[str(name)] = Column(spec)
        elif isinstance(spec, dict) and isinstance(spec.get("column"), str):
            value_type = spec.get("type", "string")
            if value_type not in VALUE_TYPES:
                raise InvalidMapping(
                    f"{section}.{name}.type {value_type!r} must be one of {', '.join(VALUE_TYPES)}"
                )
            found[str(name)] = Column(spec["column"], value_type)
        else:
            raise InvalidMapping(
                f"{section}.{name} must be a column name or {{column: NAME, type: TYPE}}"
            )
    return found


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    text = raw.strip() if isinstance(raw, str) else str(raw)
    return text or None


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
                f"column {column!r} value {text!r} does not match {expected}",
                field=column,
                value=text,
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()
