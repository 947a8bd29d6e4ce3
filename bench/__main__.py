"""`make bench`: every benchmark table. Each row puts our code next to the raw library."""

from __future__ import annotations

import importlib
import platform
import sys

from bench.harness import print_table

SECTIONS = [
    ("Foundation (issue 2)", "bench.foundation"),
    ("Consent (issue 3)", "bench.consent"),
    ("Provenance (issue 4)", "bench.provenance"),
    ("Publish gate (issue 5)", "bench.gate"),
    ("Hash lists (issue 5)", "bench.bench_hashlists"),
]


def main() -> int:
    only = set(sys.argv[1:])
    print(
        f"# Benchmarks ({platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()})"
    )
    for title, module in SECTIONS:
        if only and module.rsplit(".", 1)[-1] not in only:
            continue
        rows = importlib.import_module(module).run()
        print_table(title, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
