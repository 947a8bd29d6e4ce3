"""``registry hashes``: create hash lists, list them, import entries from a file and export
them to one, in any ``moderation.exchange`` format."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from registry.cli.output import CommandError, print_json
from registry.cli.progress import Progress
from registry.cli.run import with_services

if TYPE_CHECKING:
    from registry.core.settings import Settings
    from registry.services import Services

# moderation.exchange.FORMATS, written out so that `--help` does not load numpy and Pillow
# (tests/registry/test_cli_hashes.py checks that they agree).
_FORMATS = ("csv", "jsonl", "threatexchange", "hma", "stopncii")
# PDQ's bits, the most any signal has: create_list checks the list's own.
_MAX_BITS = 256
# Entries read from the database and written out at a time by `export`.


_IMPORT_FORMATS = """\
Import hashes into an existing list (see `registry hashes create-list`), all or nothing: a
bad line refuses the whole file, naming the line, and nothing is stored. A hash already on
the list gets the new label, source and review state and is enabled again; within a file the
last line for a hash wins. Every entry of a file is of one signal, the list's: PDQ as exactly
64 hex digits, pHash as 16 (either case, no 0x). A PDQ entry whose quality (jsonl's quality
field) is below the policy's floor is not stored; the report counts it as low_quality.

The file is UTF-8, one entry a line; blank lines are skipped and a line holds at most 4096
bytes. --format names the format; without it, a name ending in .csv (or .jsonl / .ndjson)
says CSV (JSON lines), and the first line tells ours from an exchange's.

Each entry has
  hash      required: hex of the list's signal (64 digits for pdq, 16 for phash)
  label     required: 1..512 characters, no control characters, shown with every match
  source    optional: 1..512 characters, where it comes from (on a list the policy names
            in hashes.consent_exempt_lists, the consent asset id it protects)
  reviewed  optional: false for an entry nobody has verified (default true)

Formats:
  csv             hash,label[,source[,reviewed]], optionally after a header naming those
                  columns; reviewed is true or false
  jsonl           one object a line: hash, label, and optionally source, signal (pdq or
                  phash), reviewed (a boolean) and quality (PDQ's, 0-100); no other key
  threatexchange  python-threatexchange's `threatexchange dataset -P --csv` output: the
                  header signal_type,signal_str,collab,category,tags, then a row a signal
                  (tags are the label, collab the source; POSITIVE_CLASS is reviewed,
                  INVESTIGATION_SEED is not, NEGATIVE_CLASS rows are skipped); or its plain
                  signal file, `<signal type> <hash>` or a bare hash a line, unreviewed
  hma             one Hasher-Matcher-Actioner bank content object a line (signals holds
                  one type and hash; the label is note, else metadata.content_id)
  stopncii        one StopNCII.org hash record a line (signalType ImagePDQ, hashValue;
                  Withdrawn or Deleted records are skipped), or a bare PDQ hash

CSV example (protected.csv):
  c3a1b2d4e5f60718,case-1041,hotline
  00ff00ff00ff00ff,"known image, cropped"

JSON lines example (protected.jsonl):
  {"hash": "c3a1b2d4e5f60718", "label": "case-1041", "source": "hotline"}
  {"hash": "00ff00ff00ff00ff", "label": "known image, cropped"}
"""


def cmd_hashes_import(settings: Settings, args: argparse.Namespace) -> int:
    from moderation import HashListError  # noqa: PLC0415
    from registry.gate.commands import import_file  # noqa: PLC0415

    path = Path(args.file)
    if not path.is_file():
        msg = f"{path} is not a readable file"
        raise CommandError(msg)
    # A progress bar is for people; --json prints the counts alone.
    progress = None if args.json else Progress(sys.stderr, path.stat().st_size)

    async def work(services: Services) -> int:
        try:
            async with services.unit_of_work("cli") as uow:
                result = await import_file(
                    uow,
                    list_name=args.list,
                    path=path,
                    fmt=args.format,
                    quality_floor=services.gate.policy.hashes.pdq.quality_floor,
                    on_progress=progress,
                )
        except HashListError as exc:
            if progress is not None:
                progress.done("import refused; nothing was stored")
            msg = f"{exc.code}: {exc.message}"
            raise CommandError(msg) from None
        if progress is None:
            print_json(result)
        else:
            progress.done(
                f"{result.list}: {result.received:,} entries read, {result.added:,} added, "
                f"{result.updated:,} updated, {result.low_quality:,} below the quality floor"
            )
        return 0

    return asyncio.run(with_services(settings, work))


def cmd_hashes_export(settings: Settings, args: argparse.Namespace) -> int:
    from moderation import HashListError  # noqa: PLC0415
    from registry.gate import export_file  # noqa: PLC0415

    target = Path(args.output) if args.output is not None else None

    async def work(services: Services) -> int:
        try:
            async with services.connection() as conn:
                view, parts = await export_file(conn, args.list, None, args.format)
                if target is None:
                    async for part in parts:
                        sys.stdout.buffer.write(part)
                    sys.stdout.buffer.flush()
                else:
                    # The file appears whole or not at all: written beside it, then renamed.
                    partial = target.with_name(f".{target.name}.partial")
                    try:
                        with partial.open("wb") as out:
                            async for part in parts:
                                out.write(part)
                    except BaseException:
                        partial.unlink(missing_ok=True)
                        raise
                    partial.replace(target)
        except HashListError as exc:
            msg = f"{exc.code}: {exc.message}"
            raise CommandError(msg) from None
        if target is not None:
            sys.stderr.write(f"{view.name}: {view.entries:,} entries written to {target}\n")
        return 0

    return asyncio.run(with_services(settings, work))


def cmd_hashes_create_list(settings: Settings, args: argparse.Namespace) -> int:
    from moderation import HashListError  # noqa: PLC0415
    from registry.gate import HashListExists, create_list  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.unit_of_work("cli") as uow:
                view = await create_list(
                    uow,
                    name=args.name,
                    signal=args.signal,
                    action=args.action,
                    tenant=args.tenant,
                    scope=args.scope,
                    unreviewed_distance=args.unreviewed_distance,
                )
        except HashListExists as exc:
            sys.stderr.write(f"registry: {exc}; nothing was changed\n")
            return 1
        except HashListError as exc:
            msg = f"{exc.code}: {exc.message}"
            raise CommandError(msg) from None
        if args.json:
            print_json(view)
        else:
            sys.stdout.write(
                f"created hash list {view.name} ({view.signal}, action: {view.action}, "
                f"scope: {view.scope}, tenant: {view.tenant})\n"
            )
        return 0

    return asyncio.run(with_services(settings, work))


def cmd_hashes_lists(settings: Settings, args: argparse.Namespace) -> int:
    from registry.gate import list_lists  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.connection() as conn:
            lists = await list_lists(conn, None)
        if args.json:
            print_json({"lists": lists})
        elif not lists:
            sys.stdout.write("no hash lists yet (`registry hashes create-list` makes one)\n")
        else:
            width = max(len(view.name) for view in lists)
            sys.stdout.write(f"{'name':<{width}}  signal  action  state     entries\n")
            for view in lists:
                state = "enabled" if view.enabled else "disabled"
                sys.stdout.write(
                    f"{view.name:<{width}}  {view.signal:<6}  {view.action:<6}  {state:<8}  "
                    f"{view.entries:,}\n"
                )
        return 0

    return asyncio.run(with_services(settings, work))


def _list_name(value: str) -> str:
    from moderation import HashValueInvalid, check_list_name  # noqa: PLC0415 - numpy, only here

    try:
        check_list_name(value)
    except HashValueInvalid as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return value


def _distance(value: str) -> int:
    if not value.isdigit() or int(value) > _MAX_BITS:
        msg = f"a distance is 0..{_MAX_BITS} bits (at most the signal's bits)"
        raise argparse.ArgumentTypeError(msg)
    return int(value)


def add_commands(hashes: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    """The subcommands of ``registry hashes`` on ``hashes``; ``as_json`` adds ``--json``."""
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
    new_list.add_argument(
        "--signal",
        choices=("phash", "pdq"),
        default="phash",
        help="the hashes the list holds: phash (64 bits, the default) or pdq (256 bits)",
    )
    new_list.add_argument(
        "--scope",
        choices=("global", "tenant"),
        default="global",
        help="global (the default): matches every tenant's images; tenant: only its tenant's",
    )
    new_list.add_argument(
        "--unreviewed-distance",
        type=_distance,
        default=None,
        metavar="BITS",
        help="unreviewed entries match only this close (default: as far as reviewed ones)",
    )
    new_list.add_argument(
        "--tenant",
        default="system",
        help="the tenant whose admins manage the list over HTTP (default: system, the "
        "bootstrap admin's)",
    )
    new_list.set_defaults(func=cmd_hashes_create_list)
    hashes_p.add_parser(
        "lists",
        parents=[as_json],
        help="every hash list with its signal, action, state and entries",
    ).set_defaults(func=cmd_hashes_lists)
    imp = hashes_p.add_parser(
        "import",
        parents=[as_json],
        help="import a hash-list file (ours, ThreatExchange, HMA, StopNCII) into a list",
        description=_IMPORT_FORMATS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("list", help="the name of an existing list")
    imp.add_argument("file", help="a hash-list file (formats above)")
    imp.add_argument(
        "--format", choices=_FORMATS, default=None, help="the file's format (default: detect)"
    )
    imp.set_defaults(func=cmd_hashes_import)
    exp = hashes_p.add_parser(
        "export",
        help="write a list's enabled entries as a hash-list file",
        description="Write the list's enabled entries in a format `registry hashes import` "
        "reads back to the same entries (stopncii: PDQ lists only).",
    )
    exp.add_argument("list", help="the name of an existing list")
    exp.add_argument("--format", choices=_FORMATS, default="csv", help="default: csv")
    exp.add_argument(
        "--output", metavar="FILE", default=None, help="the file to write (default: stdout)"
    )
    exp.set_defaults(func=cmd_hashes_export)
