"""Service settings: one typed object, loaded once at start and injected.

Values come from ``REGISTRY_*`` environment variables, optionally on top of a TOML file named
by ``REGISTRY_CONFIG_FILE`` (environment wins). Nothing here runs at import time; tests build
``Settings`` directly.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import msgspec

from registry.core.proxies import TrustedProxies
from registry.core.tiers import TierLimits, parse_tier_limits

if TYPE_CHECKING:
    from collections.abc import Mapping

PREFIX = "REGISTRY_"
_MAX_PORT = 65535
_MAX_JSON_DEPTH = 256
_MIN_JSON_DEPTH = 2
# Unrelated images differ in about half of a 64-bit perceptual hash.
_MAX_PHASH_DISTANCE = 32
_MIN_STATUS_LIST = 131_072
# 2-bit lists (registry.consent.status.LIST_BITS) of this size fill the verifier's 16 MiB cap.
_MAX_STATUS_LIST = 67_108_864
_MIN_SESSION_SECONDS = 60
# verifier.clock.MAX_LEEWAY_SECONDS, not imported so that loading settings stays light.
_MAX_TOKEN_LEEWAY = 60
# Longest database bounds, in seconds: beyond them a request is as good as hung.
_MAX_DB_WAIT = 600
# PostgreSQL counts its timeouts in milliseconds; below 10 ms nothing would ever finish.
_MIN_DB_BOUND = 0.01
# Longest a revoked API key may keep working on a process that did not revoke it.
_MAX_KEY_CACHE_SECONDS = 60


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and says what is expected."""

    code = "settings_invalid"


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    # Storage
    database_url: str | None = None
    """PostgreSQL URL, as the service's role. Unset: run an embedded PostgreSQL in
    ``data_dir``, with an owner role and a service role of its own."""
    database_owner_url: str | None = None
    """PostgreSQL URL of the same database as the tables' owner, for migrations (``registry
    migrate`` and the service's start). Unset: ``database_url`` migrates too."""
    data_dir: Path = Path(".registry")
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_acquire_timeout: float = 5.0
    """Seconds a request waits for a pooled connection (then 503 database_unavailable)."""
    db_statement_timeout: float = 10.0
    """Seconds one statement of the service may run on the server (PostgreSQL's
    statement_timeout, set per connection; then 503). Migrations set their own."""
    db_lock_timeout: float = 3.0
    """Seconds one statement may wait for a lock (PostgreSQL's lock_timeout; then 503)."""
    db_connect_attempts: int = 10
    """Connection attempts at start, one second apart, before giving up."""

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    issuer: str | None = None
    """Public base URL, used as ``iss`` and in status list URIs. Default: http://host:port."""
    max_json_bytes: int = 1_048_576
    max_upload_bytes: int = 26_214_400
    max_json_depth: int = 32
    rate_limit_per_minute: int = 1200
    """Per API client (or per address for public endpoints), for the whole service: every
    process checks the same buckets, in PostgreSQL or, with REGISTRY_REDIS_URL, in Redis."""
    tier_limits: str | None = None
    """API clients' limits per tier, ``public=N,verified=N,enterprise=N`` requests a minute
    (any of them; the others are a quarter, one and five times REGISTRY_RATE_LIMIT_PER_MINUTE).
    A client's risk factor scales its tier's limit down (``registry.core.tiers``)."""
    risk_interval: float = 60.0
    """Seconds between recomputations of the clients' risk factors."""
    redis_url: str | None = None
    """``redis://`` or ``rediss://`` URL of a Redis that keeps the rate-limit buckets instead
    of PostgreSQL. It must answer at start; while it is unreachable later, the limits are
    checked in PostgreSQL (``registry.core.ratelimit_redis``)."""
    api_key_cache_seconds: float = 5.0
    """Seconds (0..60) a process reuses an API key's successful lookup instead of asking the
    database on every request. This bounds how late a revocation or key removal made
    elsewhere (another process, the ``registry clients`` commands) is honoured here; one made
    through this process's admin API is honoured at once, an expiry on time. 0: every request
    looks its key up."""
    trusted_proxies: str = ""
    """Comma-separated IP addresses or CIDR networks of reverse proxies whose
    ``Forwarded`` / ``X-Forwarded-For`` name the caller (``registry.core.proxies``); empty: none."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True

    # Keys
    master_key: str | None = None
    """AES-256 key (base64url of 32 bytes) that encrypts private keys at rest."""
    signing_alg: Literal["EdDSA", "ES256"] = "EdDSA"
    key_refresh_interval: float = 5.0
    bootstrap_admin_key: str | None = None
    c2pa_cert_chain: Path | None = None
    c2pa_private_key: Path | None = None
    c2pa_anchor: Path | None = None
    c2pa_thumbnails: bool = False
    c2pa_tsa_url: str | None = None
    """An RFC 3161 timestamp authority (``http(s)://`` URL): every signed output's signature
    carries its timestamp, and signing fails (503 timestamp_unavailable, nothing stored) when
    it gives none. Needs REGISTRY_C2PA_TSA_ALLOWED_HOSTS and REGISTRY_C2PA_TSA_TRUST_ANCHORS."""
    c2pa_tsa_allowed_hosts: str = ""
    """Comma-separated hosts, IPs or CIDR networks the TSA URL may reach; required with
    REGISTRY_C2PA_TSA_URL (a loopback or private address must be listed itself)."""
    c2pa_tsa_trust_anchors: Path | None = None
    """PEM bundle of the roots a TSA's certificate must chain to: when signing, a timestamp
    that does not is refused; when verifying, it makes a timestamp (never a signer) trusted."""

    # Verification
    trust_anchors: Path | None = None
    """PEM bundle of C2PA trust anchors (our own anchor is always added)."""
    max_image_pixels: int = 40_000_000
    max_image_bytes: int = 26_214_400
    remote_manifest_hosts: str = ""
    """Comma-separated hosts a remote C2PA manifest may be fetched from; empty: never fetch."""
    image_work_threads: int = 2
    """Threads for decoding, hashing and C2PA work; at most this many images at once."""
    image_work_timeout: float = 20.0
    """Seconds one image may wait for a worker, and then to be processed."""

    # Provenance
    provenance_lookup_max_distance: int = 8
    """Bits of 64 by which a perceptual hash may differ and still find a signed output."""
    provenance_watermark: bool = True
    """Mark signed outputs with the invisible watermark soft binding (docs/watermark.md)."""

    # Consent
    token_default_ttl: int = 900
    token_max_ttl: int = 3600
    token_leeway: int = 5
    """Seconds of clock skew allowed on a consent token's ``exp``, ``nbf`` and ``iat``, when
    verifying it (online, the gate, signing); the offline verifier's default is the same."""
    max_consent_validity_days: int = 3650
    consent_signer_anchors: Path | None = None
    """PEM bundle of X.509 anchors for consent signers who name their key with ``x5c``."""
    status_list_size: int = 131_072
    """Entries per token status list: at least 131,072, a multiple of 8 (indexes are random)."""
    status_list_ttl: int = 300
    """Seconds a relying party may cache a status list (its ``ttl`` and Cache-Control max-age)."""

    # Moderation
    policy_file: Path | None = None
    """The publish-gate policy (TOML, see moderation/default_policy.toml); unset: the shipped
    strict default. Validated at start; its SHA-256 is stored with every decision."""
    classifier_url: str | None = None
    """An HTTP classifier (contract in moderation/classifiers.py) the gate sends each image
    to; unset: only the caller's supplied scores count."""
    classifier_timeout: float = 5.0
    """Seconds the classifier may take per image; later counts as classifier_unavailable."""
    classifier_allowed_hosts: str = ""
    """Comma-separated hosts, IPs or CIDR networks the classifier URL may reach; required
    with REGISTRY_CLASSIFIER_URL (a private address must be listed itself)."""
    nudenet_classifier: bool = False
    """Also run the offline NudeNet detector (``pip install nudenet``) for sexual_content."""
    image_fetch_allowed_hosts: str = ""
    """Comma-separated hosts, IPs or CIDR networks the gate may fetch ``image_url`` from;
    empty: ``image_url`` is refused and images must be uploaded. Loopback, link-local,
    private and reserved addresses are refused unless listed themselves."""
    image_fetch_timeout: float = 10.0
    """Seconds one ``image_url`` fetch may take, redirects (same host only) included."""
    gate_image_timeout: float = 15.0
    """Seconds the gate may spend decoding and hashing an image (then: evidence_timeout)."""
    gate_provenance_timeout: float = 15.0
    """Seconds the gate may spend reading the image's C2PA manifest."""
    gate_consent_timeout: float = 5.0
    """Seconds the gate may spend verifying one consent token (status read included)."""
    gate_hashes_timeout: float = 15.0
    """Seconds the gate may spend matching an image against the protected hash lists,
    including waiting for this process to reload them after a change (a million entries
    take a few seconds)."""
    hash_lists_poll_interval: float = 1.0
    """Seconds between background checks for changed hash lists, so the reload usually
    happens before a request needs it."""

    # Review queue, appeals, takedown notices (registry.review)
    review_lease_seconds: int = 900
    """Seconds a claimed review ticket stays with its reviewer before it returns to the queue."""
    webhook_hosts: str = ""
    """Comma-separated hosts, IPs or CIDR networks takedown webhooks may point at; empty: none."""
    webhook_timeout: float = 10.0
    """Seconds one takedown notice delivery attempt may take."""
    takedown_poll_interval: float = 5.0
    """Seconds between rounds of the takedown worker (new withdrawals, due retries)."""
    takedown_retry_base: float = 30.0
    """Seconds before the first retry of a failed delivery; each later wait doubles."""
    takedown_retry_max: float = 3600.0
    """Longest wait between two delivery attempts, in seconds."""
    takedown_max_attempts: int = 8
    """Attempts after which a delivery is marked failed."""
    stats_refresh_interval: float = 60.0
    """Seconds between refreshes of the moderation KPI gauges on /metrics."""
    review_image_retention_days: int = 30
    """Days a review image is kept at most, decided or not (then the reviewer sees none)."""

    # Privacy
    shred_interval: float = 60.0
    """Seconds between rounds of the shredder: after an erasure (or any deleted data key) it
    rewrites the data-key table and retires the WAL that held the deleted keys."""

    # Audit
    checkpoint_interval: float = 300.0

    # Console (web pages)
    console_session_ttl: int = 28_800
    """Seconds a console sign-in lasts at most."""
    console_idle_timeout: int = 1_800
    """Seconds without a request after which a console session ends."""

    @property
    def public_issuer(self) -> str:
        return (self.issuer or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def remote_manifest_host_list(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.remote_manifest_hosts.split(",") if h.strip())

    @property
    def webhook_host_list(self) -> tuple[str, ...]:
        return _host_list(self.webhook_hosts)

    @property
    def c2pa_tsa_allowed_host_list(self) -> tuple[str, ...]:
        return _host_list(self.c2pa_tsa_allowed_hosts)

    @property
    def classifier_allowed_host_list(self) -> tuple[str, ...]:
        return _host_list(self.classifier_allowed_hosts)

    @property
    def image_fetch_allowed_host_list(self) -> tuple[str, ...]:
        return _host_list(self.image_fetch_allowed_hosts)

    @property
    def tier_limit_table(self) -> TierLimits:
        return parse_tier_limits(self.tier_limits, per_minute=self.rate_limit_per_minute)

    @property
    def trusted_proxy_networks(self) -> TrustedProxies:
        return TrustedProxies.parse(self.trusted_proxies)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    def __post_init__(self) -> None:
        _validate(self)
        _validate_trusted_proxies(self)

    def redacted(self) -> dict[str, Any]:
        """Settings safe to log: secrets replaced, URL passwords hidden."""
        out: dict[str, Any] = msgspec.to_builtins(self, enc_hook=str)
        for secret in ("master_key", "bootstrap_admin_key"):
            if out.get(secret):
                out[secret] = "***"
        for name in ("database_url", "database_owner_url", "redis_url"):
            url = getattr(self, name)
            parts = urlsplit(url or "")
            if parts.password:
                netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
                out[name] = parts._replace(netloc=netloc).geturl()
        return out


def _host_list(value: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in value.split(",") if h.strip())


def _validate_database_urls(s: Settings) -> None:
    for name, url in (
        ("DATABASE_URL", s.database_url),
        ("DATABASE_OWNER_URL", s.database_owner_url),
    ):
        if url is None:
            continue
        parts = urlsplit(url)
        if parts.scheme not in {"postgresql", "postgres"}:
            msg = f"REGISTRY_{name} must be a postgresql:// URL"
            raise SettingsError(msg)
        if not (parts.hostname or "host=" in parts.query):
            msg = f"REGISTRY_{name} names no host (postgresql://user@host:5432/dbname)"
            raise SettingsError(msg)
    if s.database_owner_url is not None and s.database_url is None:
        # The embedded server makes its own roles; an owner URL there points elsewhere.
        msg = "REGISTRY_DATABASE_OWNER_URL needs REGISTRY_DATABASE_URL (the service's role)"
        raise SettingsError(msg)


def _validate_redis_url(s: Settings) -> None:
    if s.redis_url is None:
        return
    parts = urlsplit(s.redis_url)
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        msg = "REGISTRY_REDIS_URL must be a redis:// or rediss:// URL naming a host"
        raise SettingsError(msg)
    try:
        parts.port  # noqa: B018 - raises ValueError when the port is not a number in range
    except ValueError:
        msg = "REGISTRY_REDIS_URL names a port that is not 0..65535"
        raise SettingsError(msg) from None
    database = parts.path.strip("/")
    if database and not database.isdigit():
        msg = "REGISTRY_REDIS_URL: the path must be a database number (redis://host:6379/0)"
        raise SettingsError(msg)


def _validate_tsa(s: Settings) -> None:
    if s.c2pa_tsa_url is None:
        return
    parts = urlsplit(s.c2pa_tsa_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        msg = "REGISTRY_C2PA_TSA_URL must be an http(s) URL naming a host"
        raise SettingsError(msg)
    if parts.username is not None or parts.fragment:
        msg = "REGISTRY_C2PA_TSA_URL may not carry credentials or a fragment"
        raise SettingsError(msg)
    if not s.c2pa_tsa_allowed_host_list:
        msg = "REGISTRY_C2PA_TSA_URL needs REGISTRY_C2PA_TSA_ALLOWED_HOSTS"
        raise SettingsError(msg)
    if s.c2pa_tsa_trust_anchors is None:
        msg = "REGISTRY_C2PA_TSA_URL needs REGISTRY_C2PA_TSA_TRUST_ANCHORS (the TSA's root)"
        raise SettingsError(msg)


def _validate(s: Settings) -> None:
    _validate_database_urls(s)
    _validate_redis_url(s)
    try:
        s.tier_limit_table  # noqa: B018 - parsed for its errors
    except ValueError as exc:
        msg = f"REGISTRY_TIER_LIMITS: {exc}"
        raise SettingsError(msg) from None
    _validate_tsa(s)
    if s.issuer is not None:
        parts = urlsplit(s.issuer)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            msg = "REGISTRY_ISSUER must be an absolute http(s) URL such as https://registry.example"
            raise SettingsError(msg)
    checks: list[tuple[str, bool]] = [
        ("REGISTRY_PORT must be 1..65535", 0 < s.port <= _MAX_PORT),
        ("REGISTRY_WORKERS must be >= 1", s.workers >= 1),
        (
            "REGISTRY_DB_POOL_MIN must be >= 1 and <= REGISTRY_DB_POOL_MAX",
            1 <= s.db_pool_min <= s.db_pool_max,
        ),
        ("REGISTRY_DB_CONNECT_ATTEMPTS must be >= 1", s.db_connect_attempts >= 1),
        (
            "REGISTRY_DB_ACQUIRE_TIMEOUT must be in (0, 600] seconds",
            0 < s.db_acquire_timeout <= _MAX_DB_WAIT,
        ),
        (
            "REGISTRY_DB_STATEMENT_TIMEOUT must be in [0.01, 600] seconds",
            _MIN_DB_BOUND <= s.db_statement_timeout <= _MAX_DB_WAIT,
        ),
        (
            "REGISTRY_DB_LOCK_TIMEOUT must be 0.01 seconds to REGISTRY_DB_STATEMENT_TIMEOUT",
            _MIN_DB_BOUND <= s.db_lock_timeout <= s.db_statement_timeout,
        ),
        (
            "REGISTRY_TOKEN_DEFAULT_TTL must be 1..REGISTRY_TOKEN_MAX_TTL",
            0 < s.token_default_ttl <= s.token_max_ttl,
        ),
        (
            "REGISTRY_TOKEN_LEEWAY must be 0..60 seconds",
            0 <= s.token_leeway <= _MAX_TOKEN_LEEWAY,
        ),
        (
            "REGISTRY_MAX_JSON_DEPTH must be 2..256",
            _MIN_JSON_DEPTH <= s.max_json_depth <= _MAX_JSON_DEPTH,
        ),
        ("REGISTRY_RATE_LIMIT_PER_MINUTE must be >= 1", s.rate_limit_per_minute >= 1),
        ("REGISTRY_RISK_INTERVAL must be > 0", s.risk_interval > 0),
        (
            "REGISTRY_API_KEY_CACHE_SECONDS must be 0..60 seconds",
            0 <= s.api_key_cache_seconds <= _MAX_KEY_CACHE_SECONDS,
        ),
        ("REGISTRY_CHECKPOINT_INTERVAL must be > 0", s.checkpoint_interval > 0),
        ("REGISTRY_IMAGE_WORK_THREADS must be >= 1", s.image_work_threads >= 1),
        ("REGISTRY_IMAGE_WORK_TIMEOUT must be > 0", s.image_work_timeout > 0),
        (
            "REGISTRY_PROVENANCE_LOOKUP_MAX_DISTANCE must be 0..32",
            0 <= s.provenance_lookup_max_distance <= _MAX_PHASH_DISTANCE,
        ),
        (
            "REGISTRY_STATUS_LIST_SIZE must be a multiple of 8, from 131072 to 67108864",
            _MIN_STATUS_LIST <= s.status_list_size <= _MAX_STATUS_LIST
            and s.status_list_size % 8 == 0,
        ),
        ("REGISTRY_STATUS_LIST_TTL must be >= 1", s.status_list_ttl >= 1),
        ("REGISTRY_MAX_CONSENT_VALIDITY_DAYS must be >= 1", s.max_consent_validity_days >= 1),
        ("REGISTRY_REVIEW_LEASE_SECONDS must be >= 1", s.review_lease_seconds >= 1),
        ("REGISTRY_WEBHOOK_TIMEOUT must be > 0", s.webhook_timeout > 0),
        ("REGISTRY_TAKEDOWN_POLL_INTERVAL must be > 0", s.takedown_poll_interval > 0),
        (
            "REGISTRY_TAKEDOWN_RETRY_BASE must be > 0 and <= REGISTRY_TAKEDOWN_RETRY_MAX",
            0 < s.takedown_retry_base <= s.takedown_retry_max,
        ),
        ("REGISTRY_TAKEDOWN_MAX_ATTEMPTS must be >= 1", s.takedown_max_attempts >= 1),
        ("REGISTRY_STATS_REFRESH_INTERVAL must be > 0", s.stats_refresh_interval > 0),
        ("REGISTRY_REVIEW_IMAGE_RETENTION_DAYS must be >= 1", s.review_image_retention_days >= 1),
        ("REGISTRY_SHRED_INTERVAL must be > 0", s.shred_interval > 0),
        (
            "REGISTRY_CONSOLE_IDLE_TIMEOUT must be 60..REGISTRY_CONSOLE_SESSION_TTL seconds",
            _MIN_SESSION_SECONDS <= s.console_idle_timeout <= s.console_session_ttl,
        ),
        ("REGISTRY_CLASSIFIER_TIMEOUT must be in (0, 300]", 0 < s.classifier_timeout <= 300),  # noqa: PLR2004
        ("REGISTRY_IMAGE_FETCH_TIMEOUT must be > 0", s.image_fetch_timeout > 0),
        ("REGISTRY_HASH_LISTS_POLL_INTERVAL must be > 0", s.hash_lists_poll_interval > 0),
        (
            "REGISTRY_GATE_*_TIMEOUT values must be > 0",
            min(
                s.gate_image_timeout,
                s.gate_provenance_timeout,
                s.gate_consent_timeout,
                s.gate_hashes_timeout,
            )
            > 0,
        ),
        (
            "REGISTRY_CLASSIFIER_URL needs REGISTRY_CLASSIFIER_ALLOWED_HOSTS",
            s.classifier_url is None or bool(s.classifier_allowed_host_list),
        ),
        (
            "REGISTRY_C2PA_CERT_CHAIN and REGISTRY_C2PA_PRIVATE_KEY go together",
            (s.c2pa_cert_chain is None) == (s.c2pa_private_key is None),
        ),
    ]
    for message, ok in checks:
        if not ok:
            raise SettingsError(message)
    for name in (
        "trust_anchors",
        "policy_file",
        "c2pa_cert_chain",
        "c2pa_private_key",
        "c2pa_anchor",
        "c2pa_tsa_trust_anchors",
        "consent_signer_anchors",
    ):
        path = getattr(s, name)
        if path is not None and not Path(path).is_file():
            msg = f"{PREFIX}{name.upper()} names {path}, which is not a readable file"
            raise SettingsError(msg)


def _validate_trusted_proxies(s: Settings) -> None:
    try:
        TrustedProxies.parse(s.trusted_proxies)
    except ValueError as exc:
        msg = f"REGISTRY_TRUSTED_PROXIES: {exc}"
        raise SettingsError(msg) from None


def _decode_path(type_: type, value: Any) -> Any:
    if type_ is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment (and the TOML file it may name)."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    config_file = env.get(f"{PREFIX}CONFIG_FILE")
    if config_file:
        try:
            raw.update(tomllib.loads(Path(config_file).read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            msg = f"{PREFIX}CONFIG_FILE {config_file}: {exc}"
            raise SettingsError(msg) from exc
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    for key, value in env.items():
        if not key.startswith(PREFIX) or key == f"{PREFIX}CONFIG_FILE":
            continue
        name = key.removeprefix(PREFIX).lower()
        if name in fields:
            raw[name] = value
    unknown = sorted(set(raw) - fields)
    if unknown:
        msg = f"unknown setting(s) in {PREFIX}CONFIG_FILE: {', '.join(unknown)}"
        raise SettingsError(msg)
    try:
        # strict=False lets "8000" from the environment become an int, "true" a bool.
        return msgspec.convert(raw, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        path = str(exc).rsplit("at `$.", 1)
        where = f" ({PREFIX}{path[1].rstrip('`').upper()})" if len(path) == 2 else ""  # noqa: PLR2004
        msg = f"invalid setting{where}: {exc}"
        raise SettingsError(msg) from exc
