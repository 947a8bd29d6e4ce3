"""``registry hashes``: create hash lists, list them, import entries from a file."""

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
                    uow, list_name=args.list, path=path, on_progress=progress
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
                f"{result.updated:,} updated"
            )
        return 0

    return asyncio.run(with_services(settings, work))


def cmd_hashes_create_list(settings: Settings, args: argparse.Namespace) -> int:
    from registry import operations  # noqa: PLC0415
    from registry.gate import HashListExists  # noqa: PLC0415

    async def work(services: Services) -> int:
        try:
            async with services.unit_of_work("cli") as uow:
                view = await operations.create_hash_list(uow, name=args.name, action=args.action)
        except HashListExists as exc:
            sys.stderr.write(f"registry: {exc}; nothing was changed\n")
            return 1
        if args.json:
            print_json(view)
        else:
            sys.stdout.write(f"created hash list {view.name} (action: {view.action})\n")
        return 0

    return asyncio.run(with_services(settings, work))


def cmd_hashes_lists(settings: Settings, args: argparse.Namespace) -> int:
    from registry.gate import list_lists  # noqa: PLC0415

    async def work(services: Services) -> int:
        async with services.connection() as conn:
            lists = await list_lists(conn)
        if args.json:
            print_json({"lists": lists})
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

    return asyncio.run(with_services(settings, work))


def _list_name(value: str) -> str:
    from moderation import HashIndex, HashValueInvalid  # noqa: PLC0415 - numpy, only here

    try:
        # The index's rule for list names, the same as the table's check.
        HashIndex().define_list(value, "review")
    except HashValueInvalid as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return value


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
