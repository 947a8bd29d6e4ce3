"""The fault suite's parts: a PostgreSQL the test may restart, the service as a subprocess,
and a load that records every response.

Everything is bounded: each wait has a deadline, each load a count and a time limit, and all
traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pgserver
from pgserver._commands import POSTGRES_BIN_PATH

import keys
from tests.consent_http import helpers
from tests.gate_http.conftest import check_request, consented_source, output, post_check
from tests.support import ADMIN_KEY

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from tests.consent_http.conftest import World
    from tests.gate_http.conftest import Source

REPO = Path(__file__).resolve().parents[2]
PG_CTL = POSTGRES_BIN_PATH / "pg_ctl"
CLEAN = {"sexual_content": 0.01, "minor_presence": 0.01, "nonconsensual_transformation": 0.01}
# A short base: PostgreSQL's unix socket path must stay under 107 bytes.
SHORT_TMP = "/tmp" if Path("/tmp").is_dir() else None  # noqa: S108 - a scratch directory
START_SECONDS = 60.0


def short_tmp(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=SHORT_TMP))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pg_ctl(pgdata: Path, *args: str, user: str | None, timeout: float = 30) -> None:
    """Run pg_ctl on ``pgdata`` as the server's owner (pgserver's user when we are root).

    The server's log goes to its file: a server started by pg_ctl inherits pg_ctl's output,
    and a pipe it holds open would never end."""
    subprocess.run(
        [str(PG_CTL), "-D", str(pgdata), "-w", "-t", str(int(timeout)), *args],
        check=True,
        user=user,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=timeout + 5,
    )


class RestartablePostgres:
    """A pgserver instance of the test's own, which it may restart or stop at will."""

    def __init__(self) -> None:
        self.pgdata = short_tmp("rf-pg-") / "pg"
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="delete")
        self.admin_url = str(self._server.get_uri())
        self.user: str | None = self._server.system_user

    def url(self, database: str) -> str:
        return self.admin_url.replace("/postgres?", f"/{database}?", 1)

    async def create_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def restart(self) -> float:
        """``pg_ctl restart -m immediate`` (a crash, then recovery); when it answers again."""
        pg_ctl(
            self.pgdata,
            "-m",
            "immediate",
            "-l",
            str(self.pgdata / "log"),
            "restart",
            user=self.user,
        )
        return time.monotonic()

    def close(self) -> None:
        # pgserver stops only the server it started (by pid); ours has restarted since.
        with contextlib.suppress(subprocess.SubprocessError):
            pg_ctl(self.pgdata, "-m", "immediate", "stop", user=self.user)
        self._server.cleanup()
        shutil.rmtree(self.pgdata.parent, ignore_errors=True)


def service_env(database_url: str, data_dir: Path, port: int, **settings: str) -> dict[str, str]:
    """The environment of `registry serve` on ``database_url``, as an operator would set it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(
        {
            "REGISTRY_DATABASE_URL": database_url,
            "REGISTRY_MASTER_KEY": keys.MasterKey.generate().to_text(),
            "REGISTRY_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
            "REGISTRY_DATA_DIR": str(data_dir),
            "REGISTRY_HOST": "127.0.0.1",
            "REGISTRY_PORT": str(port),
            "REGISTRY_RATE_LIMIT_PER_MINUTE": "1000000",
            "REGISTRY_CHECKPOINT_INTERVAL": "3600",
            "REGISTRY_STATS_REFRESH_INTERVAL": "3600",
            "REGISTRY_LOG_LEVEL": "WARNING",
        }
    )
    env.update({f"REGISTRY_{name.upper()}": value for name, value in settings.items()})
    return env


class Service:
    """`registry serve` as a subprocess, its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *, stdout_too: bool = False) -> None:
        """``stdout_too``: the log file gets stdout as well as stderr (else stdout is dropped)."""
        self.env = env
        self.log_path = log_path
        self.base_url = f"http://127.0.0.1:{env['REGISTRY_PORT']}"
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "registry.cli", "serve"],
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log if stdout_too else subprocess.DEVNULL,
                stderr=log,
            )

    def wait_ready(self, timeout: float = START_SECONDS) -> float:
        """Seconds until /readyz answers 200; fails with the log when the service died."""
        started = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() - started < timeout, "service did not come up\n" + self.log()
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (killed after ``timeout`` seconds)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@contextlib.contextmanager
def running(env: dict[str, str], log_path: Path) -> Iterator[Service]:
    service = Service(env, log_path)
    try:
        service.wait_ready()
        yield service
    finally:
        if service.proc.poll() is None:
            service.stop()


def audit_verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`registry audit verify --json` on the service's database and master key."""
    return subprocess.run(
        [sys.executable, "-m", "registry.cli", "audit", "verify", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Outcome:
    """One request of the load, as the client saw it."""

    op: str
    sent: float
    done: float
    status: int | None = None
    code: str | None = None
    retry_after: str | None = None
    ident: str | None = None
    safety_status: str | None = None
    request_id: str | None = None
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.done - self.sent


@dataclass
class Load:
    """A mixed load on one service: token verification, gate decisions with supplied scores,
    consent submissions and client creations, each outcome recorded."""

    world: World
    source: Source
    outcomes: list[Outcome] = field(default_factory=list)
    images: tuple[bytes, ...] = ()
    _sequence: int = 0

    @classmethod
    async def prepare(cls, world: World) -> Load:
        source = await consented_source(world)
        images = tuple(output(seed, size=(256, 192)) for seed in range(4))
        return cls(world=world, source=source, images=images)

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    async def verify(self) -> httpx.Response:
        world = self.world
        response: httpx.Response = await world.http.post(
            "/v1/tokens/verify", json={"token": self.source.token}, headers=world.generator.headers
        )
        return response

    async def decide(self) -> httpx.Response:
        number = self._next()
        body = check_request(
            f"gen-{number}",
            sources=[self.source.asset()],
            generator=self.world.generator.client_id,
            scores=CLEAN,
        )
        image = self.images[number % len(self.images)]
        response: httpx.Response = await post_check(
            self.world.http, self.world.publisher.headers, body, image
        )
        return response

    async def submit_consent(self) -> httpx.Response:
        world = self.world
        response: httpx.Response = await world.submit(
            helpers.sign_form(world.signer, helpers.form_payload())
        )
        return response

    async def create_client(self) -> httpx.Response:
        response: httpx.Response = await self.world.http.post(
            "/v1/admin/clients",
            json={"name": f"load client {self._next()}", "roles": ["generator"], "tenant": "acme"},
            headers=self.world.admin,
        )
        return response

    def operations(self) -> dict[str, Callable[[], Awaitable[httpx.Response]]]:
        return {
            "verify": self.verify,
            "decide": self.decide,
            "consent": self.submit_consent,
            "client": self.create_client,
        }

    async def run(self, *, tasks: int, seconds: float, max_requests: int) -> None:
        """``tasks`` clients, each cycling through the operations until ``seconds`` have
        passed or ``max_requests`` were made in all."""
        deadline = time.monotonic() + seconds
        ops = list(self.operations().items())

        async def client(offset: int) -> None:
            turn = offset
            while time.monotonic() < deadline and len(self.outcomes) < max_requests:
                name, call = ops[turn % len(ops)]
                turn += 1
                outcome = await record(name, call)
                self.outcomes.append(outcome)
                if outcome.status is None or outcome.status >= 500:
                    # As a client honouring Retry-After would, only shorter: keep probing.
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(client(i) for i in range(tasks)))


_IDENTITY = {"decide": "decision_id", "consent": "consent_id", "client": "client_id"}


async def record(op: str, call: Callable[[], Awaitable[httpx.Response]]) -> Outcome:
    sent = time.monotonic()
    try:
        response = await call()
    except httpx.HTTPError as exc:
        return Outcome(op=op, sent=sent, done=time.monotonic(), error=type(exc).__name__)
    outcome = Outcome(
        op=op,
        sent=sent,
        done=time.monotonic(),
        status=response.status_code,
        retry_after=response.headers.get("retry-after"),
        request_id=response.headers.get("x-request-id"),
    )
    body: Any = response.json() if response.content else None
    if isinstance(body, dict):
        outcome.code = body.get("code")
        if response.is_success and op in _IDENTITY:
            outcome.ident = body.get(_IDENTITY[op])
            outcome.safety_status = body.get("safety_status")
    return outcome


async def audited(database_url: str, subject_ids: list[str]) -> set[str]:
    """The subjects among ``subject_ids`` that have an audit event."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT subject_id FROM audit_events WHERE subject_id = ANY($1::text[])",
            subject_ids,
        )
    finally:
        await conn.close()
    return {row["subject_id"] for row in rows}


READ_BACK = {
    "decide": "/v1/moderation/decisions/{}",
    "consent": "/v1/consents/{}",
    "client": "/v1/admin/clients/{}",
}


async def unreadable(world: World, outcomes: list[Outcome]) -> list[Outcome]:
    """Acknowledged writes the service cannot read back now."""
    headers = {"decide": world.admin, "consent": world.uploader.headers, "client": world.admin}
    missing = []
    for outcome in outcomes:
        if outcome.ident is None:
            continue
        path = READ_BACK[outcome.op].format(outcome.ident)
        response = await world.http.get(path, headers=headers[outcome.op])
        if response.status_code != 200:
            missing.append(outcome)
    return missing
