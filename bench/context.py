"""The run: its settings, the processes it started (made on first use), and its tables."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

from bench.harness import Postgres, Row, print_table
from bench.load import (
    HttpRow,
    ScalingRow,
    Settings,
    print_http_table,
    print_scaling_table,
    wrk_path,
)
from bench.world import World

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass
class InProcessTable:
    title: str
    rows: Sequence[Row]

    def show(self, _: Settings) -> None:
        print_table(self.title, self.rows)


@dataclass
class HttpTable:
    title: str
    rows: Sequence[HttpRow]

    def show(self, settings: Settings) -> None:
        print_http_table(self.title, self.rows, settings)


@dataclass
class ScalingTable:
    title: str
    rows: Sequence[ScalingRow]
    notes: Sequence[str] = field(default_factory=list)

    def show(self, settings: Settings) -> None:
        print_scaling_table(self.title, self.rows, settings)
        for note in self.notes:
            print(f"\n{note}")


@dataclass
class Skipped:
    title: str
    why: str

    def show(self, _: Settings) -> None:
        print(f"\n## {self.title}\n\nSkipped: {self.why}.")


Table = InProcessTable | HttpTable | ScalingTable | Skipped


class Bench:
    """What the sections share; PostgreSQL and the world start when a row first needs them."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self.http = wrk_path() is not None
        self._stack = contextlib.ExitStack()
        self._postgres: Postgres | None = None
        self._world: World | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    def postgres(self) -> Postgres:
        if self._postgres is None:
            self._postgres = Postgres()
        return self._postgres

    def world(self) -> World:
        if self._world is None:
            self._world = self._stack.enter_context(World(self.postgres()))
        return self._world

    def skipped(self, title: str) -> Skipped:
        return Skipped(title, "wrk is not installed (how to install it: at the top)")
