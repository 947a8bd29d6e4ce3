"""The code blocks a reader of README.md and docs/*.md is told to paste, in reading order.

A fenced block in ``sh``, ``bash`` or ``python`` is something to run. An HTML comment just
before it (invisible on the rendered page) may say more:

- ``<!-- docs-test: save-as NAME -->``: the block is a file the reader saves (a script);
- ``<!-- docs-test: expect TEXT -->`` (repeatable): the block's output contains TEXT, the
  outcome the prose claims;
- ``<!-- docs-test: may-fail -->``: a command in it is expected to exit non-zero (the block
  shows an exit status);
- ``<!-- docs-test: skip REASON -->``: not run here, and why (it starts a second copy of the
  service, or needs a machine the test does not have).

``<!-- docs-test: include docs/FILE.md -->`` on a line of its own splices that guide's blocks
in at that point: the guides continue the README's walkthrough where it links to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

RUNNABLE = {"sh", "bash", "python"}
_DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(?P<verb>[a-z-]+)\s*(?P<arg>.*?)\s*-->")
_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^`]*)$")


@dataclass
class Block:
    source: str
    line: int
    language: str
    code: str
    save_as: str | None = None
    expect: list[str] = field(default_factory=list)
    may_fail: bool = False
    skip: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def blocks(path: Path, root: Path, *, seen: set[Path] | None = None) -> list[Block]:
    """The runnable blocks of ``path``, guides spliced in where it includes them."""
    seen = set() if seen is None else seen
    if path in seen:
        raise ValueError(f"{path} is included twice")
    seen.add(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    name = str(path.relative_to(root))
    found: list[Block] = []
    pending: list[tuple[str, str]] = []
    index = 0
    while index < len(lines):
        directives = [(m["verb"], m["arg"]) for m in _DIRECTIVE.finditer(lines[index])]
        for verb, arg in directives:
            if verb == "include":
                found += blocks(root / arg, root, seen=seen)
            else:
                pending.append((verb, arg))
        block, index = _fenced(lines, index, name)
        if block is not None:
            for verb, arg in pending:
                _apply(block, verb, arg)
            pending = []
            if block.language in RUNNABLE or block.skip is not None:
                found.append(block)
        elif pending and not directives and lines[index - 1].strip():
            raise ValueError(f"{name}:{index}: a docs-test directive not before a block")
    return found


def _fenced(lines: list[str], index: int, name: str) -> tuple[Block | None, int]:
    """The fenced block starting at ``index`` (if one does) and the index after it."""
    fence = _FENCE.match(lines[index])
    if fence is None:
        return None, index + 1
    end = index + 1
    while not lines[end].startswith(fence["indent"] + "```"):
        end += 1
    body = "\n".join(text.removeprefix(fence["indent"]) for text in lines[index + 1 : end])
    language = fence["info"].strip().split(" ")[0]
    return Block(source=name, line=index + 1, language=language, code=body + "\n"), end + 1


def _apply(block: Block, verb: str, arg: str) -> None:
    if verb == "save-as":
        block.save_as = arg
    elif verb == "expect":
        block.expect.append(arg)
    elif verb == "may-fail":
        block.may_fail = True
    elif verb == "skip":
        if not arg:
            raise ValueError(f"{block.where}: skip needs a reason")
        block.skip = arg
    else:
        raise ValueError(f"{block.where}: unknown docs-test directive {verb!r}")
