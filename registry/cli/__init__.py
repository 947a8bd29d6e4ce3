"""The ``registry`` command: run the service and operate it.

Exit codes: 0 success, 1 a check failed or a change was refused (the audit chain is broken, a
hash list of that name exists, no such client or key, the last admin), 2 a usage,
configuration or connection error (the message says which setting or what to do; also an
export to a directory that is not empty, or of a tenant that has no clients). Settings are
checked whole before anything starts.

Commands that print a result take ``--json``: one JSON document on stdout instead of the text
for people (``keys rotate``, ``clients create`` and ``audit checkpoint`` print JSON either way).

``parser`` builds the command tree and runs it (``main``); each group of commands lives in a
module of its name (``serve``, ``keys``, ``clients``, ``audit``, ``policy``, ``hashes``,
``export``, ``openapi``), sharing ``output`` and ``run``.

The command needs the ``server`` extra (``pip install 'consent-registry[server]'``); the base
install is the offline verifier alone (``python -m verifier``). Without the extra, ``main``
says so and exits 2 instead of failing with a traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

# Our own top-level packages: one of them missing is a broken install, not a missing extra.
_OWN_PACKAGES = frozenset({"registry", "moderation", "verifier", "keys"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``registry`` with ``argv`` (default: the process's arguments); the exit code."""
    try:
        from registry.cli.parser import main as run  # noqa: PLC0415 - the extra may be missing
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if not missing or missing in _OWN_PACKAGES:
            raise
        sys.stderr.write(
            f"registry: the service needs the 'server' extra (the module {missing!r} is not "
            "installed): pip install 'consent-registry[server]'. The offline verifier needs "
            "only the base install: python -m verifier --help\n"
        )
        return 2
    return run(argv)
