"""``registry openapi``: write the OpenAPI document, or check that the committed one is current."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from registry.core.settings import Settings


def cmd_openapi(_: Settings | None, args: argparse.Namespace) -> int:
    from registry.app import create_app  # noqa: PLC0415
    from registry.core.settings import Settings  # noqa: PLC0415
    from registry.http import openapi  # noqa: PLC0415

    # The schema depends on routes only, never on deployment settings.
    text = openapi.render(create_app(Settings()))
    target = Path(args.output)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            sys.stderr.write(f"{target} is stale: run `registry openapi` and commit it\n")
            return 1
        sys.stdout.write(f"{target} is current\n")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
    return 0
