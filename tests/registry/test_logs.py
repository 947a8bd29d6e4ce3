"""The service's log: pgserver's narration below the configured level, its errors kept."""

from __future__ import annotations

import json
import signal
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


# The access log's path: a line logged under a request id that is reset at once, many lines
# in a burst, then the end uvicorn gives a process (drain, more lines, SIGTERM re-raised).
OFF_LOOP = """
import json, logging, logging.handlers, signal, sys
from registry.core import logs
logs.configure("INFO", json_lines=True)
assert isinstance(logging.getLogger().handlers[0], logging.handlers.QueueHandler)
access = logging.getLogger("registry.access")
token = logs.request_id.set("req-12345678")
access.info("request", extra={"method": "GET", "path": "/healthz", "status": 200,
                              "duration_ms": 1.5, "client_address": "127.0.0.1"})
logs.request_id.reset(token)
for n in range(500):
    access.info("line %d", n)
try:
    raise ValueError("secret detail")
except ValueError:
    logging.getLogger("registry.app").exception("failed %s", "here")
if sys.argv[1] == "signal":
    logs.drain()
    logging.getLogger("uvicorn.error").info("Finished server process")
    signal.raise_signal(signal.SIGTERM)
"""


def _lines(how: str) -> tuple[int, list[dict]]:
    done = subprocess.run(
        [sys.executable, "-c", OFF_LOOP, how],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    return done.returncode, [json.loads(line) for line in done.stderr.splitlines()]


def test_lines_written_off_the_loop_keep_their_fields_and_none_is_lost():
    returncode, lines = _lines("exit")
    assert returncode == 0
    first = lines[0]
    assert first.pop("ts")
    assert first == {
        "level": "INFO",
        "logger": "registry.access",
        "msg": "request",
        "request_id": "req-12345678",
        "method": "GET",
        "path": "/healthz",
        "status": 200,
        "duration_ms": 1.5,
        "client_address": "127.0.0.1",
    }
    assert [line["msg"] for line in lines[1:501]] == [f"line {n}" for n in range(500)]
    assert all("request_id" not in line for line in lines[1:])
    assert lines[501]["msg"] == "failed here"
    assert lines[501]["exc_type"] == "ValueError"
    assert "secret detail" not in json.dumps(lines)
    assert len(lines) == 502


def test_after_drain_lines_are_written_before_a_signal_ends_the_process():
    returncode, lines = _lines("signal")
    assert returncode == -signal.SIGTERM
    assert len(lines) == 503
    assert lines[-1]["msg"] == "Finished server process"
