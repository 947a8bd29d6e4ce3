"""``registry policy check``: validate a policy file and replay it over the stored decisions;
``registry policy redteam``: replay a red-team corpus under a policy."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

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


def cmd_policy_redteam(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when no case became more permissive than expected, 1 when one did (stricter
    outcomes are listed but do not fail: see docs/redteam.md), 2 for a refused input."""
    from moderation import PolicyError, RedteamCaseInvalid, load_policy  # noqa: PLC0415
    from moderation.redteam import load_corpus, run_corpus, shipped_corpus  # noqa: PLC0415
    from registry.compose import gate_policy  # noqa: PLC0415

    try:
        policy = load_policy(Path(args.policy)) if args.policy else gate_policy(settings)
    except PolicyError as exc:
        msg = f"policy refused ({exc.code}): {exc.message}"
        raise CommandError(msg) from None
    try:
        corpus = load_corpus(Path(args.corpus) if args.corpus else shipped_corpus())
    except RedteamCaseInvalid as exc:
        msg = f"corpus refused ({exc.code}): {exc.message}"
        raise CommandError(msg) from None
    report = asyncio.run(run_corpus(corpus, policy))
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        sys.stdout.write("\n".join(report.lines()) + "\n")
    return 0 if report.ok else 1
