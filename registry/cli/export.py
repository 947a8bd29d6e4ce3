"""``registry export --tenant T OUT_DIR``: a tenant's records as files (docs/export.md)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from registry.cli.output import CommandError, print_json
from registry.cli.run import with_services

if TYPE_CHECKING:
    import argparse

    from registry.core.settings import Settings
    from registry.services import Services


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], as_json: argparse.ArgumentParser
) -> None:
    command = sub.add_parser(
        "export",
        parents=[as_json],
        help="write a tenant's records, with the keys and proofs that verify them, to a directory",
    )
    command.add_argument("--tenant", required=True, help="the tenant to export")
    command.add_argument("out_dir", metavar="OUT_DIR", help="a new or empty directory")
    command.set_defaults(func=cmd_export)


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from registry import export  # noqa: PLC0415 - keeps `--help` fast

    out_dir = Path(args.out_dir)
    # Refused before the database is touched: a full directory costs no checkpoint or event.
    export.check_target(out_dir)

    async def work(services: Services) -> int:
        async with services.unit_of_work("cli", tenant=args.tenant) as uow:
            files = await export.collect(services, uow, args.tenant)
            # Inside the transaction: a directory that cannot be written leaves no
            # `tenant.exported` event behind.
            try:
                await asyncio.to_thread(export.write_directory, files, out_dir)
            except OSError as exc:
                msg = f"cannot write {out_dir}: {exc.strerror or exc}: nothing was written"
                raise CommandError(msg) from None
        if args.json:
            print_json({"tenant": args.tenant, "directory": str(out_dir), "files": sorted(files)})
        else:
            sys.stdout.write(
                f"exported tenant {args.tenant!r}: {len(files)} file(s) in {out_dir}; "
                f"check with: python -m verifier export {out_dir}\n"
            )
        return 0

    return asyncio.run(with_services(settings, work))
