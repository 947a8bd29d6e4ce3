"""``export DIR``: a tenant's export (``registry export``) checked offline with its own
contents (``verifier.export``). Exit 0 ``verified``, 1 ``invalid`` (each problem names its
file, and its line in a JSON-lines file), 64 when DIR is not a directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from verifier.cli.common import EXIT_INVALID, EXIT_VERIFIED, UsageError, safe
from verifier.export import verify_export

if TYPE_CHECKING:
    import argparse

__all__ = ["add_export_parser", "export_command"]


def add_export_parser(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "export", help="verify a tenant's export (registry export) offline"
    )
    parser.add_argument("directory", metavar="DIR", help="the export's directory")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def export_command(args: argparse.Namespace, out: TextIO) -> int:
    root = Path(args.directory)
    if not root.is_dir():
        raise UsageError(f"{args.directory} is not a directory")
    report = verify_export(root, now=datetime.now(UTC), leeway_seconds=args.leeway)
    if args.json:
        out.write(msgspec.json.encode(report).decode("utf-8") + "\n")
    else:
        counted = ", ".join(f"{n} {what}" for what, n in sorted(report.checked.items()))
        out.write(f"{report.result}: export of tenant {safe(report.tenant)} ({counted})\n")
        for problem in report.problems:
            where = problem.file + (f":{problem.line}" if problem.line is not None else "")
            out.write(f"  {safe(where)}: {problem.code}: {safe(problem.detail)}\n")
    return EXIT_VERIFIED if report.result == "verified" else EXIT_INVALID
