"""The ``registry`` command: run the service and operate it.

Exit codes: 0 success, 1 a check failed or a change was refused (the audit chain is broken, a
hash list of that name exists, no such client or key, the last admin), 2 a usage,
configuration or connection error (the message says which setting or what to do). Settings
are checked whole before anything starts.

Commands that print a result take ``--json``: one JSON document on stdout instead of the text
for people (``keys rotate``, ``clients create`` and ``audit checkpoint`` print JSON either way).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from registry.core import settings as settings_module

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from registry.api_keys import ClientView, KeyView
    from registry.core.errors import RegistryError
    from registry.core.settings import Settings
    from registry.services import Services


_IMPORT_FORMATS = """\
Import perceptual hashes into an existing list (see `registry hashes create-list`), all or
nothing: a bad line refuses the whole file, naming the line, and nothing is stored. A hash
already on the list gets the new label and source and is enabled again; within a file the
last line for a hash wins.

The file is UTF-8, one entry a line; blank lines are skipped and a line holds at most 4096
bytes (CSV: characters). A name ending in .csv is read as CSV, .jsonl or .ndjson as JSON
lines, and any other name as JSON lines when its first non-blank character is "{", else CSV.

Each entry has
  hash    required: the 64-bit perceptual hash (pHash) as exactly 16 hex digits
  label   required: 1..512 characters, what the entry is (shown with every match)
  source  optional: 1..512 characters, where it comes from (on a list the policy names in
          hashes.consent_exempt_lists, the consent asset id it protects)

CSV: hash,label[,source] with standard CSV quoting; a first line whose first field is
"hash" (a header such as hash,label,source) is skipped.
CSV example (protected.csv):
  c3a1b2d4e5f60718,case-1041,hotline
  00ff00ff00ff00ff,"known image, cropped"

JSON lines: one object a line with the keys hash, label and optionally source (a string or
null); any other key refuses the line.
JSON lines example (protected.jsonl):
  {"hash": "c3a1b2d4e5f60718", "label": "case-1041", "source": "hotline"}
  {"hash": "00ff00ff00ff00ff", "label": "known image, cropped"}
"""


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback."""


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")


async def _with_services(settings: Settings, work: Callable[[Services], Awaitable[int]]) -> int:
    from registry.app import build_services  # noqa: PLC0415 - keeps `--help` fast

    # Unbounded statements: an operator's import or verification may take minutes.
    services = await build_services(settings, bounded=False)
    try:
        return await work(services)
    finally:
        await services.close()


def cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415

    async def preflight(_: Services) -> int:
        return 0

    # Connect, migrate and load keys once before the server forks workers, so a bad setting
    # or an unreachable database ends here with a clear message instead of a worker traceback.
    asyncio.run(_with_services(settings, preflight))
    uvicorn.run(
        "registry.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        timeout_graceful_shutdown=20,
        # Forwarded headers are read by registry.core.proxies alone (REGISTRY_TRUSTED_PROXIES).
        proxy_headers=False,
    )
    return 0


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from registry.core import db  # noqa: PLC0415

    async def run() -> int:
        from registry.app import resolve_database  # noqa: PLC0415

        database = await resolve_database(settings)
        try:
            # As the tables' owner (REGISTRY_DATABASE_OWNER_URL, or the embedded owner role).
            applied = await db.migrate_as(
                database.owner_url or database.url,
                connect_attempts=settings.db_connect_attempts,
                wait=settings.db_acquire_timeout,
            )
        finally:
            if database.embedded is not None:
                database.embedded.release()
        sys.stdout.write(
            f"applied {len(applied)} migration(s): {', '.join(applied)}\n"
            if applied
            else "database is up to date\n"
        )
        return 0

    return asyncio.run(run())


def cmd_keys_rotate(settings: Settings, _: argparse.Namespace) -> int:
    from registry import operations  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.transaction() as conn:
            rotation = await operations.rotate_keys(
                conn, services.keyring, actor="cli", actor_tenant=None
            )
        _print_json(rotation)
        return 0

    return asyncio.run(_with_services(settings, work))


def cmd_new_master_key(_: Settings | None, args: argparse.Namespace) -> int:
    import keys  # noqa: PLC0415

    value = keys.MasterKey.generate().to_text()
    if args.json:
        _print_json({"master_key": value})
    else:
        sys.stdout.write(value + "\n")
    return 0


def cmd_clients_create(settings: Settings, args: argparse.Namespace) -> int:
    from registry import operations  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.transaction() as conn:
            new = await operations.create_client(
                conn,
                actor="cli",
                actor_tenant=None,
                name=args.name,
                roles=args.role,
                tenant=args.tenant,
                expires_at=args.expires_at,
            )
        _print_json(
            {
                "client_id": new.client.client_id,
                "name": new.client.name,
                "tenant": new.client.tenant,
                "roles": sorted(r.value for r in new.client.roles),
                "api_key": new.api_key,
            }
        )
        return 0

    return asyncio.run(_with_services(settings, work))


def _when(value: datetime | None, none: str = "never") -> str:
    if value is None:
        return none
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _key_state(key: KeyView, now: datetime) -> str:
    if key.revoked_at is not None:
        return f"revoked {_when(key.revoked_at)}"
    if key.expires_at is not None and key.expires_at <= now:
        return f"expired {_when(key.expires_at)}"
    return "live"


def _live_keys(client: ClientView, now: datetime) -> int:
    return sum(_key_state(key, now) == "live" for key in client.keys)


def _refused(exc: RegistryError, args: argparse.Namespace, *, changing: bool = True) -> int:
    """Print a refusal (unknown id, last admin, revoked client) naming what was asked for."""
    subject = f"client {args.client_id}"
    if getattr(args, "key_id", None):
        subject += f", key {args.key_id}"
    tail = "; nothing was changed" if changing else ""
    sys.stderr.write(f"registry: {subject}: {exc.detail} ({exc.code}){tail}\n")
    return 1


def _expiry(value: str) -> datetime:
    """``--expires-at``: RFC 3339 with an offset, in the future, at most MAX_KEY_LIFETIME away."""
    from registry.api_keys import ExpiryInvalid, check_expiry  # noqa: PLC0415

    example = "such as 2030-01-01T00:00:00Z"
    try:
        parsed = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        msg = f"not an RFC 3339 date-time {example}"
        raise argparse.ArgumentTypeError(msg) from None
    if parsed.tzinfo is None:
        msg = f"needs a UTC offset (RFC 3339), {example}"
        raise argparse.ArgumentTypeError(msg)
    try:
        checked = check_expiry(parsed)
    except ExpiryInvalid as exc:
        raise argparse.ArgumentTypeError(exc.detail.removeprefix("expires_at ")) from None
    assert checked is not None  # noqa: S101 - given a date-time, check_expiry returns it
    return checked


def cmd_clients_list(settings: Settings, args: argparse.Namespace) -> int:
    from registry import api_keys  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.connection() as conn:
            clients = await api_keys.list_clients(conn)
        if args.json:
            _print_json({"clients": clients})
            return 0
        now = datetime.now(UTC)
        header = ("client_id", "name", "tenant", "roles", "state", "live keys")
        rows = [
            header,
            *(
                (
                    c.client_id,
                    c.name,
                    c.tenant,
                    ",".join(c.roles),
                    "revoked" if c.disabled_at else "enabled",
                    f"{_live_keys(c, now)} of {len(c.keys)}",
                )
                for c in clients
            ),
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            sys.stdout.write("  ".join([*cells, row[-1]]) + "\n")
        return 0

    return asyncio.run(_with_services(settings, work))


def _print_client(client: ClientView) -> None:
    now = datetime.now(UTC)
    state = f"revoked {_when(client.disabled_at)}" if client.disabled_at else "enabled"
    sys.stdout.write(
        f"client_id: {client.client_id}\nname:      {client.name}\ntenant:    {client.tenant}\n"
        f"roles:     {', '.join(client.roles)}\ncreated:   {_when(client.created_at)}\n"
        f"state:     {state}\nkeys:      {_live_keys(client, now)} live of {len(client.keys)}\n"
    )
    for key in client.keys:
        sys.stdout.write(
            f"  {key.key_id}  created {_when(key.created_at)}  expires {_when(key.expires_at)}"
            f"  last used {_when(key.last_used_at)}  {_key_state(key, now)}\n"
        )


def cmd_clients_show(settings: Settings, args: argparse.Namespace) -> int:
    from registry import api_keys  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.connection() as conn:
                client = await api_keys.get_client(conn, args.client_id)
        except api_keys.ClientNotFound as exc:
            return _refused(exc, args, changing=False)
        if args.json:
            _print_json(client)
        else:
            _print_client(client)
        return 0

    return asyncio.run(_with_services(settings, work))


def cmd_clients_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from registry import api_keys  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.transaction() as conn:
                client = await api_keys.revoke_client(
                    conn, args.client_id, actor="cli", actor_tenant=None
                )
                # now() is when this transaction began: the revocation's time iff it made it.
                revoked_here = client.disabled_at == await conn.fetchval("SELECT now()")
        except (api_keys.ClientNotFound, api_keys.LastAdmin) as exc:
            return _refused(exc, args)
        if args.json:
            _print_json(client)
        elif revoked_here:
            sys.stdout.write(
                f"revoked client {client.client_id} ({client.name}): none of its keys works "
                "any more\n"
            )
        else:
            sys.stdout.write(
                f"client {client.client_id} ({client.name}) was already revoked "
                f"{_when(client.disabled_at)}; nothing was changed\n"
            )
        return 0

    return asyncio.run(_with_services(settings, work))


def cmd_clients_add_key(settings: Settings, args: argparse.Namespace) -> int:
    from registry import api_keys  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.transaction() as conn:
                key = await api_keys.issue_key(
                    conn,
                    args.client_id,
                    expires_at=args.expires_at,
                    actor="cli",
                    actor_tenant=None,
                )
        except (api_keys.ClientNotFound, api_keys.ClientRevoked, api_keys.ExpiryInvalid) as exc:
            return _refused(exc, args)
        if args.json:
            # What POST /v1/admin/clients/{client_id}/keys answers.
            _print_json(
                {
                    "key_id": key.key_id,
                    "api_key": key.api_key,
                    "created_at": key.created_at,
                    "expires_at": key.expires_at,
                }
            )
        else:
            sys.stdout.write(
                f"added key {key.key_id} to client {args.client_id} (expires "
                f"{_when(key.expires_at)}); its API key, shown this once:\n{key.api_key}\n"
            )
        return 0

    return asyncio.run(_with_services(settings, work))


def cmd_clients_remove_key(settings: Settings, args: argparse.Namespace) -> int:
    from registry import api_keys  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.transaction() as conn:
                key = await api_keys.revoke_key(
                    conn, args.client_id, args.key_id, actor="cli", actor_tenant=None
                )
                revoked_here = key.revoked_at == await conn.fetchval("SELECT now()")
        except (api_keys.ClientNotFound, api_keys.KeyNotFound, api_keys.LastAdmin) as exc:
            return _refused(exc, args)
        if args.json:
            _print_json(key)
        elif revoked_here:
            sys.stdout.write(
                f"revoked key {key.key_id} of client {args.client_id}: it works no more\n"
            )
        else:
            sys.stdout.write(
                f"key {key.key_id} of client {args.client_id} was already revoked "
                f"{_when(key.revoked_at)}; nothing was changed\n"
            )
        return 0

    return asyncio.run(_with_services(settings, work))


def cmd_new_api_key(_: Settings | None, args: argparse.Namespace) -> int:
    from registry.core import auth  # noqa: PLC0415

    value = auth.generate_api_key()
    if args.json:
        _print_json({"api_key": value})
    else:
        sys.stdout.write(value + "\n")
    return 0


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from registry.core import audit  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.connection() as conn:
            report = await audit.verify_chain(conn)
        if args.json:
            _print_json(report)
        elif report.ok:
            cp = report.checkpoint_size
            sys.stdout.write(
                f"audit chain OK: {report.size} event(s)"
                + (f", consistent with checkpoint at {cp}" if cp else ", no checkpoint yet")
                + "\n"
            )
        else:
            sys.stdout.write(
                f"audit chain BROKEN at event {report.first_bad_seq}: {report.problem}\n"
            )
        return 0 if report.ok else 1

    return asyncio.run(_with_services(settings, work))


def cmd_audit_checkpoint(settings: Settings, _: argparse.Namespace) -> int:
    from registry.core import audit  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.transaction() as conn:
            made = await audit.make_checkpoint(
                conn, services.keyring, issuer=services.settings.public_issuer
            )
            latest = made or await audit.latest_checkpoint(conn)
        _print_json(latest)
        return 0

    return asyncio.run(_with_services(settings, work))


def cmd_openapi(_: Settings | None, args: argparse.Namespace) -> int:
    from registry.app import create_app  # noqa: PLC0415
    from registry.core.settings import Settings  # noqa: PLC0415
    from registry.http import openapi  # noqa: PLC0415

    # The schema depends on routes only, never on deployment settings.
    text = openapi.render(create_app(Settings()))
    target = Path(args.output)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            sys.stderr.write(f"{target} is stale: run `registry openapi` and commit it\n")
            return 1
        sys.stdout.write(f"{target} is current\n")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
    return 0


def cmd_policy_check(settings: Settings, args: argparse.Namespace) -> int:
    from moderation import PolicyError, load_policy  # noqa: PLC0415
    from registry.gate.commands import replay  # noqa: PLC0415

    try:
        policy = load_policy(Path(args.file))
    except PolicyError as exc:
        msg = f"policy refused ({exc.code}): {exc.message}"
        raise CommandError(msg) from None
    sys.stdout.write(f"policy OK: {policy.label} (version {policy.version})\n")

    async def work(services: Services) -> int:
        async with services.connection() as conn:
            result = await replay(conn, policy)
        sys.stdout.write("\n".join(result.lines()) + "\n")
        return 0

    return asyncio.run(_with_services(settings, work))


def cmd_hashes_import(settings: Settings, args: argparse.Namespace) -> int:
    from moderation import HashListError  # noqa: PLC0415
    from registry.core import audit  # noqa: PLC0415
    from registry.gate.commands import Progress, import_file  # noqa: PLC0415

    path = Path(args.file)
    if not path.is_file():
        msg = f"{path} is not a readable file"
        raise CommandError(msg)
    # A progress bar is for people; --json prints the counts alone.
    progress = None if args.json else Progress(sys.stderr, path.stat().st_size)

    async def work(services: Services) -> int:
        try:
            async with services.transaction() as conn:
                result = await import_file(conn, list_name=args.list, path=path, progress=progress)
                await audit.append(
                    conn,
                    actor="cli",
                    tenant=None,
                    action="hash_list.entries_added",
                    subject_type="hash_list",
                    subject_id=args.list,
                    payload={
                        "received": result.received,
                        "added": result.added,
                        "updated": result.updated,
                    },
                )
        except HashListError as exc:
            if progress is not None:
                progress.done("import refused; nothing was stored")
            msg = f"{exc.code}: {exc.message}"
            raise CommandError(msg) from None
        if progress is None:
            _print_json(result)
        else:
            progress.done(
                f"{result.list}: {result.received:,} entries read, {result.added:,} added, "
                f"{result.updated:,} updated"
            )
        return 0

    return asyncio.run(_with_services(settings, work))


def cmd_hashes_create_list(settings: Settings, args: argparse.Namespace) -> int:
    from registry import operations  # noqa: PLC0415
    from registry.gate import HashListExists  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.transaction() as conn:
                view = await operations.create_hash_list(
                    conn, actor="cli", actor_tenant=None, name=args.name, action=args.action
                )
        except HashListExists as exc:
            sys.stderr.write(f"registry: {exc}; nothing was changed\n")
            return 1
        if args.json:
            _print_json(view)
        else:
            sys.stdout.write(f"created hash list {view.name} (action: {view.action})\n")
        return 0

    return asyncio.run(_with_services(settings, work))


def cmd_hashes_lists(settings: Settings, args: argparse.Namespace) -> int:
    from registry.gate import list_lists  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.connection() as conn:
            lists = await list_lists(conn)
        if args.json:
            _print_json({"lists": lists})
        elif not lists:
            sys.stdout.write("no hash lists yet (`registry hashes create-list` makes one)\n")
        else:
            width = max(len(view.name) for view in lists)
            sys.stdout.write(f"{'name':<{width}}  action  state     entries\n")
            for view in lists:
                state = "enabled" if view.enabled else "disabled"
                sys.stdout.write(
                    f"{view.name:<{width}}  {view.action:<6}  {state:<8}  {view.entries:,}\n"
                )
        return 0

    return asyncio.run(_with_services(settings, work))


def _list_name(value: str) -> str:
    from moderation import HashIndex, HashValueInvalid  # noqa: PLC0415 - numpy, only here

    try:
        # The index's rule for list names, the same as the table's check.
        HashIndex().define_list(value, "review")
    except HashValueInvalid as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="registry", description="Consent and provenance registry service."
    )
    parser.add_argument(
        "--version", action="version", version=f"registry {metadata.version('consent-registry')}"
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP service").set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    keys_p = sub.add_parser("keys", help="token-signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    keys_p.add_parser(
        "rotate", parents=[as_json], help="rotate the token-signing key"
    ).set_defaults(func=cmd_keys_rotate)
    keys_p.add_parser(
        "new-master-key", parents=[as_json], help="print a fresh REGISTRY_MASTER_KEY value"
    ).set_defaults(func=cmd_new_master_key, needs_settings=False)

    _clients_parser(sub.add_parser("clients", help="API clients and their keys"), as_json)

    audit_p = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True
    )
    audit_p.add_parser(
        "verify", parents=[as_json], help="recompute the hash chain and compare checkpoints"
    ).set_defaults(func=cmd_audit_verify)
    audit_p.add_parser(
        "checkpoint", parents=[as_json], help="sign a checkpoint of the current head"
    ).set_defaults(func=cmd_audit_checkpoint)

    policy_p = sub.add_parser("policy", help="the publish-gate policy").add_subparsers(
        dest="policy_command", required=True
    )
    check = policy_p.add_parser(
        "check", help="validate a policy file and replay it over the stored decisions"
    )
    check.add_argument("file")
    check.set_defaults(func=cmd_policy_check)

    _hashes_parser(sub.add_parser("hashes", help="perceptual-hash lists"), as_json)

    oa = sub.add_parser("openapi", help="export the OpenAPI document")
    oa.add_argument("--output", default="openapi/openapi.json")
    oa.add_argument("--check", action="store_true", help="fail when the file is stale")
    oa.set_defaults(func=cmd_openapi, needs_settings=False)
    return parser


_EXPIRES_AT = "RFC 3339 with an offset, e.g. 2030-01-01T00:00:00Z; at most 3650 days ahead"


def _clients_parser(clients: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    clients_p = clients.add_subparsers(dest="clients_command", required=True)
    create = clients_p.add_parser(
        "create", parents=[as_json], help="create a client and print its API key"
    )
    create.add_argument("--name", required=True)
    create.add_argument(
        "--role",
        action="append",
        required=True,
        help="admin, uploader, generator, publisher or reviewer (repeatable)",
    )
    create.add_argument("--tenant", default="default")
    create.add_argument(
        "--expires-at", type=_expiry, help=f"when its first key stops working ({_EXPIRES_AT})"
    )
    create.set_defaults(func=cmd_clients_create)
    clients_p.add_parser(
        "list",
        parents=[as_json],
        help="every client with its state and live keys",
        description="Every API client, oldest first (--json: as GET /v1/admin/clients).",
    ).set_defaults(func=cmd_clients_list)
    show = clients_p.add_parser(
        "show",
        parents=[as_json],
        help="one client with its keys (ids and dates, never secrets)",
        description="One API client with its keys (--json: as GET /v1/admin/clients/ID).",
    )
    show.add_argument("client_id")
    show.set_defaults(func=cmd_clients_show)
    revoke = clients_p.add_parser(
        "revoke",
        parents=[as_json],
        help="revoke a client: none of its keys works any more (idempotent)",
        description=(
            "Revoke an API client, as POST /v1/admin/clients/ID/revoke does: every service "
            "process refuses its keys from the commit on. Revoking a revoked client changes "
            "nothing. The last enabled admin client with a live key cannot be revoked."
        ),
    )
    revoke.add_argument("client_id")
    revoke.set_defaults(func=cmd_clients_revoke)
    add_key = clients_p.add_parser(
        "add-key",
        parents=[as_json],
        help="add a key to a client and print it (shown once)",
        description=(
            "Add an API key to an enabled client, as POST /v1/admin/clients/ID/keys does. To "
            "rotate: add a key, move the caller to it, then remove the old one."
        ),
    )
    add_key.add_argument("client_id")
    add_key.add_argument(
        "--expires-at", type=_expiry, help=f"when the key stops working ({_EXPIRES_AT})"
    )
    add_key.set_defaults(func=cmd_clients_add_key)
    remove_key = clients_p.add_parser(
        "remove-key",
        parents=[as_json],
        help="revoke one key of a client (idempotent)",
        description=(
            "Revoke one API key, as DELETE /v1/admin/clients/ID/keys/KEY_ID does; the "
            "client's other keys keep working. The last admin's last live key stays."
        ),
    )
    remove_key.add_argument("client_id")
    remove_key.add_argument("key_id")
    remove_key.set_defaults(func=cmd_clients_remove_key)
    clients_p.add_parser(
        "new-key",
        parents=[as_json],
        help="print a fresh API key (e.g. for REGISTRY_BOOTSTRAP_ADMIN_KEY)",
    ).set_defaults(func=cmd_new_api_key, needs_settings=False)


def _hashes_parser(hashes: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    hashes_p = hashes.add_subparsers(dest="hashes_command", required=True)
    new_list = hashes_p.add_parser(
        "create-list",
        parents=[as_json],
        help="create a hash list",
        description="Create an empty, enabled hash list (as POST /v1/admin/hash-lists does).",
    )
    new_list.add_argument(
        "name",
        type=_list_name,
        help="1..64 characters of a-z, 0-9, '.', '_' and '-', the first a letter or digit",
    )
    new_list.add_argument(
        "--action",
        required=True,
        choices=("block", "review"),
        help="what a match within the policy's block distance leads to (one within its "
        "review distance goes to review either way)",
    )
    new_list.set_defaults(func=cmd_hashes_create_list)
    hashes_p.add_parser(
        "lists", parents=[as_json], help="every hash list with its action, state and entries"
    ).set_defaults(func=cmd_hashes_lists)
    imp = hashes_p.add_parser(
        "import",
        parents=[as_json],
        help="import a CSV or JSON-lines file into a list",
        description=_IMPORT_FORMATS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("list", help="the name of an existing list")
    imp.add_argument("file", help="a CSV or JSON-lines file (formats above)")
    imp.set_defaults(func=cmd_hashes_import)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import keys  # noqa: PLC0415
    from registry.core import db, logs  # noqa: PLC0415
    from registry.core.errors import RegistryError  # noqa: PLC0415
    from registry.core.settings import SettingsError  # noqa: PLC0415

    try:
        settings = None
        if getattr(args, "needs_settings", True):
            settings = settings_module.load()
            logs.configure(settings.log_level, json_lines=settings.log_json)
            from registry.app import check_settings  # noqa: PLC0415 - after the cheap checks

            check_settings(settings)
        code: int = args.func(settings, args)
    except SettingsError as exc:
        sys.stderr.write(f"registry: configuration error: {exc}\n")
        return 2
    except db.DatabaseError as exc:
        sys.stderr.write(f"registry: database error: {exc}\n")
        return 2
    except keys.KeysError as exc:
        sys.stderr.write(f"registry: key error ({exc.code}): {exc}\n")
        return 2
    except (RegistryError, CommandError) as exc:
        sys.stderr.write(f"registry: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
