"""Composition: the service's parts built from settings (no web framework here).

``registry.app`` wires them into Litestar; the CLI uses them to prepare, migrate and run
commands without importing the HTTP layer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import asyncpg
import msgspec
from cryptography import x509

import keys
from keys.c2pa_identity import C2paIdentityInvalid, load_identity
from moderation import (
    Classifier,
    HttpClassifier,
    ModerationError,
    NudeNetClassifier,
    Policy,
    PolicyError,
    default_policy,
    load_policy,
)
from registry import api_keys, operations
from registry.consent.crypto import FieldCipher
from registry.consent.records import DataKeys
from registry.consent.service import ConsentService, ConsentSettings, WithdrawalListers
from registry.consent.shredding import shred_forever
from registry.core import audit, auth, db, kpi_snapshot, logs, ratelimit, signing_identity
from registry.core.errors import InvalidRequest, RegistryError
from registry.core.outbound import ImageFetcher, parse_allow_list
from registry.core.settings import Settings, SettingsError
from registry.core.uow import unit_of_work
from registry.gate import GateService, GateSettings, HashLists, StoredDecisions
from registry.gate.vault import DecisionVault
from registry.provenance import (
    BoundedWork,
    ProvenanceService,
    ProvenanceSettings,
    affected_outputs,
)
from registry.provenance.timestamps import Timestamping
from registry.review import (
    Backoff,
    Stats,
    TakedownWorker,
    WebhookSender,
    affected_decisions,
    compute_stats,
    publish_stats,
)
from registry.services import Services
from registry.web import ReviewImageStore, expire_forever
from verifier.errors import TrustSettingsInvalid
from verifier.imaging import ImageLimits
from verifier.sign import TimestampAuthority
from verifier.verify import TrustSettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from keys.c2pa_identity import C2paIdentity
    from registry.provenance import TokenChecker


log = logging.getLogger(__name__)


def resolve_master_key(settings: Settings) -> keys.MasterKey:
    """The key that encrypts private keys at rest; generated only for embedded development."""
    if settings.master_key:
        try:
            return keys.MasterKey.from_text(settings.master_key)
        except keys.MasterKeyInvalid as exc:
            msg = f"REGISTRY_MASTER_KEY: {exc}"
            raise SettingsError(msg) from None
    if not settings.embedded_database:
        msg = (
            "REGISTRY_MASTER_KEY is required with an external database, so every service "
            "process can decrypt the shared signing keys (generate one with "
            "`registry keys new-master-key`)"
        )
        raise SettingsError(msg)
    path = settings.data_dir / "master.key"
    key, created = keys.MasterKey.load_or_create(path)
    log.warning(
        "development setup: the master key %s %s, beside the database it protects: a copy "
        "of that directory opens everything sealed in it, erased consents included; set "
        "REGISTRY_MASTER_KEY (kept outside the database and its backups) in production",
        "was generated into" if created else "is read from",
        path,
    )
    return key


@dataclass(frozen=True, kw_only=True)
class Database:
    """Where the service connects, and as whom migrations run."""

    url: str
    """The service's role."""
    owner_url: str | None
    """The tables' owner, who migrates; None: the service's own role does (as before 0010)."""
    embedded: db.EmbeddedPostgres | None


async def resolve_database(settings: Settings) -> Database:
    """The database URLs, starting (or joining) the embedded server when none is configured."""
    if settings.database_url:
        return Database(
            url=settings.database_url, owner_url=settings.database_owner_url, embedded=None
        )
    embedded = await db.start_embedded(settings.data_dir.resolve())
    return Database(url=embedded.url, owner_url=embedded.owner_url, embedded=embedded)


def check_settings(settings: Settings) -> None:
    """Refuse settings that cannot work before any database is started or reached.

    Loading checks each value's type and range; this reads and parses what a start would
    otherwise meet only after connecting (keys, PEM files, the policy, allow-lists), so a
    bad value stops a command with a message naming the setting, nothing started or written.
    The start parses them again to use them (small files); the classifier is checked there,
    before the database, as its client is built.
    """
    if settings.bootstrap_admin_key is not None:
        try:
            auth.check_key_shape(settings.bootstrap_admin_key)
        except InvalidRequest as exc:
            raise SettingsError(str(exc)) from None
    if settings.master_key:
        resolve_master_key(settings)
    gate_policy(settings)
    consent_settings(settings)
    _trust(settings, _operator_anchors(settings))
    timestamping(settings)
    if settings.c2pa_cert_chain is not None and settings.c2pa_private_key is not None:
        try:
            load_identity(settings.c2pa_cert_chain, settings.c2pa_private_key, settings.c2pa_anchor)
        except C2paIdentityInvalid as exc:
            msg = f"REGISTRY_C2PA_CERT_CHAIN / REGISTRY_C2PA_PRIVATE_KEY: {exc}"
            raise SettingsError(msg) from None
    for name, hosts in (
        ("REGISTRY_WEBHOOK_HOSTS", settings.webhook_host_list),
        ("REGISTRY_IMAGE_FETCH_ALLOWED_HOSTS", settings.image_fetch_allowed_host_list),
    ):
        try:
            parse_allow_list(hosts)
        except ValueError as exc:
            msg = f"{name}: {exc}"
            raise SettingsError(msg) from None


def consent_settings(settings: Settings) -> ConsentSettings:
    """The consent registry's settings, composed from the service's."""
    anchors: tuple[x509.Certificate, ...] = ()
    if settings.consent_signer_anchors is not None:
        try:
            anchors = tuple(
                x509.load_pem_x509_certificates(settings.consent_signer_anchors.read_bytes())
            )
        except (OSError, ValueError) as exc:
            msg = f"REGISTRY_CONSENT_SIGNER_ANCHORS: not a PEM certificate bundle ({exc})"
            raise SettingsError(msg) from None
    return ConsentSettings(
        issuer=settings.public_issuer,
        token_default_ttl=settings.token_default_ttl,
        token_max_ttl=settings.token_max_ttl,
        max_validity=timedelta(days=settings.max_consent_validity_days),
        status_list_size=settings.status_list_size,
        status_list_ttl=settings.status_list_ttl,
        image_limits=ImageLimits(
            max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
        ),
        token_leeway_seconds=settings.token_leeway,
        signer_anchors=anchors,
    )


def provenance_service(
    settings: Settings,
    *,
    c2pa: C2paIdentity,
    keyring: keys.KeyRing,
    tokens: TokenChecker,
    decisions: StoredDecisions | None = None,
) -> ProvenanceService:
    """Provenance, trusting REGISTRY_TRUST_ANCHORS plus our own C2PA anchor (and the TSA's
    anchors for timestamps only), stamping with REGISTRY_C2PA_TSA_URL when it is set."""
    own = [c2pa.anchor_pem] if c2pa.anchor_pem else []
    trust = _trust(settings, own + _operator_anchors(settings))
    return ProvenanceService(
        settings=ProvenanceSettings(
            issuer=settings.public_issuer,
            image_limits=ImageLimits(
                max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
            ),
            lookup_max_distance=settings.provenance_lookup_max_distance,
            thumbnails=settings.c2pa_thumbnails,
            watermark=settings.provenance_watermark,
        ),
        trust=trust,
        identity=c2pa,
        keyring=keyring,
        tokens=tokens,
        work=BoundedWork(threads=settings.image_work_threads, timeout=settings.image_work_timeout),
        decisions=decisions,
        timestamping=timestamping(settings),
    )


def timestamping(settings: Settings) -> Timestamping | None:
    """The TSA that stamps signed outputs, its host checked against its allow-list."""
    if settings.c2pa_tsa_url is None:
        return None
    try:
        authority = TimestampAuthority(
            url=settings.c2pa_tsa_url, anchors_pem=_tsa_anchors(settings)
        )
        return Timestamping(authority, settings.c2pa_tsa_allowed_host_list)
    except TrustSettingsInvalid as exc:
        msg = f"REGISTRY_C2PA_TSA_TRUST_ANCHORS: {exc.message}"
        raise SettingsError(msg) from None
    except ValueError as exc:
        msg = f"REGISTRY_C2PA_TSA_URL / REGISTRY_C2PA_TSA_ALLOWED_HOSTS: {exc}"
        raise SettingsError(msg) from None


def _tsa_anchors(settings: Settings) -> str:
    """REGISTRY_C2PA_TSA_TRUST_ANCHORS as text the SDK accepts ("" when unset)."""
    if settings.c2pa_tsa_trust_anchors is None:
        return ""
    path = settings.c2pa_tsa_trust_anchors
    try:
        text = path.read_text("ascii")
        TrustSettings(timestamp_anchors_pem=text)
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"REGISTRY_C2PA_TSA_TRUST_ANCHORS: cannot read {path} ({exc})"
        raise SettingsError(msg) from None
    except TrustSettingsInvalid as exc:
        msg = f"REGISTRY_C2PA_TSA_TRUST_ANCHORS: {exc.message}"
        raise SettingsError(msg) from None
    return text


def _operator_anchors(settings: Settings) -> list[str]:
    if settings.trust_anchors is None:
        return []
    try:
        return [settings.trust_anchors.read_text("ascii")]
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"REGISTRY_TRUST_ANCHORS: cannot read {settings.trust_anchors} ({exc})"
        raise SettingsError(msg) from None


def _trust(settings: Settings, bundles: list[str]) -> TrustSettings:
    try:
        return TrustSettings.from_pem(
            *bundles,
            allow_remote_hosts=settings.remote_manifest_host_list,
            timestamp_anchors_pem=_tsa_anchors(settings),
        )
    except TrustSettingsInvalid as exc:
        msg = f"REGISTRY_TRUST_ANCHORS: {exc.message}"
        raise SettingsError(msg) from None


def gate_policy(settings: Settings) -> Policy:
    """The publish-gate policy: REGISTRY_POLICY_FILE, or the shipped strict default."""
    try:
        if settings.policy_file is None:
            return default_policy()
        return load_policy(settings.policy_file)
    except PolicyError as exc:
        msg = f"REGISTRY_POLICY_FILE: {exc.message} ({exc.code})"
        raise SettingsError(msg) from None


@dataclass(frozen=True, kw_only=True)
class GateOutbound:
    """The gate's outbound callers: the classifiers and the image fetcher."""

    classifiers: list[Classifier]
    fetcher: ImageFetcher | None
    closers: list[Callable[[], Awaitable[None]]]


def gate_outbound(settings: Settings) -> GateOutbound:
    """The classifiers and the image fetcher, refusing a configuration that cannot work."""
    classifiers: list[Classifier] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        if settings.classifier_url is not None:
            http = HttpClassifier(
                settings.classifier_url,
                timeout=settings.classifier_timeout,
                allowed_hosts=settings.classifier_allowed_host_list,
            )
            classifiers.append(http)
            closers.append(http.aclose)
        if settings.nudenet_classifier:
            classifiers.append(NudeNetClassifier())
        fetcher = None
        if settings.image_fetch_allowed_host_list:
            fetcher = ImageFetcher(
                settings.image_fetch_allowed_host_list,
                timeout=settings.image_fetch_timeout,
                max_bytes=settings.max_image_bytes,
            )
            closers.append(fetcher.aclose)
    except ModerationError as exc:
        msg = f"REGISTRY_CLASSIFIER_*: {exc.message} ({exc.code})"
        raise SettingsError(msg) from None
    except ValueError as exc:
        msg = f"REGISTRY_IMAGE_FETCH_ALLOWED_HOSTS: {exc}"
        raise SettingsError(msg) from None
    return GateOutbound(classifiers=classifiers, fetcher=fetcher, closers=closers)


def gate_service(
    settings: Settings,
    *,
    policy: Policy,
    outbound: GateOutbound,
    pool: asyncpg.Pool,
    consent: ConsentService,
    provenance: ProvenanceService,
    review_images: ReviewImageStore,
) -> GateService:
    """The gate, sharing the provenance service's trust settings and image workers."""
    return GateService(
        settings=GateSettings(
            image_limits=ImageLimits(
                max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
            ),
            image_timeout=settings.gate_image_timeout,
            provenance_timeout=settings.gate_provenance_timeout,
            classifier_timeout=settings.classifier_timeout,
            consent_timeout=settings.gate_consent_timeout,
            hashes_timeout=settings.gate_hashes_timeout,
            acquire_timeout=settings.db_acquire_timeout,
        ),
        policy=policy,
        pool=pool,
        consent=consent,
        trust=provenance.trust,
        work=provenance.work,
        hash_lists=HashLists(pool, acquire_timeout=settings.db_acquire_timeout),
        keep_review_image=lambda conn, decision_id, media_type, data: review_images.put(
            conn, decision_id=decision_id, media_type=media_type, data=data
        ),
        classifiers=outbound.classifiers,
        fetcher=outbound.fetcher,
        closers=outbound.closers,
    )


async def _sign_checkpoint(services: Services) -> None:
    """Sign the audit head (JWS and signed note) unless a checkpoint already covers it."""
    try:
        async with services.unit_of_work("system") as uow:
            made = await audit.make_checkpoint(
                uow.conn,
                services.keyring,
                issuer=services.settings.public_issuer,
                note_signer=services.keyring.signer(),
            )
        if made:
            log.info("signed audit checkpoint at tree size %d", made.tree_size)
    except (db.DatabaseError, OSError) as exc:
        log.warning("audit checkpoint skipped: %s", type(exc).__name__)
    except RegistryError as exc:  # the log does not add up: `registry audit verify` says where
        log.error("audit checkpoint refused: %s", exc)  # noqa: TRY400 - no traceback to show


async def _checkpoint_loop(services: Services) -> None:
    while True:
        await asyncio.sleep(services.settings.checkpoint_interval)
        await _sign_checkpoint(services)


def webhook_sender(settings: Settings) -> WebhookSender:
    try:
        return WebhookSender(settings.webhook_host_list, timeout=settings.webhook_timeout)
    except ValueError as exc:
        msg = f"REGISTRY_WEBHOOK_HOSTS: {exc}"
        raise SettingsError(msg) from None


def takedown_worker(services: Services) -> TakedownWorker:
    settings = services.settings
    return TakedownWorker(
        unit_of_work=services.unit_of_work,
        signer=services.keyring,
        issuer=settings.public_issuer,
        sender=services.webhooks,
        backoff=Backoff(
            base=settings.takedown_retry_base,
            cap=settings.takedown_retry_max,
            max_attempts=settings.takedown_max_attempts,
        ),
        poll_interval=settings.takedown_poll_interval,
        # Longer than one attempt can take, so no other process sends it meanwhile.
        hold=timedelta(seconds=settings.webhook_timeout * 2 + 5),
    )


# A process that found another one computing the KPI snapshot looks again this soon.
_STATS_RETRY = 1.0


async def _stats_loop(services: Services) -> None:
    """Publish the moderation KPI gauges from the snapshot one process at a time computes
    (``registry.core.kpi_snapshot``), so every process reports the same figures."""
    interval = services.settings.stats_refresh_interval
    while True:
        wait = interval
        try:
            # A unit of work with no event: the snapshot's write and its lock, one transaction.
            async with services.unit_of_work("system") as uow:
                snapshot = await kpi_snapshot.refresh(uow.conn, compute_stats, max_age=interval)
            if snapshot is not None:
                publish_stats(msgspec.convert(snapshot.stats, Stats))
            if snapshot is None or not snapshot.fresh:
                wait = min(interval, _STATS_RETRY)
        except Exception as exc:  # noqa: BLE001 - the gauges must outlive a failed refresh
            log.warning("moderation stats not refreshed: %s", type(exc).__name__)
        await asyncio.sleep(wait)


async def _risk_loop(services: Services) -> None:
    """Every REGISTRY_RISK_INTERVAL seconds, recompute the clients' risk factors
    (``registry.operations.refresh_client_risk``; one process per round) and check the
    policy's stop conditions (``registry.operations.check_stop_conditions``)."""
    while True:
        await asyncio.sleep(services.settings.risk_interval)
        try:
            async with services.unit_of_work("system", auth.SYSTEM_TENANT) as uow:
                changed = await operations.refresh_client_risk(uow)
            if changed:
                log.info("client risk factors changed: %d", len(changed))
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a failed round
            log.warning("client risk factors not recomputed: %s", type(exc).__name__)
        try:
            async with services.unit_of_work("system", auth.SYSTEM_TENANT) as uow:
                tripped = await operations.check_stop_conditions(
                    uow,
                    services.gate.policy,
                    signer=services.keyring,
                    issuer=services.settings.public_issuer,
                )
            for suspension in tripped:
                log.warning(
                    "stop condition %s tripped: %s %s suspended (%s)",
                    suspension.condition_id,
                    suspension.subject_kind,
                    suspension.subject,
                    suspension.suspension_id,
                )
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a failed round
            log.warning("stop conditions not checked: %s", type(exc).__name__)


async def use_redis_limits(services: Services) -> None:
    """With REGISTRY_REDIS_URL, check rate limits in Redis, with the PostgreSQL limiter as
    its fallback; SettingsError when Redis does not answer now. The service's alone: the
    operator's commands check no limits and so need no Redis."""
    if services.settings.redis_url is None:
        return
    from registry.core.ratelimit_redis import RedisRateLimiter  # noqa: PLC0415 - when set

    postgres = services.limiter
    services.limiter = await RedisRateLimiter.connect(
        services.settings.redis_url, _bucket(services.settings), postgres
    )


def _bucket(settings: Settings) -> ratelimit.Bucket:
    return ratelimit.Bucket.per_minute(settings.rate_limit_per_minute)


async def _migrated_pool(settings: Settings, database: Database, *, bounded: bool) -> asyncpg.Pool:
    """The service's pool on a migrated database (the embedded server let go of on failure)."""
    try:
        if database.owner_url is not None:
            await db.migrate_as(
                database.owner_url,
                connect_attempts=settings.db_connect_attempts,
                wait=settings.db_acquire_timeout,
            )
        pool = await db.create_pool(
            database.url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            connect_attempts=settings.db_connect_attempts,
            statement_timeout=settings.db_statement_timeout if bounded else None,
            lock_timeout=settings.db_lock_timeout if bounded else None,
        )
    except BaseException:
        if database.embedded is not None:
            await asyncio.to_thread(database.embedded.release)
        raise
    try:
        async with db.acquire(pool, wait=settings.db_acquire_timeout) as conn:
            if database.owner_url is None:
                await db.migrate(conn)
            if await db.has_owner_rights(conn):
                log.warning(
                    "the service's database role %s owns the tables (or is a superuser), so it "
                    "could switch off the audit log's append-only triggers; run it as a role of "
                    "its own with REGISTRY_DATABASE_OWNER_URL for migrations (README: Database "
                    "roles)",
                    await db.current_role(conn),
                )
    except BaseException:
        await pool.close()
        if database.embedded is not None:
            await asyncio.to_thread(database.embedded.release)
        raise
    return pool


def _keyring(settings: Settings, pool: asyncpg.Pool, master_key: keys.MasterKey) -> keys.KeyRing:
    return keys.KeyRing(
        pool=pool,
        master_key=master_key,
        settings=keys.KeyRingSettings(
            alg=settings.signing_alg,
            max_token_ttl=timedelta(seconds=settings.token_max_ttl),
            refresh_interval=settings.key_refresh_interval,
            acquire_timeout=settings.db_acquire_timeout,
        ),
    )


async def prepare_start(settings: Settings) -> None:
    """What ``registry serve`` does once before it starts its workers, so that a bad setting,
    an unreachable database or Redis, or a master key that opens no stored key ends the start
    with one clear message: connect (starting the embedded server), migrate, load the signing
    keys, the C2PA identity and the consent index key (creating each once, the first time),
    make the bootstrap admin, reach Redis when REGISTRY_REDIS_URL is set. It builds no
    service: the gate's hash index, the image workers and the classifiers are the workers'.
    """
    if settings.redis_url is not None:
        from registry.core.ratelimit_redis import check_reachable  # noqa: PLC0415 - when set

        # First: nothing is started or written when Redis does not answer.
        await check_reachable(settings.redis_url)
    master_key = resolve_master_key(settings)
    database = await resolve_database(settings)
    pool = await _migrated_pool(settings, database, bounded=False)
    try:
        keyring = _keyring(settings, pool, master_key)
        await keyring.start()
        async with db.acquire(pool, wait=settings.db_acquire_timeout) as conn:
            await signing_identity.load(conn, settings, master_key)
            await ConsentService.load(
                conn, settings=consent_settings(settings), keyring=keyring, master_key=master_key
            )
            if settings.bootstrap_admin_key:
                async with unit_of_work(conn, actor="system", tenant=auth.SYSTEM_TENANT) as uow:
                    await operations.ensure_bootstrap_admin(uow, settings.bootstrap_admin_key)
    finally:
        await pool.close()
        if database.embedded is not None:
            await asyncio.to_thread(database.embedded.release)


async def build_services(settings: Settings, *, bounded: bool = True) -> Services:
    """Connect, migrate and load keys: everything the handlers need, or a clear failure.

    ``bounded``: every statement runs under REGISTRY_DB_STATEMENT_TIMEOUT and
    REGISTRY_DB_LOCK_TIMEOUT, as the service's requests must; the operator's commands pass
    False (a million-line import or a whole-chain verification takes longer).
    """
    policy = gate_policy(settings)
    webhooks = webhook_sender(settings)
    outbound = gate_outbound(settings)
    # Last before the database: in development it writes a fresh key to the data directory.
    master_key = resolve_master_key(settings)
    database = await resolve_database(settings)
    embedded = database.embedded
    pool = await _migrated_pool(settings, database, bounded=bounded)
    try:
        keyring = _keyring(settings, pool, master_key)
        await keyring.start()
        # Data keys hold no state beyond the master key: the erasure hook gets its own view.
        data_keys = DataKeys(FieldCipher(master_key))
        review_images = ReviewImageStore(master_key, data_keys)
        erase_derived = operations.derived_eraser(DecisionVault(data_keys), review_images)
        async with db.acquire(pool, wait=settings.db_acquire_timeout) as conn:
            c2pa = await signing_identity.load(conn, settings, master_key)
            consent = await ConsentService.load(
                conn,
                settings=consent_settings(settings),
                keyring=keyring,
                master_key=master_key,
                produced_under=WithdrawalListers(
                    outputs=affected_outputs,
                    decisions=affected_decisions,
                    erase_derived=erase_derived,
                ),
            )
        provenance = provenance_service(
            settings, c2pa=c2pa, keyring=keyring, tokens=consent, decisions=StoredDecisions()
        )
        gate = gate_service(
            settings,
            policy=policy,
            outbound=outbound,
            pool=pool,
            consent=consent,
            provenance=provenance,
            review_images=review_images,
        )
        services = Services(
            settings=settings,
            pool=pool,
            keyring=keyring,
            c2pa=c2pa,
            limiter=ratelimit.PostgresRateLimiter(
                pool, _bucket(settings), acquire_timeout=settings.db_acquire_timeout
            ),
            consent=consent,
            provenance=provenance,
            gate=gate,
            webhooks=webhooks,
            review_images=review_images,
            embedded=embedded,
            key_cache=auth.KeyCache(settings.api_key_cache_seconds),
        )
        if settings.bootstrap_admin_key:
            async with services.unit_of_work("system", auth.SYSTEM_TENANT) as uow:
                await operations.ensure_bootstrap_admin(uow, settings.bootstrap_admin_key)
    except BaseException:
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.release)
        raise
    return services


async def start_background(services: Services) -> None:
    """Start what runs beside the requests; a fresh service signs a checkpoint of its head
    at once, not one interval later."""
    await use_redis_limits(services)
    await _sign_checkpoint(services)
    tasks = services.background
    tasks.append(asyncio.create_task(ratelimit.prune_forever(services.limiter)))
    tasks.append(asyncio.create_task(_checkpoint_loop(services)))
    # A rotation by another process ends the old key's signing period two refresh
    # intervals later (the key history says so): every process must notice by then.
    tasks.append(asyncio.create_task(services.keyring.refresh_forever()))
    settings = services.settings
    # The index is loaded here, in a serving process only: the command line and the checks of
    # `registry serve` before it starts its workers never hold it (a million entries are
    # tens of megabytes and a second or two).
    await services.gate.hash_lists.refresh()
    tasks.append(
        asyncio.create_task(services.gate.hash_lists.watch(settings.hash_lists_poll_interval))
    )
    tasks.append(asyncio.create_task(takedown_worker(services).run()))
    tasks.append(asyncio.create_task(_stats_loop(services)))
    tasks.append(asyncio.create_task(_risk_loop(services)))
    tasks.append(asyncio.create_task(api_keys.write_usage(services.key_usage, services.connection)))
    tasks.append(
        asyncio.create_task(shred_forever(_owner(services), interval=settings.shred_interval))
    )
    retention = timedelta(days=settings.review_image_retention_days)
    tasks.append(
        asyncio.create_task(
            expire_forever(
                services.review_images, services.connection, retention=retention, interval=300
            )
        )
    )


def _owner(services: Services) -> Callable[[], Awaitable[asyncpg.Connection]]:
    """Connections as the tables' owner, for the shredder (as the service without an owner)."""
    settings, embedded = services.settings, services.embedded
    url = embedded.owner_url if embedded else settings.database_owner_url or settings.database_url
    return lambda: asyncpg.connect(url, timeout=settings.db_acquire_timeout)


async def stop(services: Services) -> None:
    """Stop the background work and let go of everything ``build_services`` took."""
    for task in services.background:
        task.cancel()
    await asyncio.gather(*services.background, return_exceptions=True)
    services.provenance.close()
    await services.webhooks.aclose()
    await services.close()
    # Every access line queued so far is written before uvicorn ends the process.
    await asyncio.to_thread(logs.drain)
