"""The base install, without the ``server`` extra, is the whole offline verifier.

A fresh virtualenv gets requirements-verifier.lock (``--require-hashes --no-deps``) and our
wheel (``--no-deps``), nothing else: the service's libraries cannot be imported there, the
``registry`` command says it needs the extra, and ``python -m verifier`` verifies what the
real service publishes: a signed output with our C2PA anchor, the JWKS, the detached
assertion and the status list, a consent token, the person's consent receipt with the key
history, and an audit event's inclusion proof against a signed checkpoint note.

pip downloads the locked wheels (about 70 MB) unless its cache holds them: about 16 s with an
empty cache on the development machine, a second or two with a warm one; ``_PIP_BUDGET``
bounds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from packaging.requirements import Requirement

from tests.provenance_http import conftest as provenance_fixtures
from tests.provenance_http.test_sign import flip_pixel_byte
from tests.test_lock import locked
from tests.test_wheel import build_wheel

ROOT = Path(__file__).resolve().parent.parent
VERIFIER_LOCK = ROOT / "requirements-verifier.lock"
_PIP_BUDGET = 300  # seconds for each pip run; an empty cache takes about 16 s here
_RUN_BUDGET = 120
# What the service needs and the verifier must do without.
SERVER_MODULES = ("litestar", "asyncpg", "pgserver", "uvicorn", "httpx", "jinja2", "redis")

# The service and its consent world, as the provenance tests use them.
world = provenance_fixtures.world
sign_output = provenance_fixtures.sign_output
sign_output = provenance_fixtures.sign_output
signed = provenance_fixtures.signed


def _clean_env() -> dict[str, str]:
    """The environment without anything that points Python at the checkout or its venv."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP"}
    }


class BaseVenv:
    def __init__(self, root: Path, workdir: Path) -> None:
        self.root = root
        self.python = root / "bin" / "python"
        self.workdir = workdir

    def run(self, *argv: str | Path, python: bool = True) -> subprocess.CompletedProcess[str]:
        # -I: no PYTHON* variables, no user site, and not the working directory on sys.path,
        # so nothing of the checkout can be imported by accident.
        command = [str(self.python), "-I", *map(str, argv)] if python else list(map(str, argv))
        return subprocess.run(
            command,
            cwd=self.workdir,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=_RUN_BUDGET,
            check=False,
        )


def _pip(target: Path, *args: str | Path) -> None:
    # The test environment's pip installs into the fresh venv (--python), which has none.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(target), "install", "--quiet", *args],
        check=True,
        timeout=_PIP_BUDGET,
        env=_clean_env(),
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory, wheel) -> BaseVenv:
    """A fresh virtualenv holding the verifier lock and our wheel, without the extra."""
    root = tmp_path_factory.mktemp("base-venv") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=60
    )
    python = root / "bin" / "python"
    _pip(python, "--require-hashes", "--no-deps", "-r", VERIFIER_LOCK)
    _pip(python, "--no-deps", wheel)
    return BaseVenv(root, tmp_path_factory.mktemp("outside-the-checkout"))


def test_the_wheel_puts_the_service_dependencies_in_the_server_extra(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    requires = [
        Requirement(line.removeprefix("Requires-Dist: "))
        for line in lines
        if line.startswith("Requires-Dist: ")
    ]
    base = {r.name for r in requires if r.marker is None}
    server = {r.name for r in requires if r.marker is not None and "server" in str(r.marker)}

    assert "Provides-Extra: server" in lines
    assert {"cryptography", "c2pa-python", "msgspec", "pillow", "imagehash"} <= base
    assert {"litestar", "asyncpg", "pgserver", "uvicorn"} <= server
    assert not base & server


def test_the_base_install_has_no_service_dependency(base_venv):
    probe = base_venv.run(
        "-c",
        "import importlib.util, json, verifier, keys\n"
        "print(json.dumps({'verifier': verifier.__file__, 'missing': [m for m in "
        f"{SERVER_MODULES!r} if importlib.util.find_spec(m) is None]}}))",
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert Path(seen["verifier"]).is_relative_to(base_venv.root)
    assert seen["missing"] == list(SERVER_MODULES)

    imported = base_venv.run("-c", "import litestar")
    assert imported.returncode == 1
    assert "ModuleNotFoundError: No module named 'litestar'" in imported.stderr


def test_the_registry_command_says_it_needs_the_server_extra(base_venv):
    result = base_venv.run(base_venv.root / "bin" / "registry", "--version", python=False)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "pip install 'consent-registry[server]'" in result.stderr
    assert "python -m verifier" in result.stderr
    assert "Traceback" not in result.stderr


async def test_the_base_install_verifies_what_the_service_publishes(
    base_venv, world, signed, settings, tmp_path
):
    response, token, consent = signed
    http = world.http
    claims = json.loads(_payload(token["token"]))
    status_path = urlsplit(claims["status"]["status_list"]["uri"]).path
    # A checkpoint of the log as it now is (consent, grant, token, signing), and its newest
    # event: what a holder of that event (its hash) and a monitor of the log have.
    signing = await http.post("/v1/audit/checkpoint", headers=world.admin)
    assert signing.status_code in {200, 201}, signing.text
    checkpoint_note = (await http.get("/v1/audit/checkpoint.note")).content
    tree_size = int(checkpoint_note.decode().splitlines()[1])
    assert tree_size > 1
    listed = await http.get(f"/v1/audit/events?after={tree_size - 1}&limit=1", headers=world.admin)
    (event,) = listed.json()["events"]
    assert event["seq"] == tree_size
    inclusion = await http.get(
        f"/v1/audit/proofs/inclusion?index={tree_size - 1}&tree_size={tree_size}"
    )
    assert inclusion.status_code == 200, inclusion.text
    published = {
        "anchor.pem": (await http.get("/v1/keys/c2pa/anchor")).content,
        "jwks.json": (await http.get("/.well-known/jwks.json")).content,
        "registry-keys.jwt": (await http.get("/.well-known/registry-keys.json")).content,
        "status.jwt": (await http.get(status_path)).content,
        "output.jpg": response.content,
        "tampered.jpg": flip_pixel_byte(response.content),
        "token.jwt": token["token"].encode(),
        "receipt.jwt": consent["receipt"].encode(),
        "checkpoint.note": checkpoint_note,
        "inclusion.json": inclusion.content,
    }
    for name, content in published.items():
        (tmp_path / name).write_bytes(content)

    def verify(image: str) -> subprocess.CompletedProcess[str]:
        return base_venv.run(
            "-m",
            "verifier",
            "verify",
            tmp_path / image,
            "--trust",
            tmp_path / "anchor.pem",
            "--jwks",
            tmp_path / "jwks.json",
            "--assertion",
            response.headers["provenance-assertion"],
            "--status-list",
            tmp_path / "status.jwt",
            "--json",
        )

    good, bad = verify("output.jpg"), verify("tampered.jpg")
    checked = base_venv.run(
        "-m",
        "verifier",
        "token",
        tmp_path / "token.jwt",
        "--jwks",
        tmp_path / "jwks.json",
        "--status-list",
        tmp_path / "status.jwt",
        "--audience",
        world.generator.client_id,
        "--issuer",
        settings.public_issuer,
        "--use",
        "reference.generate",
        "--json",
    )
    receipt = base_venv.run(
        "-m",
        "verifier",
        "signed",
        tmp_path / "receipt.jwt",
        "--keys",
        tmp_path / "registry-keys.jwt",
        "--typ",
        "consent-receipt+jwt",
        "--json",
    )
    included = base_venv.run(
        "-m",
        "verifier",
        "audit",
        "inclusion",
        "--checkpoint",
        tmp_path / "checkpoint.note",
        "--proof",
        tmp_path / "inclusion.json",
        "--leaf",
        event["hash"],
        "--index",
        str(tree_size - 1),
        "--keys",
        tmp_path / "registry-keys.jwt",
        "--json",
    )

    assert good.returncode == 0, good.stdout + good.stderr
    outcome = json.loads(good.stdout)
    assert (outcome["verdict"], outcome["reasons"]) == ("verified", [])
    assert outcome["report"]["state"] == "trusted"
    assert outcome["assertion"]["status"] == "valid"
    assert [(c["jti"], c["status"]) for c in outcome["consents"]] == [(token["jti"], "valid")]
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert json.loads(bad.stdout)["report"]["state"] == "invalid"
    assert checked.returncode == 0, checked.stdout + checked.stderr
    body = json.loads(checked.stdout)
    assert (body["result"], body["claims"]["jti"]) == ("valid", token["jti"])
    assert receipt.returncode == 0, receipt.stdout + receipt.stderr
    body = json.loads(receipt.stdout)
    assert (body["result"], body["typ"], body["period_checked"]) == (
        "valid",
        "consent-receipt+jwt",
        True,
    )
    assert body["claims"]["consent_id"] == consent["consent_id"]
    assert included.returncode == 0, included.stdout + included.stderr
    body = json.loads(included.stdout)
    assert (body["result"], body["leaf_index"]) == ("verified", tree_size - 1)
    assert body["checkpoint"]["tree_size"] == tree_size


async def test_the_base_install_reads_the_watermark_of_a_stripped_output(
    base_venv, sign_output, database_url
):
    from tests.provenance_http.test_watermark import photo, stored_key

    response = await sign_output(photo("coffee.png"), tokens=[], generation_id="gen-offline")
    assert response.status_code == 200, response.text
    key = await stored_key(database_url, response.headers["provenance-output-id"])
    stripped = base_venv.workdir / "stripped.jpg"
    stripped.write_bytes(provenance_fixtures.reencode(response.content, quality=75))

    result = base_venv.run("-m", "verifier", "watermark", stripped, "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["key"] == key


def test_every_verifier_module_imports_with_only_what_its_lock_installs():
    """Fast, and without the network: in this (full) environment, with every distribution
    that requirements-verifier.lock does not pin made unimportable, each module of
    ``verifier`` and ``keys`` imports (optional imports fall back, as in the base install),
    and none of the service's is loaded."""
    allowed = sorted(locked(VERIFIER_LOCK.read_text()))
    result = subprocess.run(
        [sys.executable, "-c", _BASE_ONLY_PROBE, json.dumps(allowed)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=_RUN_BUDGET,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert not {*SERVER_MODULES, "registry", "moderation"} & set(loaded)
    assert {"verifier", "keys", "c2pa", "PIL", "imagehash", "msgspec"} <= set(loaded)


# Refuses, at import, every top-level module that is neither the standard library, ours, nor
# from a distribution named in argv[1]; then imports every module of verifier and keys.
_BASE_ONLY_PROBE = """
import importlib, importlib.abc, json, pkgutil, re, sys
from importlib import metadata

allowed = set(json.loads(sys.argv[1]))
owners = metadata.packages_distributions()

class BaseInstallOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        # _sysconfigdata_*: the interpreter's own build variables, which sysconfig imports
        # (SciPy asks for one at import); not named in stdlib_module_names.
        if top in sys.stdlib_module_names or top in {"verifier", "keys"}:
            return None
        if top.startswith("_sysconfigdata_"):
            return None
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(top, ())}
        if dists & allowed:
            return None
        raise ModuleNotFoundError(f"No module named {name!r} in the base install", name=name)

sys.meta_path.insert(0, BaseInstallOnly())
for root in ("verifier", "keys"):
    package = importlib.import_module(root)
    for info in pkgutil.walk_packages(package.__path__, root + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
"""


def _payload(token: str) -> str:
    import base64

    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
