"""Settings: built once (in create_app() or the CLI) and handed down explicitly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tessera.errors import InvalidField

MIB = 1024 * 1024
#: a product id property path: names joined by dots (catalog/keys.py checks with it too)
PRODUCT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,3}$")
#: The shortest TESSERA_ADMIN_TOKEN a server accepts: 24 random characters are ~140 bits,
#: out of reach even without the sign-in limit (a generated token has 43).
MIN_ADMIN_TOKEN_CHARS = 24


class Settings(BaseSettings):
    """Every knob Tessera has, read from `TESSERA_*` environment variables.

    Nothing below `create_app()` and the CLI reads the environment: they build one
    `Settings` and pass it down.
    """

    model_config = SettingsConfigDict(env_prefix="TESSERA_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./tessera-data"),
        description="Where the DuckDB file, the admin token and import rejects live.",
    )
    host: str = Field(default="127.0.0.1", description="Address `tessera serve` listens on.")
    port: int = Field(default=8000, description="Port `tessera serve` listens on.")
    collectors: int = Field(
        default=2,
        ge=0,
        le=64,
        description="Collector processes `tessera serve` starts: they own the port, take "
        "/v1/* and the pixel into the event log, and pass every other path to the core "
        "process. 0 serves everything from one process.",
    )
    switch_interval_ms: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="How long the core process lets one thread hold the interpreter before "
        "another waiting thread may run (Python's switch interval, 5 ms by default). The "
        "pipeline's threads compute while requests wait: at 1 ms, decisions under 1,000 "
        "ingested events/s had a p99 of 80 ms against 1,009 ms at 5 ms, with ingest "
        "throughput within noise (docs/personalize.md).",
    )
    background_sched_batch: bool = Field(
        default=True,
        description="On Linux, mark every thread of the core process but the one answering "
        "requests SCHED_BATCH (same CPU share, but they do not preempt it when they wake): "
        "decisions under 1,000 ingested events/s had a p99 of 15.6-42.3 ms against "
        "59.0-128.3 ms without, in three runs each (docs/personalize.md).",
    )
    admin_token: str | None = Field(
        default=None,
        description="Bearer token for /api/* and the console's sign-in, at least "
        f"{MIN_ADMIN_TOKEN_CHARS} characters. When unset, one is generated on first start "
        "and kept in DATA_DIR/admin-token (mode 0600).",
    )
    sign_in_failures_per_minute: int = Field(
        default=10,
        ge=1,
        description="Failed console sign-ins allowed per client address in any minute; "
        "past them the sign-in answers 429 with Retry-After.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect sign-in: the provider's issuer URL (its "
        "/.well-known/openid-configuration is read), e.g. https://id.example.com/realms/acme. "
        "Unset: the console signs in with names and passwords only.",
    )
    oidc_client_id: str | None = Field(
        default=None, description="OIDC: this application's client id at the provider."
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None,
        description="OIDC: the client secret (confidential clients); never logged. Unset: a "
        "public client (PKCE alone).",
    )
    oidc_provider_name: str = Field(
        default="single sign-on",
        description='OIDC: the name on the console\'s button ("Sign in with Keycloak").',
    )
    oidc_scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"],
        description="OIDC: the scopes asked for (JSON list); openid is always added.",
    )
    oidc_user_claim: str = Field(
        default="email",
        description="OIDC: the id_token claim that names the Tessera user (email, "
        "preferred_username, sub...). An email claim counts only when email_verified is "
        "not false.",
    )
    oidc_role_claim: str | None = Field(
        default=None,
        description="OIDC: a claim holding the person's groups or roles (e.g. groups), read "
        "through TESSERA_OIDC_ROLES.",
    )
    oidc_roles: dict[str, Literal["admin", "marketer", "analyst", "agent"]] = Field(
        default_factory=dict,
        description='OIDC: role claim value -> Tessera role (JSON), e.g. {"cdp-admins": '
        '"admin", "marketing": "marketer"}; the most powerful match wins and is given '
        "to the user at every sign-in.",
    )
    oidc_auto_provision: bool = Field(
        default=False,
        description="OIDC: create a user on first sign-in (role from TESSERA_OIDC_ROLES, else "
        "TESSERA_OIDC_DEFAULT_ROLE). Off: only users an admin created may sign in.",
    )
    oidc_default_role: Literal["admin", "marketer", "analyst", "agent"] = Field(
        default="analyst", description="OIDC: the role of a user provisioned without a match."
    )
    oidc_redirect_url: str | None = Field(
        default=None,
        description="OIDC: the callback URL registered at the provider "
        "(https://cdp.example.com/sign-in/oidc/callback). Unset: built from the request, "
        "which is right unless a proxy rewrites the host.",
    )
    max_body_bytes: int = Field(
        default=4 * MIB,
        description="Largest request body accepted by the collect API, after gunzip.",
    )
    max_message_bytes: int = Field(
        default=32 * 1024,
        description="Largest single message (Segment's limit is 32 KiB).",
    )
    max_queued_events: int = Field(
        default=200_000,
        description="Events waiting for the event log's fsync before the collect API answers 429.",
    )
    log_segment_mb: int = Field(
        default=64,
        ge=1,
        description="Size at which a segment file of the event log (DATA_DIR/log) is "
        "closed and the next begun; the loader deletes a segment once all of it is loaded.",
    )
    dedupe_window_days: int | None = Field(
        default=None,
        description="Deduplicate messageIds seen in the last N days; unset means for ever "
        "(8 bytes of memory per event kept).",
    )
    retry_after_seconds: int = Field(
        default=2, description="Retry-After sent with 429 when the writer is overloaded."
    )
    cors_origins: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Origins allowed to post events from a browser ('*' echoes any origin).",
    )
    checkpoint_threshold_mb: int = Field(
        default=256,
        description="Write-ahead log size at which DuckDB checkpoints (see store/connection.py).",
    )
    pipeline_batch_size: int = Field(
        default=20_000, description="Events the pipeline reads and stitches per transaction."
    )
    pipeline_max_attempts: int = Field(
        default=3,
        ge=1,
        description="Tries of a failing pipeline batch before its events are taken apart and "
        "the one(s) that fail on their own go to the pipeline's dead letters (`tessera events "
        "failed`), so the others go on.",
    )
    pipeline_interval_seconds: float = Field(
        default=0.5,
        description="How often the pipeline inside `tessera serve` looks for new events.",
    )
    anonymous_lifetime_days: int = Field(
        default=90,
        ge=1,
        description="Anonymous data (cookie, device and ad ids never linked to a known "
        "person) is purged this many days after it was last seen; also the pixel cookie's "
        "Max-Age.",
    )
    anonymous_lifetimes: dict[str, int] = Field(
        default_factory=dict,
        description='Per identifier type, e.g. {"advertising_id": 30, "cookie_id": 90}.',
    )
    sync_partners: dict[str, str] = Field(
        default_factory=dict,
        description="Cookie-sync partners allowed: name -> their sync URL with "
        '{cookie_id} where our id goes, e.g. {"dsp-one": "https://dsp.example/s?tid={cookie_id}"}.',
    )
    advertising_consent: Literal["required", "unless_refused"] = Field(
        default="required",
        description="Exports to ad platforms: 'required' sends only people whose consent "
        "(context.consent.categoryPreferences) grants Advertising; 'unless_refused' also "
        "sends people with no consent recorded.",
    )
    consent_purposes: list[str] = Field(
        default_factory=lambda: ["analytics", "personalisation", "email", "advertising"],
        description="The purposes consent is asked and checked for (JSON list); destinations "
        "name one, and each is answered from the person's consent (docs/privacy.md).",
    )
    consent_defaults: dict[str, Literal["required", "unless_refused"]] = Field(
        default_factory=dict,
        description='Per purpose (JSON), e.g. {"email": "required"}: \'required\' acts only '
        "on a recorded yes, 'unless_refused' on anything but a recorded no. Unnamed purposes "
        "are 'unless_refused', advertising follows TESSERA_ADVERTISING_CONSENT.",
    )
    segment_interval_seconds: float = Field(
        default=2.0,
        description="Streaming segments: profiles touched by the pipeline are re-evaluated at "
        "most this often (also the longest a segment lags behind its events).",
    )
    retention_interval_seconds: float = Field(
        default=3600.0,
        description="How often `tessera serve` enforces the retention policies "
        "(`tessera privacy retention`); 0 turns the schedule off.",
    )
    default_region: str | None = Field(
        default=None,
        description="ISO country (e.g. FR) for phone numbers written without +country code, when "
        "the event's traits carry no country.",
    )
    identity_junk_values: list[str] = Field(
        default_factory=list,
        description="Extra identifier values never used for identity (JSON list), e.g. a "
        "call centre's switchboard number. null, undefined, 0, test@test.com, the all-zero "
        "advertising id and a few more are always junk.",
    )
    identity_junk_patterns: list[str] = Field(
        default_factory=list,
        description="Regular expressions (JSON list); matching identifier values are junk.",
    )
    identity_rules: dict[str, dict[str, int | None]] = Field(
        default_factory=dict,
        description='Merge rule overrides per identifier type (JSON), e.g. {"email": {"limit": 3}, '
        '"loyalty_id": {"limit": 1, "priority": 4}}. Lower priority numbers win.',
    )
    identity_max_identifiers: int = Field(
        default=100,
        description="Circuit breaker: a profile with this many identifiers absorbs no more.",
    )
    identity_match_threshold: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="Probabilistic identity: a pair of profiles at or above this match "
        "probability is linked (`tessera identity match`).",
    )
    identity_review_threshold: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Probabilistic identity: pairs from this probability up to the match "
        "threshold wait in the review queue (`tessera identity review`).",
    )
    trait_source_priority: dict[str, int] = Field(
        default_factory=dict,
        description='Source priority for traits (JSON), e.g. {"crm": 10}: a higher number wins '
        "over a more recent value from a lower one.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token that may read /metrics (besides the admin token), for a "
        "Prometheus scraper that should not hold the admin token. Unset: only the admin "
        "token reads it.",
    )
    ready_lag_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Freshness budget of /readyz: the server is not ready while its pipeline "
        "is more than this many seconds behind the log.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="How the server writes its log on stderr: 'text' for people, 'json' "
        "(one object a line, with the request id) for a log collector.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="The least important log lines written."
    )
    computed_traits_file: Path | None = Field(
        default=None, description="A YAML file of computed trait definitions, loaded at start."
    )
    predict_window_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="Churn and purchase propensity: the days ahead a score is about (no "
        "order in them: churned; an order: purchased).",
    )
    predict_horizon_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Lifetime value: the days ahead expected purchases and CLV are counted "
        "over (also the BG/NBD holdout, at most a third of the history).",
    )
    predict_refresh_hours: float = Field(
        default=24.0,
        ge=0,
        description="`tessera serve` refits the predictive models and rescores everyone this "
        "often (0: only on demand, `tessera predict fit`).",
    )

    product_id_properties: list[str] = Field(
        default_factory=lambda: ["product_id"],
        min_length=1,
        description="Event property paths that name a product, tried in order (in the "
        'properties and in each item of `products`), e.g. `["product_id", "sku"]`: '
        "read by recommendations, product conditions in segments, product traits, loyalty "
        "and the call-centre screen. A change applies to new evaluations; `tessera rebuild` "
        "re-reads the history with it.",
    )
    recommendations_interval_minutes: float = Field(
        default=60.0,
        ge=0,
        description="How often `tessera serve` retrains the recommendation model from the "
        "event log (0: only on demand, `tessera recommendations train`).",
    )
    recommendations_neighbours: int = Field(
        default=50, ge=1, le=1000, description="Similar products kept per product."
    )
    recommendations_exclude_bought_days: int = Field(
        default=30,
        ge=0,
        description="A product a person bought in the last N days is never recommended to "
        "them (0: bought products may be recommended again).",
    )
    personalize_refresh_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often the decision API's memory reads offers' eligibility and "
        "segment memberships over everyone (time windows slide); between those it follows "
        "just the profiles the pipeline changed, every half second.",
    )
    personalize_exposed_traits: list[str] = Field(
        default_factory=list,
        description="Traits the decision API may answer to a browser (`traits.NAME` or "
        "`computed.NAME`); none by default, so no personal data leaves unless listed.",
    )
    personalize_exposed_segments: list[str] = Field(
        default_factory=list,
        description="Segments whose names the decision API may answer to a browser.",
    )
    personalize_recommendations: int = Field(
        default=5, ge=0, le=50, description="Recommendations a decision answers by default."
    )
    offer_strategy: Literal["priority", "weighted", "experiment"] = Field(
        default="priority",
        description="How a decision picks among the offers a person is eligible for: the "
        "highest priority, at random by weight, or an experiment (variants by weight, "
        "deterministic per person, with a holdout).",
    )
    offer_holdout_share: float = Field(
        default=0.1,
        ge=0,
        le=0.5,
        description="Share of people the experiment strategy holds out (no offer), to "
        "measure each offer's lift.",
    )

    @field_validator("oidc_issuer")
    @classmethod
    def _https_issuer(cls, issuer: str | None) -> str | None:
        """An id_token fetched over plain HTTP could be swapped on the way: https only,
        except on this machine (a provider in development or tests)."""
        if not issuer:
            return None
        parts = urlsplit(issuer)
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError(
                f"TESSERA_OIDC_ISSUER must be an https URL (http only for localhost), got "
                f"{issuer!r}, e.g. https://id.example.com/realms/acme"
            )
        return issuer

    @model_validator(mode="after")
    def _oidc_whole(self) -> Settings:
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError(
                "TESSERA_OIDC_ISSUER is set but TESSERA_OIDC_CLIENT_ID is not: give the client "
                "id registered at the provider (or unset the issuer)"
            )
        return self

    @field_validator("product_id_properties")
    @classmethod
    def _product_paths(cls, paths: list[str]) -> list[str]:
        """Plain names or dotted paths (`sku`, `item.sku`): they become constant JSON paths
        in SQL, so anything else is refused at start."""
        for path in paths:
            if not PRODUCT_PATH.match(path):
                raise ValueError(
                    f"TESSERA_PRODUCT_ID_PROPERTIES: {path!r} must be a property name or a "
                    "dotted path of names (letters, digits, '_'), e.g. product_id, sku, item.sku"
                )
        return list(dict.fromkeys(paths))

    @field_validator("personalize_exposed_traits")
    @classmethod
    def _exposed_names(cls, names: list[str]) -> list[str]:
        """`traits.NAME` or `computed.NAME`: a name the decision API could never find is a
        mistake to say at start, not a trait silently left out of every answer."""
        for name in names:
            where, _, key = name.partition(".")
            if where not in ("traits", "computed") or not key:
                raise ValueError(
                    f"TESSERA_PERSONALIZE_EXPOSED_TRAITS: {name!r} must be traits.NAME or "
                    "computed.NAME (e.g. traits.country)"
                )
        return names

    def consent_policy(self, purpose: str) -> Literal["required", "unless_refused"]:
        """The default for a person whose consent does not answer `purpose`."""
        if purpose in self.consent_defaults:
            return self.consent_defaults[purpose]
        return self.advertising_consent if purpose == "advertising" else "unless_refused"

    def consent_policies(self) -> dict[str, str]:
        """Every purpose's policy, as the enforcement function takes them."""
        return {purpose: self.consent_policy(purpose) for purpose in self.consent_purposes}

    def check_admin_token(self) -> None:
        """Refuse a configured admin token too short to resist guessing (a server calls
        this before it starts; tools that never listen do not need to)."""
        token = self.admin_token
        if token and len(token.strip()) < MIN_ADMIN_TOKEN_CHARS:
            raise InvalidField(
                f"TESSERA_ADMIN_TOKEN is {len(token.strip())} characters; it must be at least "
                f'{MIN_ADMIN_TOKEN_CHARS} (e.g. the output of `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`), or unset it and Tessera generates one '
                "in DATA_DIR/admin-token",
                field="admin_token",
            )

    @property
    def database_path(self) -> Path:
        """The DuckDB file inside the data directory."""
        return self.data_dir / "tessera.duckdb"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin-token"

    @property
    def source_keys_path(self) -> Path:
        """The write keys (hashed) the core publishes for the collector processes."""
        return self.data_dir / "source-keys.json"

    @property
    def suppression_path(self) -> Path:
        """The suppressed identifiers' salted hashes, published for every collect path."""
        return self.data_dir / "suppressed.json"

    @property
    def run_dir(self) -> Path:
        """Where the core process listens for its collectors (mode 0700)."""
        return self.data_dir / "run"

    @property
    def server_file_path(self) -> Path:
        """Written by a running `tessera serve` so the CLI knows to talk to it."""
        return self.data_dir / "server.json"

    @property
    def log_dir(self) -> Path:
        """The event log in files: one folder of segment files per writer process."""
        return self.data_dir / "log"

    @property
    def rejects_dir(self) -> Path:
        return self.data_dir / "rejects"

    def lifetime_days(self, identifier_type: str) -> int:
        """How long anonymous data keyed by this identifier type lives after last seen."""
        return self.anonymous_lifetimes.get(identifier_type, self.anonymous_lifetime_days)

    @property
    def shortest_lifetime_days(self) -> int:
        """The shortest lifetime of any identifier type (the purge's first filter)."""
        return min([self.anonymous_lifetime_days, *self.anonymous_lifetimes.values()])
