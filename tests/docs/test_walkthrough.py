"""README.md and the guides in docs/, pasted block by block into one shell, do what they say.

The test plays the reader: a checkout with ``make install`` done (a directory whose ``.venv``
is this project's), a shell with nothing of ours on PATH, and the README's blocks pasted in
reading order (guides spliced in where the README includes them). The walkthrough starts
its own service on an embedded PostgreSQL, works in a scratch directory, and the text's
claims are checked from each block's output (``docs-test: expect``). Two substitutions keep
it off the reader's machine: the service's port (``127.0.0.1:8000`` becomes a free port) and
the temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.docs.blocks import Block, blocks

ROOT = Path(__file__).resolve().parents[2]
GUIDES = sorted((ROOT / "docs").glob("*.md"))
TIMEOUT_SECONDS = 420
_MARK = "@@docs-test block {}@@"
_FAILED = re.compile(r"@@docs-test failed \(exit (\d+)\): (.*)@@")
# The outcomes issue #9 asks the walkthrough to reach; each must be claimed by some block.
OUTCOMES = {
    "a consent with its receipt": '"receipt": "ey',
    "a token valid online": '"valid": true',
    "a token valid offline": '"result": "valid"',
    "an allowed gate decision": "safety_status: allowed",
    "a review decided by a reviewer": "review decided: allowed",
    "a blocked decision appealed": "appeal decided: upheld",
    "a signed output verified offline": "result: VERIFIED",
    "a withdrawal listing the output": "withdrawal lists output out_",
    "a signed takedown notice delivered": "takedown notice verified for gen-",
    "a revoked token offline": '"result": "revoked"',
    "the audit log verified after erasure": "audit chain intact after erasure",
}


def walkthrough() -> list[Block]:
    return blocks(ROOT / "README.md", ROOT)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _script(steps: list[Block], port: int) -> str:
    lines = [
        "set -o pipefail -o errtrace",
        "trap 'echo \"@@docs-test failed (exit $?): $BASH_COMMAND@@\" >&2' ERR",
    ]
    for number, block in enumerate(steps):
        code = block.code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        mark = _MARK.format(number)
        lines += [f"echo '{mark}'", f"echo '{mark}' >&2"]
        if block.save_as:
            lines += [f"cat > {block.save_as} <<'__DOCS_TEST_EOF__'", code + "__DOCS_TEST_EOF__"]
        elif block.language == "python":
            lines += ["python3 - <<'__DOCS_TEST_EOF__'", code + "__DOCS_TEST_EOF__"]
        else:
            lines.append(code)
    # The reader closes the terminal: background jobs (the service, a receiver) get SIGTERM.
    lines += [f"echo '{_MARK.format('end')}'", "kill $(jobs -p) 2>/dev/null", "wait"]
    return "\n".join(lines) + "\n"


def _split(text: str, count: int) -> list[str]:
    parts = [""] * count
    current = None
    for line in text.splitlines():
        match = re.fullmatch(r"@@docs-test block (\d+|end)@@", line)
        if match:
            current = None if match[1] == "end" else int(match[1])
        elif current is not None:
            parts[current] += line + "\n"
    return parts


def test_every_guide_is_part_of_the_walkthrough():
    included = {block.source for block in walkthrough()}
    runnable = [guide for guide in GUIDES if blocks(guide, ROOT)]
    missing = [
        str(g.relative_to(ROOT)) for g in runnable if str(g.relative_to(ROOT)) not in included
    ]
    assert missing == [], "include these guides in README.md with <!-- docs-test: include ... -->"


def test_every_outcome_is_claimed_by_the_text():
    claims = [text for block in walkthrough() for text in block.expect]
    unclaimed = [name for name, text in OUTCOMES.items() if not any(text in c for c in claims)]
    assert unclaimed == []


def test_skipped_blocks_say_why():
    skipped = [(block.where, block.skip) for block in walkthrough() if block.skip]
    # Each skip is a block that starts a second service or needs another machine.
    assert all(reason for _, reason in skipped)
    assert len(skipped) <= 6, skipped


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough uses curl")
def test_the_walkthrough_runs_as_written():
    steps = [block for block in walkthrough() if block.skip is None]
    port = _free_port()
    # Short paths: PostgreSQL's socket path must stay under 107 bytes.
    scratch = Path(tempfile.mkdtemp(prefix="docs-"))
    checkout = scratch / "checkout"
    checkout.mkdir()
    # The reader's checkout, without its data: this project's files and virtualenv.
    for entry in ROOT.iterdir():
        if entry.name not in {".registry", ".venv", ".git"}:
            (checkout / entry.name).symlink_to(entry)
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    temp = scratch / "tmp"
    temp.mkdir()
    env = {
        "PATH": os.pathsep.join(
            p for p in os.environ["PATH"].split(os.pathsep) if not p.startswith(sys.prefix)
        ),
        "HOME": str(scratch),
        "TMPDIR": str(temp),
        "LANG": "C.UTF-8",
        "REGISTRY_PORT": str(port),
    }
    process = subprocess.Popen(
        [shutil.which("bash") or "/bin/bash", "--noprofile", "--norc"],
        cwd=checkout,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(_script(steps, port), timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"the walkthrough did not finish in {TIMEOUT_SECONDS} s:\n{out[-4000:]}")
    finally:
        _stop(process.pid)
        shutil.rmtree(scratch, ignore_errors=True)
    stdouts, stderrs = _split(out, len(steps)), _split(err, len(steps))
    problems = []
    for number, block in enumerate(steps):
        failures = _FAILED.findall(stderrs[number])
        if failures and not block.may_fail:
            problems.append(f"{block.where}: {failures}\n{stderrs[number][-1500:]}")
        problems += [
            f"{block.where}: output lacks {text!r}\n{stdouts[number][-1500:]}"
            for text in block.expect
            if text not in stdouts[number]
        ]
    assert "@@docs-test block end@@" in out, err[-4000:]
    Path(os.environ.get("DOCS_TEST_LOG", os.devnull)).write_text(out + "\n" + err)
    assert problems == [], "\n\n".join(problems)


def _stop(group: int) -> None:
    """End what the walkthrough left running: the service first, gently (it stops PostgreSQL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
