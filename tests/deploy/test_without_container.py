"""The Dockerfile and compose.yaml, run on this machine without a container engine.

Nothing here builds an image. The test reads the Dockerfile and compose.yaml and does what they
say, each container path mapped to a scratch folder:

- the build stage's instructions in order: WORKDIR, ENV, COPY from the checkout (through
  .dockerignore's rules) and every RUN as written, so the venv is a fresh install of
  requirements-server.lock with pip's cache off, as in the image (and in CI);
- a fresh PostgreSQL 16 (pgserver) that refuses the registry's roles without their password
  (scram-sha-256 over TCP, as the postgres image does), and compose's init script on it;
- deploy/make-secrets.sh's files "mounted" where compose mounts them (copied as they are,
  mode included, since a compose file secret is a bind mount);
- compose's migrate and registry services: the image's ENTRYPOINT with the service's command,
  the runtime stage's ENV with the service's environment, as the image's uid when the test
  runs as root (with the data folder read-only to it, as compose's read_only root is);
- the HEALTHCHECK's own command until it passes, bounded by its start period.

Two things differ on purpose: the service listens on 127.0.0.1 and a free port (never on every
interface of a test machine), and the interpreter is this machine's Python 3.11 rather than the
image's (one the service's uid can run: /usr/bin/python3.11 when the tests' own lives under
/root). docs/deployment.md lists what this does and does not show.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pgserver
import pytest
from pgserver._commands import POSTGRES_BIN_PATH

from tests.deploy import files

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = files.ROOT
# The base image's environment that the runtime stage's ENV builds on (python:3.11-slim).
IMAGE_ENV = {"PATH": "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
INSTALL_SECONDS = 600  # one RUN; a fresh install takes well under a minute here
COMMAND_SECONDS = 120
STOP_SECONDS = 30
_KNOWN_BUILD = {"WORKDIR", "ENV", "COPY", "RUN"}
_KNOWN_RUNTIME = {"RUN", "COPY", "ENV", "WORKDIR", "USER", "EXPOSE", "HEALTHCHECK"}
_KNOWN_RUNTIME |= {"ENTRYPOINT", "CMD"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Scratch:
    """A folder standing for the container's file system."""

    root: Path

    def host(self, container_path: str) -> Path:
        assert container_path.startswith("/"), container_path
        return self.root / container_path.lstrip("/")

    def rewrite(self, text: str) -> str:
        """Absolute container paths in ``text`` (the ones these files use) as scratch paths."""
        for prefix in ("/opt/venv", "/src", "/var/lib/registry", "/run/secrets"):
            pattern = rf"(?<![\w./-]){re.escape(prefix)}(?![\w.-])"
            # A function, not a replacement string: a path is never read as an escape.
            host = str(self.host(prefix))
            text = re.sub(pattern, lambda _, host=host: host, text)
        return text


@dataclass
class Runner:
    """Who runs the service's commands: the image's uid when we may switch to it."""

    python: str
    uid: int | None
    note: str

    def kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.uid, "extra_groups": [], "umask": 0o022}


def _runner(uid: int) -> Runner:
    """An interpreter for the fresh venv that the service's uid can run, with the headers
    pdqhash's build needs; the image's uid only when this process may switch users."""
    candidates = list(dict.fromkeys([sys._base_executable, "/usr/bin/python3.11"]))
    if os.geteuid() != 0:
        return Runner(sys._base_executable, None, f"as uid {os.geteuid()} (not root)")
    probe = (
        "import ensurepip, os, sys, sysconfig, venv; "
        "sys.exit(sys.version_info[:2] != (3, 11) or "
        "not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"
    )
    for python in candidates:
        if not Path(python).exists():
            continue
        try:
            ran = subprocess.run(
                [python, "-c", probe],
                user=uid,
                group=uid,
                extra_groups=[],
                cwd="/",
                capture_output=True,
                timeout=30,
                check=False,
            )
        except PermissionError:
            # Under a folder this uid may not enter (/root/.pyenv, say).
            continue
        if ran.returncode == 0:
            return Runner(python, uid, f"as uid {uid} with {python}")
    return Runner(sys._base_executable, None, "as root: no Python 3.11 this uid can run")


@dataclass
class Postgres:
    """A fresh pgserver on a TCP port of its own that asks the registry's roles for their
    password, as the postgres image's server does over its network."""

    pgdata: Path
    port: int
    server: Any
    user: str | None

    @classmethod
    def start(cls, base: Path) -> Postgres:
        pgdata = base / "pg"
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
        hba = pgdata / "pg_hba.conf"
        # First match wins: these lines come before pgserver's trust lines. The superuser
        # keeps trust over the socket (it runs the init script, as in the image).
        hba.write_text(
            "host all registry_owner,registry_app 127.0.0.1/32 scram-sha-256\n"
            "local all registry_owner,registry_app scram-sha-256\n" + hba.read_text(),
        )
        port = _free_port()
        pg = cls(pgdata=pgdata, port=port, server=server, user=server.system_user)
        # Options given to a restart replace pgserver's, so its socket folder is named again.
        pg.pg_ctl("-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "restart")
        return pg

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "pg_ctl"),
                *("-D", str(self.pgdata), "-w", "-t", "30", "-l", str(self.pgdata / "log")),
                *args,
            ],
            user=self.user,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=40,
        )

    def admin_url(self, database: str) -> str:
        return f"postgresql://postgres:@/{database}?host={self.pgdata}&port={self.port}"

    def close(self) -> None:
        # pgserver stops only the postmaster it started; ours was restarted since.
        with contextlib.suppress(subprocess.SubprocessError):
            self.pg_ctl("-m", "immediate", "stop")
        self.server.cleanup()


@dataclass
class Deployment:
    scratch: Scratch
    runner: Runner
    postgres: Postgres
    env: dict[str, str]
    """The registry service's environment: the image's ENV, compose's, this test's port."""
    migrate_env: dict[str, str]
    entrypoint: list[str]
    healthcheck: files.Healthcheck
    service: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    first_migrate: subprocess.CompletedProcess[str] | None = None
    healthcheck_before: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['REGISTRY_PORT']}"

    def program(self, argv: list[str], env: dict[str, str]) -> list[str]:
        found = shutil.which(argv[0], path=env["PATH"])
        assert found is not None, f"{argv[0]} is not on the image's PATH {env['PATH']}"
        return [found, *argv[1:]]

    def run(self, argv: list[str], env: dict[str, str], timeout: float = COMMAND_SECONDS):
        return subprocess.run(
            self.program(argv, env),
            env=env,
            cwd=self.env["HOME"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **self.runner.kwargs(),
        )

    def check_health(self) -> int:
        """The HEALTHCHECK's command once, as Docker runs it: its exit code."""
        timeout = files.seconds(self.healthcheck.options["timeout"])
        try:
            return self.run(self.healthcheck.argv, self.env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return -1

    def stop_service(self) -> None:
        if self.service is not None and self.service.poll() is None:
            self.service.kill()
            self.service.wait(timeout=10)

    def service_log(self) -> str:
        assert self.log is not None
        return self.log.read_text(errors="replace")[-4000:]


def _copy(source: Path, dest: Path, relative: str) -> None:
    """COPY from the build context: what .dockerignore lets through."""

    def ignored(folder: str, names: list[str]) -> set[str]:
        inside = Path(folder).relative_to(ROOT)
        return {n for n in names if not files.dockerignore_allows(str(inside / n))}

    assert files.dockerignore_allows(relative), relative
    if source.is_dir():
        shutil.copytree(source, dest, ignore=ignored, dirs_exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)


def build(stage: files.Stage, scratch: Scratch, python: str, timings: dict[str, float]) -> None:
    """The build stage's instructions in order, as root (as the builder runs them)."""
    shim = scratch.root / "shim"
    shim.mkdir()
    # `python` in the build stage is the base image's interpreter.
    (shim / "python").symlink_to(python)
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REGISTRY_", "PYTHON", "PIP_NO_", "VIRTUAL_ENV"))
    }
    path = [p for p in os.environ.get("PATH", "").split(":") if "/.venv" not in p and p]
    env = {**inherited, "PATH": ":".join([str(shim), *path])}
    cwd = scratch.root
    for number, instruction in enumerate(stage.instructions):
        assert instruction.keyword in _KNOWN_BUILD, instruction
        if instruction.keyword == "WORKDIR":
            cwd = scratch.host(instruction.args)
            cwd.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "ENV":
            single = files.Stage(base="", name=None, instructions=[instruction])
            env = {k: scratch.rewrite(v) for k, v in files.env_of(single, env).items()}
        elif instruction.keyword == "COPY":
            (copy,) = files.copies(files.Stage(base="", name=None, instructions=[instruction]))
            assert copy.from_stage is None
            target = cwd / copy.dest
            for source in copy.sources:
                into_folder = copy.dest.endswith("/") or len(copy.sources) > 1
                dest = target / Path(source).name if into_folder else target
                _copy(ROOT / source, dest, source)
        else:
            started = time.monotonic()
            ran = subprocess.run(
                ["/bin/sh", "-c", scratch.rewrite(instruction.args)],
                cwd=cwd,
                env=env,
                umask=0o022,
                capture_output=True,
                text=True,
                timeout=INSTALL_SECONDS,
                check=False,
            )
            timings[f"build RUN #{number} (line {instruction.line})"] = time.monotonic() - started
            assert ran.returncode == 0, f"line {instruction.line}: {ran.stderr[-4000:]}"


def runtime_env(stage: files.Stage, scratch: Scratch) -> tuple[dict[str, str], int | None]:
    """The runtime stage's environment and USER; its files as compose's read-only root."""
    uid = None
    for instruction in stage.instructions:
        assert instruction.keyword in _KNOWN_RUNTIME, instruction
        # Its RUN makes the user account (groupadd, useradd): not done on this machine, where
        # the commands run as that uid without an account (test_files checks the uid matches).
        if instruction.keyword == "COPY":
            (copy,) = files.copies(files.Stage(base="", name=None, instructions=[instruction]))
            # The same path in both stages, so the scratch venv is already in place.
            assert copy.sources == [copy.dest], copy
        elif instruction.keyword == "USER":
            uid = int(instruction.args.partition(":")[0])
        elif instruction.keyword == "WORKDIR":
            # Owned by root and 0755: the service may read but not write there, as under
            # compose's read_only: true.
            scratch.host(instruction.args).mkdir(parents=True, exist_ok=True)
    env = {k: scratch.rewrite(v) for k, v in files.env_of(stage, IMAGE_ENV).items()}
    workdir = stage.last("WORKDIR")
    assert workdir is not None
    env["HOME"] = str(scratch.host(workdir.args))
    # compose's tmpfs /tmp.
    tmp = scratch.root / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    env["TMPDIR"] = str(tmp)
    return env, uid


def mount_secrets(service: dict[str, Any], compose: dict[str, Any], made: Path, scratch: Scratch):
    """compose's file secrets as bind mounts would show them: same bytes, same mode."""
    for path, source in files.service_secrets(service, compose).items():
        target = scratch.host(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755)
        shutil.copy2(made / Path(source).name, target)


def compose_env(service: dict[str, Any], scratch: Scratch) -> dict[str, str]:
    return {k: scratch.rewrite(v) for k, v in files.service_environment(service).items()}


def init_postgres(compose: dict[str, Any], postgres: Postgres, scratch: Scratch) -> None:
    """The postgres image's first start: its init script, as the superuser on the socket."""
    service = compose["services"]["postgres"]
    (init,) = [v for v in service["volumes"] if "docker-entrypoint-initdb.d" in v]
    initialised = subprocess.run(
        [str(ROOT / init.split(":")[0])],
        env={
            "PATH": f"{POSTGRES_BIN_PATH}:/usr/bin:/bin",
            "PGHOST": str(postgres.pgdata),
            "PGPORT": str(postgres.port),
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "postgres",
            **compose_env(service, scratch),
        },
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    assert initialised.returncode == 0, initialised.stdout + initialised.stderr


def start_service(deployment: Deployment, command: list[str]) -> None:
    """`registry serve` as compose starts it, then the HEALTHCHECK until it passes (bounded by
    its start period)."""
    deployment.log = deployment.scratch.root / "registry.log"
    argv = deployment.program(deployment.entrypoint + command, deployment.env)
    with deployment.log.open("ab") as log:
        deployment.service = subprocess.Popen(
            argv,
            env=deployment.env,
            cwd=deployment.env["HOME"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            **deployment.runner.kwargs(),
        )
    started = time.monotonic()
    bound = files.seconds(deployment.healthcheck.options["start-period"])
    while deployment.check_health() != 0:
        assert deployment.service.poll() is None, deployment.service_log()
        assert time.monotonic() - started < bound, "never healthy\n" + deployment.service_log()
        time.sleep(0.5)
    deployment.timings["registry serve until the HEALTHCHECK passed"] = time.monotonic() - started


def prepare(scratch: Scratch, runner: Runner, timings: dict[str, float]) -> Deployment:
    """Build, a database with its roles, the secrets in place, and the migration done."""
    stages = files.stages()
    build_stage, runtime_stage = stages[0], stages[-1]
    compose = files.compose()
    services = compose["services"]
    started = time.monotonic()
    build(build_stage, scratch, runner.python, timings)
    timings["build stage, in all"] = time.monotonic() - started

    started = time.monotonic()
    postgres = Postgres.start(scratch.root)
    timings["fresh PostgreSQL"] = time.monotonic() - started
    deployment = None
    try:
        made = scratch.root / "host-secrets"
        secrets = files.make_secrets(made, server=f"127.0.0.1:{postgres.port}")
        assert secrets.returncode == 0, secrets.stderr
        for service in services.values():
            mount_secrets(service, compose, made, scratch)
        init_postgres(compose, postgres, scratch)
        image_env, uid = runtime_env(runtime_stage, scratch)
        assert runner.uid in {None, uid}
        entrypoint = runtime_stage.last("ENTRYPOINT")
        check = files.healthcheck(runtime_stage)
        assert entrypoint is not None
        assert check is not None
        # Only where this machine must differ: loopback, and a port nobody else uses.
        here = {"REGISTRY_HOST": "127.0.0.1", "REGISTRY_PORT": str(_free_port())}
        deployment = Deployment(
            scratch=scratch,
            runner=runner,
            postgres=postgres,
            env={**image_env, **compose_env(services["registry"], scratch), **here},
            migrate_env={**image_env, **compose_env(services["migrate"], scratch), **here},
            entrypoint=entrypoint.argv(),
            healthcheck=check,
            timings=timings,
        )
        started = time.monotonic()
        migrate = deployment.entrypoint + services["migrate"]["command"]
        deployment.first_migrate = deployment.run(migrate, deployment.migrate_env)
        timings["registry migrate"] = time.monotonic() - started
        assert deployment.first_migrate.returncode == 0, deployment.first_migrate.stderr
        deployment.healthcheck_before = deployment.check_health()
        start_service(deployment, services["registry"].get("command", ["serve"]))
    except BaseException:
        if deployment is not None:
            deployment.stop_service()
        postgres.close()
        raise
    return deployment


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    user = files.stages()[-1].last("USER")
    assert user is not None
    runner = _runner(int(user.args.partition(":")[0]))
    # Not under pytest's tmp_path (0700, root's): the service's uid must read the venv.
    scratch = Scratch(Path(tempfile.mkdtemp(prefix="deploy-", dir="/tmp")))
    scratch.root.chmod(0o755)
    timings: dict[str, float] = {}
    try:
        deployment = prepare(scratch, runner, timings)
        try:
            yield deployment
        finally:
            deployment.stop_service()
            deployment.postgres.close()
    finally:
        sys.stdout.write(f"\ntests/deploy ran the service {runner.note}; seconds:\n")
        for name, value in timings.items():
            sys.stdout.write(f"  {name}: {value:.1f}\n")
        shutil.rmtree(scratch.root, ignore_errors=True)


def test_the_build_stage_installed_every_package_the_project_ships(deployment):
    venv = deployment.scratch.host("/opt/venv")
    (dist,) = venv.glob("lib/python3.11/site-packages/consent_registry-*.dist-info")
    top_level = set((dist / "top_level.txt").read_text().split())
    assert top_level == files.shipped_packages()
    # Installed, not editable: no link back to a source tree the runtime does not have.
    assert not list(venv.glob("lib/python3.11/site-packages/__editable__*"))
    assert (venv / "bin" / "registry").is_file()
    migrations = venv.glob("lib/python3.11/site-packages/registry/migrations/*.sql")
    assert len(list(migrations)) == len(list((ROOT / "migrations").glob("*.sql")))


def test_migrate_applied_every_migration_as_the_owner_and_a_rerun_changes_nothing(deployment):
    first = deployment.first_migrate
    assert first is not None
    count = len(list((ROOT / "migrations").glob("*.sql")))
    assert f"applied {count} migration(s)" in first.stdout
    # compose runs migrate at every `up`.
    again = deployment.run([*deployment.entrypoint, "migrate"], deployment.migrate_env)
    assert again.returncode == 0, again.stderr
    assert "database is up to date" in again.stdout


def test_the_healthcheck_failed_before_the_service_and_readyz_answers_now(deployment):
    assert deployment.healthcheck_before not in {None, 0}
    with urllib.request.urlopen(f"{deployment.base_url}/readyz", timeout=5) as response:  # noqa: S310 - loopback
        assert response.status == 200


async def test_the_service_is_connected_as_its_own_role_only(deployment):
    admin = await asyncpg.connect(deployment.postgres.admin_url("registry"))
    try:
        users = await admin.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity"
            " WHERE datname = 'registry' AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    assert {row["usename"] for row in users} == {"registry_app"}


def test_the_service_runs_as_the_images_user(deployment):
    service = deployment.service
    assert service is not None
    if deployment.runner.uid is None:
        pytest.skip(f"this run cannot switch users: {deployment.runner.note}")
    # The supervisor as the image's USER; its workers are its children, alike.
    assert Path(f"/proc/{service.pid}").stat().st_uid == deployment.runner.uid


async def test_the_service_role_owns_nothing_and_cannot_switch_off_the_audit_triggers(
    deployment,
):
    admin = await asyncpg.connect(deployment.postgres.admin_url("registry"))
    try:
        owners = await admin.fetch(
            "SELECT DISTINCT r.rolname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_roles r ON r.oid = c.relowner WHERE n.nspname = 'public'"
        )
        role = await admin.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, pg_has_role(oid, 'registry_service',"
            " 'MEMBER') AS member FROM pg_roles WHERE rolname = 'registry_app'"
        )
        group_logs_in = await admin.fetchval(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'registry_service'"
        )
    finally:
        await admin.close()
    assert {row["rolname"] for row in owners} == {"registry_owner"}
    assert dict(role) == {
        "rolsuper": False,
        "rolcreaterole": False,
        "rolcreatedb": False,
        "member": True,
    }
    assert group_logs_in is False

    url = tomllib.loads(
        deployment.scratch.host("/run/secrets/serve_settings").read_text(encoding="utf-8")
    )["database_url"]
    # The password from the secret opens the service's role; a wrong one does not.
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(url.replace("registry_app:", "registry_app:wrong", 1))
    service = await asyncpg.connect(url)
    try:
        assert await service.fetchval("SELECT current_user") == "registry_app"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await service.execute("ALTER TABLE audit_events DISABLE TRIGGER ALL")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await service.execute("DELETE FROM audit_events")
    finally:
        await service.close()


def test_a_first_admin_made_with_the_cli_works_on_the_service(deployment):
    # docs/deployment.md: `docker compose exec registry registry clients create ...`.
    create = ["clients", "create", "--json", "--name", "operator", "--role", "admin"]
    made = deployment.run([*deployment.entrypoint, *create], deployment.env)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["api_key"]
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{deployment.base_url}/v1/admin/clients", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200
        listed = json.loads(response.read())
    assert "operator" in json.dumps(listed)


def test_sigterm_stops_the_service_within_compose_grace_period(deployment):
    # Last: `docker compose stop` sends SIGTERM, then SIGKILL after stop_grace_period.
    service = deployment.service
    assert service is not None
    grace = files.seconds(files.compose()["services"]["registry"]["stop_grace_period"])
    started = time.monotonic()
    service.send_signal(signal.SIGTERM)
    code = service.wait(timeout=min(grace, STOP_SECONDS))
    deployment.timings["SIGTERM until exit"] = time.monotonic() - started
    assert code in {0, -signal.SIGTERM}, deployment.service_log()
    assert deployment.check_health() != 0
