"""``registry audit``: verify the hash chain, sign a checkpoint."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from registry.cli.output import print_json
from registry.cli.run import with_services

if TYPE_CHECKING:
    import argparse

    from registry.core.settings import Settings
    from registry.services import Services


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from registry.core import audit  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.connection() as conn:
            report = await audit.verify_chain(conn)
        if args.json:
            print_json(report)
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

    return asyncio.run(with_services(settings, work))


def cmd_audit_checkpoint(settings: Settings, _: argparse.Namespace) -> int:
    from registry.core import audit  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.unit_of_work("cli") as uow:
            made = await audit.make_checkpoint(
                uow.conn,
                services.keyring,
                issuer=services.settings.public_issuer,
                note_signer=services.keyring.signer(),
            )
            latest = made or await audit.latest_checkpoint(uow.conn)
        print_json(latest)
        return 0

    return asyncio.run(with_services(settings, work))
