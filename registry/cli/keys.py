"""``registry keys``: rotate the token-signing key, make a fresh master key."""

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


def cmd_keys_rotate(settings: Settings, _: argparse.Namespace) -> int:
    from registry import operations  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.unit_of_work("cli") as uow:
            rotation = await operations.rotate_keys(uow, services.keyring)
        print_json(rotation)
        return 0

    return asyncio.run(with_services(settings, work))


def cmd_new_master_key(_: Settings | None, args: argparse.Namespace) -> int:
    import keys  # noqa: PLC0415 - the top-level package, not this module

    value = keys.MasterKey.generate().to_text()
    if args.json:
        print_json({"master_key": value})
    else:
        sys.stdout.write(value + "\n")
    return 0
