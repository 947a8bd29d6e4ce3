"""What the deployment files say, read as the tools that use them would.

A small Dockerfile reader (instructions, stages, exec and shell forms, ENV, HEALTHCHECK), the
.dockerignore allow-list, compose.yaml with its ``${NAME:-default}`` interpolation, and the
packages setup.py ships. Only the subset these files use is understood; anything else fails
loudly rather than being read wrongly.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from setuptools import find_namespace_packages

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
DEPLOY = ROOT / "deploy"
MAKE_SECRETS = DEPLOY / "make-secrets.sh"
POSTGRES_INIT = DEPLOY / "postgres-init.sh"
SERVER_LOCK = "requirements-server.lock"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int

    def argv(self) -> list[str]:
        """The command of RUN, CMD or ENTRYPOINT: exec form as written, shell form via sh -c."""
        return command(self.args)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def command(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        argv = json.loads(text)
        assert isinstance(argv, list), text
        assert all(isinstance(a, str) for a in argv), text
        return argv
    return ["/bin/sh", "-c", text]


def instructions(text: str) -> list[Instruction]:
    """Instructions in order, continuation lines joined and comment lines dropped, as the
    builder reads them (a comment line inside a continuation is dropped too)."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = joined.partition(" ")
        found.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, "the Dockerfile ends inside a continuation"
    return found


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    found: list[Stage] = []
    for instruction in instructions(path.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            assert not words[0].startswith("--"), "FROM flags are not read here"
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in {1, 3}, instruction
            found.append(Stage(base=words[0], name=name))
        else:
            assert found, f"{instruction.keyword} before the first FROM"
            found[-1].instructions.append(instruction)
    return found


_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand(value: str, env: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: env.get(m[1] or m[2], ""), value)


def env_of(stage: Stage, base: dict[str, str]) -> dict[str, str]:
    """``base`` with the stage's ENV instructions applied in order (``$VAR`` expanded)."""
    env = dict(base)
    for instruction in stage.all("ENV"):
        for word in shlex.split(instruction.args):
            name, equals, value = word.partition("=")
            assert equals, f"ENV {instruction.args!r}: only the NAME=value form is read here"
            env[name] = expand(value, env)
    return env


@dataclass(frozen=True)
class Healthcheck:
    options: dict[str, str]
    argv: list[str]


def healthcheck(stage: Stage) -> Healthcheck | None:
    instruction = stage.last("HEALTHCHECK")
    if instruction is None:
        return None
    options: dict[str, str] = {}
    rest = instruction.args
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option[2:].partition("=")
        options[name] = value
        rest = rest.lstrip()
    keyword, _, cmd = rest.partition(" ")
    assert keyword.upper() == "CMD", instruction
    return Healthcheck(options=options, argv=command(cmd))


def seconds(duration: str) -> float:
    """A Dockerfile or compose duration such as ``15s``, ``1m30s`` or ``500ms``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts, duration
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


@dataclass(frozen=True)
class Copy:
    sources: list[str]
    dest: str
    from_stage: str | None


def copies(stage: Stage) -> list[Copy]:
    found = []
    for instruction in stage.all("COPY"):
        words = shlex.split(instruction.args)
        flags = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        assert set(flags) <= {"from"}, f"COPY flags not read here: {flags}"
        found.append(Copy(sources=words[:-1], dest=words[-1], from_stage=flags.get("from")))
    return found


def dockerignore_allows(path: str) -> bool:
    """Whether the build context keeps ``path``, as the builder decides: each pattern matches
    a path or any folder above it (``*`` within one path segment, ``**`` across them), the
    last matching pattern wins, and ``!`` re-includes."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    keep = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _glob(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            keep = negated
    return keep


def _glob(pattern: str) -> re.Pattern[str]:
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        elif pattern[index] == "[":
            close = pattern.index("]", index)
            out, index = out + pattern[index : close + 1], close + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def shipped_packages() -> set[str]:
    """Top-level packages of the distribution: setup.py's include patterns, found in the
    checkout as setuptools finds them (read from setup.py, so a new pattern counts)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    includes: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == (
            "find_namespace_packages"
        ):
            for keyword in node.keywords:
                if keyword.arg == "include":
                    includes += ast.literal_eval(keyword.value)
    assert includes, "setup.py no longer names its packages with find_namespace_packages"
    found = find_namespace_packages(where=str(ROOT), include=includes)
    return {name.split(".")[0] for name in found}


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def interpolate(value: str, variables: dict[str, str] | None = None) -> str:
    """Compose's ``${NAME}`` and ``${NAME:-default}``, from ``variables`` (none: defaults)."""
    variables = variables or {}

    def one(match: re.Match[str]) -> str:
        name, default = match[1], match[2]
        if variables.get(name):
            return variables[name]
        assert default is not None, f"${{{name}}} has no default"
        return default

    assert "$$" not in value, value
    return _INTERPOLATION.sub(one, value)


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment as a mapping"
    return {name: interpolate(str(value)) for name, value in environment.items()}


def service_secrets(service: dict[str, Any], top: dict[str, Any]) -> dict[str, str]:
    """In-container path -> the secret's file in the repository (relative to it)."""
    mounted = {}
    for entry in service.get("secrets", []):
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        path = target if target.startswith("/") else f"/run/secrets/{target}"
        mounted[path] = top["secrets"][source]["file"]
    return mounted


def make_secrets(directory: Path, *, server: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run deploy/make-secrets.sh into ``directory`` (URLs pointing at ``server``)."""
    env = {"PATH": "/usr/bin:/bin"}
    if server is not None:
        env["REGISTRY_DB_SERVER"] = server
    return subprocess.run(
        ["/bin/sh", str(MAKE_SECRETS), str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
