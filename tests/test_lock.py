"""requirements.lock must install what pyproject.toml asks for, every package pinned and hashed.

`make install` installs the lock with ``--require-hashes --no-deps``, so a requirement added to
pyproject.toml but not locked would be missing at run time, and one whose bounds moved would
be tested at a version pyproject no longer allows. `make lock` brings them back in line.

requirements-verifier.lock is the base install alone (the offline verifier, without the
``server`` extra): it must lock every base requirement, at the versions of requirements.lock
(the ones the tests ran), and none of the service's.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def locked(text: str) -> dict[str, str]:
    """Package name -> pinned version, for every entry of a hashed lock."""
    pins: dict[str, str] = {}
    entries = re.split(r"\n(?=\S)", text)
    for entry in entries:
        if entry.startswith("#") or not entry.strip():
            continue
        match = _PIN.match(entry)
        if match is None:
            raise AssertionError(f"requirements.lock: not a pinned requirement: {entry[:60]!r}")
        if "--hash=sha256:" not in entry:
            raise AssertionError(f"requirements.lock: {match.group(1)} has no hash")
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def required(pyproject: dict[str, object], *, base_only: bool = False) -> list[Requirement]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    specs = list(project["dependencies"])
    if not base_only:
        for extra in project.get("optional-dependencies", {}).values():
            specs += extra
        for group in pyproject.get("dependency-groups", {}).values():  # type: ignore[union-attr]
            specs += group
    return [Requirement(spec) for spec in specs]


def disagreements(
    pyproject: dict[str, object], lock_text: str, *, base_only: bool = False
) -> list[str]:
    pins = locked(lock_text)
    problems = []
    for requirement in required(pyproject, base_only=base_only):
        name = canonicalize_name(requirement.name)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        if name not in pins:
            problems.append(f"{requirement.name} is required by pyproject.toml but not locked")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(
                f"{requirement.name}: locked {pins[name]} is outside pyproject.toml's "
                f"'{requirement.specifier}'"
            )
    return problems


def test_lock_satisfies_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    problems = disagreements(pyproject, (ROOT / "requirements.lock").read_text())
    assert not problems, "run `make lock`: " + "; ".join(problems)


def test_verifier_lock_satisfies_the_base_requirements() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lock_text = (ROOT / "requirements-verifier.lock").read_text()
    problems = disagreements(pyproject, lock_text, base_only=True)
    assert not problems, "run `make lock`: " + "; ".join(problems)


def test_verifier_lock_pins_the_versions_of_the_full_lock() -> None:
    full = locked((ROOT / "requirements.lock").read_text())
    verifier = locked((ROOT / "requirements-verifier.lock").read_text())
    assert verifier
    differ = {
        name: (pin, full.get(name)) for name, pin in verifier.items() if pin != full.get(name)
    }
    assert not differ, f"run `make lock`: requirements-verifier.lock differs: {differ}"


def test_verifier_lock_holds_none_of_the_service_requirements() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    service = {canonicalize_name(Requirement(spec).name) for spec in extras["server"]}
    assert {"litestar", "asyncpg", "pgserver", "uvicorn"} <= service
    verifier = locked((ROOT / "requirements-verifier.lock").read_text())
    assert not service & verifier.keys()


def test_a_requirement_missing_from_the_lock_is_named() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pyproject["project"]["dependencies"].append("left-pad>=1")  # type: ignore[index]
    problems = disagreements(pyproject, (ROOT / "requirements.lock").read_text())
    assert problems == ["left-pad is required by pyproject.toml but not locked"]


def test_a_bound_the_lock_does_not_meet_is_named() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = pyproject["project"]["dependencies"]  # type: ignore[index]
    deps[:] = [d for d in deps if not d.startswith("msgspec")] + ["msgspec>=99"]
    problems = disagreements(pyproject, (ROOT / "requirements.lock").read_text())
    assert len(problems) == 1
    assert problems[0].startswith("msgspec: locked ")
    assert "'>=99'" in problems[0]


def test_an_unhashed_entry_is_refused() -> None:
    with pytest.raises(AssertionError, match="msgspec has no hash"):
        locked("msgspec==0.23.0\n")
