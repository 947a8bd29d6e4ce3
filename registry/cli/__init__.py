"""The ``registry`` command: run the service and operate it.

Exit codes: 0 success, 1 a check failed or a change was refused (the audit chain is broken, a
hash list of that name exists, no such client or key, the last admin), 2 a usage,
configuration or connection error (the message says which setting or what to do). Settings
are checked whole before anything starts.

Commands that print a result take ``--json``: one JSON document on stdout instead of the text
for people (``keys rotate``, ``clients create`` and ``audit checkpoint`` print JSON either way).

``parser`` builds the command tree and runs it (``main``); each group of commands lives in a
module of its name (``serve``, ``keys``, ``clients``, ``audit``, ``policy``, ``hashes``,
``openapi``), sharing ``output`` and ``run``.
"""

from __future__ import annotations

from registry.cli.parser import main

__all__ = ["main"]
