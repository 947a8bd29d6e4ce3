"""`make bench`: every benchmark table, each row next to its floor measured in the same run.

``python -m bench [section ...]`` runs the named sections only (foundation, consent,
provenance, gate, workers, bench_hashlists, robustness, watermark). HTTP rows need wrk;
without it they are skipped with a message and the in-process rows still run. Durations:
see ``bench.load``.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time

from bench.context import Bench
from bench.load import INSTALL_HINT

SECTIONS = [
    "foundation",
    "consent",
    "provenance",
    "gate",
    "workers",
    "bench_hashlists",
    "robustness",
    "watermark",
]


def main() -> int:
    only = sys.argv[1:]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        print(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
        return 2
    started = time.monotonic()
    with Bench() as bench:
        print(
            f"# Benchmarks ({platform.python_implementation()} {platform.python_version()}, "
            f"{platform.machine()}, {os.cpu_count()} CPUs)"
        )
        if not bench.http:
            print(f"\nHTTP rows skipped: {INSTALL_HINT}.")
        for name in SECTIONS:
            if only and name not in only:
                continue
            for table in importlib.import_module(f"bench.{name}").run(bench):
                table.show(bench.settings)
                sys.stdout.flush()
    print(f"\n(total {time.monotonic() - started:,.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
