"""``python -m registry.cli``: the ``registry`` command without its console script."""

from __future__ import annotations

import sys

from registry.cli import main

sys.exit(main())
