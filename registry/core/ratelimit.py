"""Per-caller rate limits: token buckets held in this process."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from registry.core.errors import RateLimited


class RateLimiter:
    """Token buckets per caller, in this process (each service process limits on its own)."""

    def __init__(self, per_minute: int, *, max_callers: int = 50_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(per_minute // 6, 10))
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, caller: str) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.pop(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[caller] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / self.rate))
            msg = "rate limit exceeded for this caller"
            raise RateLimited(msg, retry_after=retry)
        self._buckets[caller] = (tokens - 1.0, now)
        while len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)
