"""The service's log: pgserver's narration below the configured level, its errors kept; lines
written off the loop; secrets redacted by both formatters."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys

from registry.core import auth, logs
from registry.core.logs import REDACTED
from registry_client.forms import FormSigner
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


# Redaction: what a caller can put in a path or a message, as the formatters write it.


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("registry.access", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_a_jwt_anywhere_in_a_path_or_message_is_redacted():
    withdrawal = FormSigner.generate().sign_withdrawal("cns_0123456789abcdef")
    assert withdrawal.startswith("eyJ")
    assert withdrawal.count(".") == 2
    assert logs.redact(f"/v1/consents/{withdrawal}") == f"/v1/consents/{REDACTED}"
    assert logs.redact(f"/v1/status-lists/{withdrawal}/x") == f"/v1/status-lists/{REDACTED}/x"
    # A detached payload (empty middle part) and a JWE's five parts are compact forms too.
    header, _, signature = withdrawal.split(".")
    assert logs.redact(f"/a/{header}..{signature}") == f"/a/{REDACTED}"
    assert logs.redact(f"/a/{withdrawal}.{signature}.{signature}") == f"/a/{REDACTED}"
    assert logs.redact(f"token {withdrawal} refused") == f"token {REDACTED} refused"


def test_an_api_key_and_most_of_one_are_redacted():
    key = auth.generate_api_key()
    assert logs.redact(f"/v1/admin/clients/{key}") == f"/v1/admin/clients/{REDACTED}"
    assert logs.redact(f"/v1/x/{key[:-10]}/keys") == f"/v1/x/{REDACTED}/keys"
    assert logs.redact(f"/v1/x/{key}zz") == f"/v1/x/{REDACTED}"


def test_credential_named_parameters_lose_their_values_and_keep_their_names():
    key = auth.generate_api_key()
    # ASGI's path is percent-decoded: "%3F" in a request line is a "?" here.
    assert logs.redact("/v1/consents/x?access_token=abc123&limit=5") == (
        f"/v1/consents/x?access_token={REDACTED}&limit=5"
    )
    assert logs.redact(f"/cb?code=4/0Ad-xyz&state=s1;api_key={key}") == (
        f"/cb?code={REDACTED}&state=s1;api_key={REDACTED}"
    )
    signed = "/img.jpg?X-Amz-Signature=9f86d08188&X-Amz-Expires=60&sessionid=a/b&csrf_token=t"
    assert logs.redact(signed) == (
        f"/img.jpg?X-Amz-Signature={REDACTED}&X-Amz-Expires=60&sessionid={REDACTED}"
        f"&csrf_token={REDACTED}"
    )
    assert logs.redact("GET http://h/p?Password=hunter2 done") == (
        f"GET http://h/p?Password={REDACTED} done"
    )


def test_ids_names_and_plain_paths_are_left_as_they_are():
    for text in (
        "/v1/consents/cns_0123456789abcdef/grants",
        "/v1/admin/clients/cl_0123456789abcdef/keys/key_0123456789abcdef",
        "/v1/consents?subject_ref=x&limit=5",
        "/v1/moderation/decisions/dec_0f1e2d3c4b5a6978",
        "registry ready at https://registry.example.org",
        "database unavailable on /v1/consents: CannotConnectNowError",
        "applied migration 0010_service_role",
        "/v1/tokens/verify",
        "work_rk_notakey",
    ):
        assert logs.redact(text) == text


def test_the_json_formatter_redacts_the_path_and_the_message():
    key = auth.generate_api_key()
    line = logs.JsonFormatter().format(
        _record("refused %s", key, method="GET", path=f"/v1/x/{key}?token=t", status=404)
    )
    assert key not in line
    entry = json.loads(line)
    assert entry["msg"] == f"refused {REDACTED}"
    assert entry["path"] == f"/v1/x/{REDACTED}?token={REDACTED}"
    assert entry["status"] == 404


def _refuse(key: str) -> None:
    raise ValueError(f"bad key {key}")


def test_the_text_formatter_redacts_and_keeps_a_message_on_one_line():
    key = auth.generate_api_key()
    forged = '/v1/x\n2026-01-01 00:00:00,000 INFO registry.app admin "logged in"'
    try:
        _refuse(key)
    except ValueError:
        record = _record("unhandled on %s and %s", forged, key, exc_info=sys.exc_info())
    text = logs.TextFormatter().format(record)
    assert key not in text
    first, *traceback = text.splitlines()
    assert first.endswith(
        f'unhandled on /v1/x\\x0a2026-01-01 00:00:00,000 INFO registry.app admin "logged in"'
        f" and {REDACTED}"
    )
    assert traceback[-1] == f"ValueError: bad key {REDACTED}"
