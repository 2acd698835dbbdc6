"""What a destination is told to do: its kind, what it receives and how it is delivered.

One pydantic model checks every option a user can give (`tessera destinations create`,
`POST /api/destinations`, the console), so the three edges refuse the same mistakes with
the same words. The options are stored as JSON in `destinations.config`.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

import jmespath
import jmespath.exceptions
import jmespath.parser
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tessera.errors import InvalidField, field_problem, worded

Kind = Literal["webhook", "segment", "files", "google_customer_match", "meta_custom_audiences"]
KINDS: tuple[str, ...] = (
    "webhook", "segment", "files", "google_customer_match", "meta_custom_audiences",
)  # fmt: skip
#: Kinds that send events (the others only sync audiences).
EVENT_KINDS = ("webhook", "segment", "files")
#: Kinds whose transport is an ad platform's audience API (`activation/platforms.py`).
AUDIENCE_KINDS = ("google_customer_match", "meta_custom_audiences")
IDENTIFIER_TYPES = (
    "user_id", "anonymous_id", "email", "email_sha256", "phone", "phone_sha256",
    "advertising_id", "device_id", "cookie_id",
)  # fmt: skip
MESSAGE_TYPES = ("track", "identify", "page", "screen", "group", "alias")


class MappingStep(BaseModel):
    """One step of a field mapping, applied in order to each message.

    Exactly one of: `rename` (from a dotted path to another), `drop` (a dotted path),
    `hash` (a dotted path whose text becomes its SHA-256, lower-cased and trimmed first,
    as ad platforms match e-mails), `set` (a dotted path given a constant `value`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rename: str | None = None
    to: str | None = None
    drop: str | None = None
    hash: str | None = None
    set: str | None = None
    value: Any = None

    @model_validator(mode="after")
    def _one_action(self) -> MappingStep:
        actions = [a for a in ("rename", "drop", "hash", "set") if getattr(self, a) is not None]
        if len(actions) != 1:
            raise worded(
                "each mapping step does one of rename (with to), drop, hash or set (with "
                f"value); this one does {actions or 'nothing'}"
            )
        if self.rename is not None and not self.to:
            raise worded(f"mapping step rename {self.rename!r} needs `to`: the new path")
        return self


class DestinationOptions(BaseModel):
    """Every option of a destination; which apply depends on `kind` (see docs/activation.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Where it goes
    url: str | None = Field(default=None, description="webhook / segment / ad platform API URL")
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers")
    write_key: str | None = Field(default=None, description="segment: the receiver's write key")
    directory: str | None = Field(default=None, description="files: a folder or fsspec URL")
    file_format: Literal["jsonl", "parquet"] = "jsonl"
    roll_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    roll_seconds: float = Field(default=300.0, gt=0)
    account: str | None = Field(default=None, description="ad platform: customer / ad account id")
    audience_id: str | None = Field(default=None, description="ad platform: the user list id")
    access_token: str | None = Field(default=None, description="ad platform: API token")
    # What it receives
    events: bool = Field(default=True, description="receive events from the log")
    sources: list[str] = Field(default_factory=list, description="only these sources")
    event_names: list[str] = Field(default_factory=list, description="only these track events")
    types: list[str] = Field(default_factory=list, description="only these message types")
    condition: str | None = Field(default=None, description="JMESPath over the message")
    mapping: list[MappingStep] = Field(default_factory=list)
    segments: list[str] = Field(default_factory=list, description="audiences to sync")
    identifiers: list[str] = Field(default_factory=lambda: ["user_id", "email"])
    # How it is delivered
    batch_size: int = Field(default=100, ge=1, le=10_000)
    linger_seconds: float = Field(default=0.2, ge=0, le=60)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    retry_hours: float = Field(default=4.0, gt=0, le=24 * 14)
    concurrency: int = Field(default=2, ge=1, le=64)
    max_requests_per_second: float = Field(default=200.0, gt=0)
    ordered: bool = Field(default=False, description="keep each user's order (one at a time)")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)


_NEEDS: dict[str, tuple[str, ...]] = {
    "webhook": ("url",),
    "segment": ("url", "write_key"),
    "files": ("directory",),
    "google_customer_match": ("url", "account", "audience_id"),
    "meta_custom_audiences": ("url", "audience_id"),
}


def check(kind: str, document: dict[str, Any]) -> DestinationOptions:
    """The options in `document` for a destination of `kind`, or InvalidField naming the
    option that cannot be used."""
    if kind not in KINDS:
        raise InvalidField(
            f"destination kind {kind!r} must be one of {', '.join(KINDS)}", field="kind", value=kind
        )
    try:
        options = DestinationOptions.model_validate(document)
    except ValidationError as e:
        raise field_problem(
            e,
            document,
            {},
            lambda extra: (
                f"unknown destination option(s) {', '.join(extra)}; see "
                "docs/activation.md for each kind's options"
            ),
        ) from e
    for needed in _NEEDS[kind]:
        if not getattr(options, needed):
            raise InvalidField(
                f"a {kind} destination needs --{needed.replace('_', '-')}", field=needed
            )
    _check_lists(kind, options)
    return options


def _check_lists(kind: str, options: DestinationOptions) -> None:
    if options.url is not None and not options.url.startswith(("http://", "https://")):
        raise InvalidField(
            f"url {options.url!r} must start with http:// or https://", field="url",
            value=options.url,
        )  # fmt: skip
    for name in options.identifiers:
        if name not in IDENTIFIER_TYPES:
            raise InvalidField(
                f"identifier type {name!r} must be one of {', '.join(IDENTIFIER_TYPES)}",
                field="identifiers",
                value=name,
            )
    for name in options.types:
        if name not in MESSAGE_TYPES:
            raise InvalidField(
                f"message type {name!r} must be one of {', '.join(MESSAGE_TYPES)}",
                field="types",
                value=name,
            )
    remote = options.directory is not None and "://" in options.directory
    if kind == "files" and remote and importlib.util.find_spec("fsspec") is None:
        raise InvalidField(
            f"directory {options.directory!r} is a URL: install fsspec and its filesystem "
            "(e.g. s3fs, gcsfs) on the server, or give a local folder",
            field="directory",
            value=options.directory,
        )
    if kind in AUDIENCE_KINDS and not options.segments:
        raise InvalidField(
            f"a {kind} destination syncs audiences: name at least one --segment", field="segments"
        )
    if options.condition is not None:
        compile_condition(options.condition)


def compile_condition(text: str) -> jmespath.parser.ParsedResult:
    """A JMESPath expression over the message (`properties.total > `100``), checked once."""
    try:
        return jmespath.compile(text)
    except jmespath.exceptions.JMESPathError as e:
        raise InvalidField(
            f"condition {text!r} is not a JMESPath expression ({e}); e.g. "
            '"properties.total > `100`" (numbers between backquotes)',
            field="condition",
            value=text,
        ) from e
