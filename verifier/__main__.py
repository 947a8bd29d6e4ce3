"""``python -m verifier``: the offline third-party verifier."""

from __future__ import annotations

from verifier.cli import main

raise SystemExit(main())
