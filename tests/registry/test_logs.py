"""The service's log: pgserver's narration below the configured level, its errors kept."""

from __future__ import annotations

import subprocess
import sys

from tests.registry.cli_support import REPO

# In a process of its own: configure() takes over the root logger, which pytest's is.
SCRIPT = """
import logging, sys
from registry.core import logs
logs.configure(sys.argv[1], json_lines=False)
pgserver = logging.getLogger("pgserver")
pgserver.info("Running commandline: initdb")
pgserver.warning("Failed to stop server, killing it instead.")
pgserver.error("Failed to start server.")
logging.getLogger("registry.core.db").info("applied migration 0001_foundation")
"""


def _log(level: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, level],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    # Drop the timestamps.
    return [line.split(" ", 2)[2] for line in done.stderr.splitlines()]


def test_pgserver_info_is_hidden_at_info_and_its_problems_are_not():
    assert _log("INFO") == [
        "WARNING pgserver Failed to stop server, killing it instead.",
        "ERROR pgserver Failed to start server.",
        "INFO registry.core.db applied migration 0001_foundation",
    ]


def test_pgserver_info_shows_as_debug_when_asked_for():
    assert _log("DEBUG")[0] == "DEBUG pgserver Running commandline: initdb"
