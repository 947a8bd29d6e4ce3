"""The wheel ships every migration, and the service finds them in an installed copy; it ships
the red-team corpus too.

The SQL lives in the top-level ``migrations/`` folder, which pyproject.toml maps to the package
``registry.migrations``; a checkout (editable install) and a wheel must read the same files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What a build needs; caches, the virtualenv and earlier builds stay behind (a stale build/
# would let setuptools ship files the checkout no longer has).
_LEFT_BEHIND = shutil.ignore_patterns(
    ".git",
    ".venv*",
    ".registry",
    "build",
    "dist",
    "tmp",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    "tests",
    "docs",
    "bench",
)
_BUDGET = 120  # seconds for the build; it takes a few


def build_wheel(workdir: Path) -> Path:
    """Build the project's wheel from a clean copy of the checkout under ``workdir``."""
    source = workdir / "source"
    shutil.copytree(ROOT, source, ignore=_LEFT_BEHIND)
    dist = workdir / "dist"
    build = ["wheel", "--quiet", "--disable-pip-version-check", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [sys.executable, "-m", "pip", *build, "-w", str(dist), "."],
        cwd=source,
        check=True,
        timeout=_BUDGET,
    )
    (wheel,) = dist.glob("consent_registry-*.whl")
    return wheel


def test_the_wheel_ships_and_finds_every_migration(tmp_path):
    wheel = build_wheel(tmp_path)
    expected = sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    assert expected, "no migrations in the checkout"

    with zipfile.ZipFile(wheel) as archive:
        shipped = sorted(
            name.removeprefix("registry/migrations/")
            for name in archive.namelist()
            if name.startswith("registry/migrations/") and name.endswith(".sql")
        )
        assert shipped == expected
        unpacked = tmp_path / "site"
        archive.extractall(unpacked)

    # A fresh interpreter with the unpacked wheel first on sys.path, ahead of the editable
    # install's finder, and run from a directory without the checkout in it.
    probe = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(unpacked)!r})\n"
        "from registry.core import db\n"
        "print(json.dumps({'module': db.__file__, 'dir': str(db.MIGRATIONS_DIR),\n"
        "    'found': [f'{m.version}_{m.name}.sql' for m in db.load_migrations()]}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    seen = json.loads(result.stdout)
    assert Path(seen["module"]).is_relative_to(unpacked)
    assert Path(seen["dir"]) == unpacked / "registry" / "migrations"
    assert seen["found"] == expected


def test_the_wheel_ships_the_redteam_corpus(tmp_path):
    # POST /v1/policy/check and `registry policy redteam` read it from the installed package.
    wheel = build_wheel(tmp_path)
    expected = sorted(p.name for p in (ROOT / "moderation" / "redteam_corpus").glob("*.toml"))
    with zipfile.ZipFile(wheel) as archive:
        shipped = sorted(
            name.removeprefix("moderation/redteam_corpus/")
            for name in archive.namelist()
            if name.startswith("moderation/redteam_corpus/")
        )
    assert expected
    assert shipped == expected
