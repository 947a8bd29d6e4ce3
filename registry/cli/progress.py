"""A one-line progress bar on a terminal stream, for ``registry hashes import``."""

from __future__ import annotations

import time
from typing import TextIO

_BAR = 30


class Progress:
    """Bytes read of the file and entries sent, redrawn in place on ``stream``.

    An instance is the ``on_progress`` callback of ``registry.gate.commands.import_file``.
    """

    def __init__(self, stream: TextIO, total_bytes: int) -> None:
        self._stream = stream
        self._total = max(total_bytes, 1)
        self._started = time.monotonic()

    def __call__(self, bytes_read: int, entries: int) -> None:
        fraction = min(bytes_read / self._total, 1.0)
        filled = int(fraction * _BAR)
        elapsed = time.monotonic() - self._started
        self._stream.write(
            f"\r[{'#' * filled}{'.' * (_BAR - filled)}] {fraction:6.1%}"
            f"  {entries:,} entries  {elapsed:5.1f} s"
        )
        self._stream.flush()

    def done(self, message: str) -> None:
        """End the bar's line and print ``message`` under it."""
        self._stream.write(f"\n{message}\n")
        self._stream.flush()
