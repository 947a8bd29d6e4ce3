"""``registry clients``: create, list, show and revoke API clients, add and remove their keys.

Each change is the operation the admin API runs, audited alike with actor ``cli``; a refusal
(unknown id, last admin, revoked client) exits 1 naming what was asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from registry.cli.output import print_json, when
from registry.cli.run import with_services
from registry.core import db
from registry.core.tiers import DEFAULT_TIER, TIERS

if TYPE_CHECKING:
    from registry.api_keys import ClientView, KeyView
    from registry.core.errors import RegistryError
    from registry.core.settings import Settings
    from registry.services import Services


_EXPIRES_AT = "RFC 3339 with an offset, e.g. 2030-01-01T00:00:00Z; at most 3650 days ahead"


def cmd_clients_create(settings: Settings, args: argparse.Namespace) -> int:
    from registry import operations  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.unit_of_work("cli") as uow:
            new = await operations.create_client(
                uow,
                name=args.name,
                roles=args.role,
                tenant=args.tenant,
                expires_at=args.expires_at,
                tier=args.tier,
            )
        print_json(
            {
                "client_id": new.client.client_id,
                "name": new.client.name,
                "tenant": new.client.tenant,
                "roles": sorted(r.value for r in new.client.roles),
                "tier": new.client.tier,
                "api_key": new.api_key,
            }
        )
        return 0

    return asyncio.run(with_services(settings, work))


def _key_state(key: KeyView, now: datetime) -> str:
    if key.revoked_at is not None:
        return f"revoked {when(key.revoked_at)}"
    if key.expires_at is not None and key.expires_at <= now:
        return f"expired {when(key.expires_at)}"
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
            clients = await api_keys.list_clients(conn, limits=settings.tier_limit_table)
        if args.json:
            print_json({"clients": clients})
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

    return asyncio.run(with_services(settings, work))


def _print_client(client: ClientView) -> None:
    now = datetime.now(UTC)
    state = f"revoked {when(client.disabled_at)}" if client.disabled_at else "enabled"
    sys.stdout.write(
        f"client_id: {client.client_id}\nname:      {client.name}\ntenant:    {client.tenant}\n"
        f"roles:     {', '.join(client.roles)}\ncreated:   {when(client.created_at)}\n"
        f"state:     {state}\nkeys:      {_live_keys(client, now)} live of {len(client.keys)}\n"
    )
    for key in client.keys:
        sys.stdout.write(
            f"  {key.key_id}  created {when(key.created_at)}  expires {when(key.expires_at)}"
            f"  last used {when(key.last_used_at)}  {_key_state(key, now)}\n"
        )


def cmd_clients_show(settings: Settings, args: argparse.Namespace) -> int:
    from registry import api_keys  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.connection() as conn:
                client = await api_keys.get_client(
                    conn, args.client_id, limits=settings.tier_limit_table
                )
        except api_keys.ClientNotFound as exc:
            return _refused(exc, args, changing=False)
        if args.json:
            print_json(client)
        else:
            _print_client(client)
        return 0

    return asyncio.run(with_services(settings, work))


def cmd_clients_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from registry import api_keys  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.unit_of_work("cli") as uow:
                client = await api_keys.revoke_client(
                    uow, args.client_id, limits=settings.tier_limit_table
                )
                # now() is when this transaction began: the revocation's time iff it made it.
                revoked_here = client.disabled_at == await db.now(uow.conn)
        except (api_keys.ClientNotFound, api_keys.LastAdmin) as exc:
            return _refused(exc, args)
        if args.json:
            print_json(client)
        elif revoked_here:
            sys.stdout.write(
                f"revoked client {client.client_id} ({client.name}): none of its keys works "
                "any more\n"
            )
        else:
            sys.stdout.write(
                f"client {client.client_id} ({client.name}) was already revoked "
                f"{when(client.disabled_at)}; nothing was changed\n"
            )
        return 0

    return asyncio.run(with_services(settings, work))


def cmd_clients_add_key(settings: Settings, args: argparse.Namespace) -> int:
    from registry import api_keys  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.unit_of_work("cli") as uow:
                key = await api_keys.issue_key(uow, args.client_id, expires_at=args.expires_at)
        except (api_keys.ClientNotFound, api_keys.ClientRevoked, api_keys.ExpiryInvalid) as exc:
            return _refused(exc, args)
        if args.json:
            # What POST /v1/admin/clients/{client_id}/keys answers.
            print_json(
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
                f"{when(key.expires_at)}); its API key, shown this once:\n{key.api_key}\n"
            )
        return 0

    return asyncio.run(with_services(settings, work))


def cmd_clients_remove_key(settings: Settings, args: argparse.Namespace) -> int:
    from registry import api_keys  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.unit_of_work("cli") as uow:
                key = await api_keys.revoke_key(uow, args.client_id, args.key_id)
                revoked_here = key.revoked_at == await db.now(uow.conn)
        except (api_keys.ClientNotFound, api_keys.KeyNotFound, api_keys.LastAdmin) as exc:
            return _refused(exc, args)
        if args.json:
            print_json(key)
        elif revoked_here:
            sys.stdout.write(
                f"revoked key {key.key_id} of client {args.client_id}: it works no more\n"
            )
        else:
            sys.stdout.write(
                f"key {key.key_id} of client {args.client_id} was already revoked "
                f"{when(key.revoked_at)}; nothing was changed\n"
            )
        return 0

    return asyncio.run(with_services(settings, work))


def cmd_new_api_key(_: Settings | None, args: argparse.Namespace) -> int:
    from registry.core import auth  # noqa: PLC0415

    value = auth.generate_api_key()
    if args.json:
        print_json({"api_key": value})
    else:
        sys.stdout.write(value + "\n")
    return 0


def add_commands(clients: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    """The subcommands of ``registry clients`` on ``clients``; ``as_json`` adds ``--json``."""
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
        "--tier",
        choices=TIERS,
        default=DEFAULT_TIER,
        help=f"its access tier, the base of its rate limit (default {DEFAULT_TIER})",
    )
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
