"""``registry policy check``: validate a policy file and replay it over the stored decisions."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from registry.cli.output import CommandError
from registry.cli.run import with_services

if TYPE_CHECKING:
    import argparse

    from registry.core.settings import Settings
    from registry.services import Services


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
            result = await replay(conn, services.gate.vault, policy)
        sys.stdout.write("\n".join(result.lines()) + "\n")
        return 0

    return asyncio.run(with_services(settings, work))
