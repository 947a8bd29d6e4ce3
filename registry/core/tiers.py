"""Access tiers and risk-tied rate limits for API clients. Pure: no I/O.

Every client has a tier, set by an admin: ``public`` (anyone the operator let in, say through
a sign-up), ``verified`` (a caller the operator checked; new clients' default, and the limit
every client had before tiers existed) and ``enterprise`` (a contracted caller). A tier gives
a base limit in requests a minute (REGISTRY_TIER_LIMITS; by default a quarter, one and five
times REGISTRY_RATE_LIMIT_PER_MINUTE).

The limit a client actually gets is the base times a risk factor, which a worker recomputes
from what the gate saw of it over the last hour (:func:`assess`):

- ``blocked_rate_high`` (x0.25) / ``blocked_rate_elevated`` (x0.5): at least
  ``MIN_DECISIONS`` decisions in the window and half / a fifth of them blocked;
- ``hash_matches`` (x0.5): ``HASH_MATCHES`` or more decisions matching a hash list;
- ``new_client`` (x0.5): a ``public`` client younger than ``NEW_CLIENT_DAYS`` (the operator
  vetted the other tiers, so their age says nothing).

Factors multiply, and the limit never drops below one request a minute: a misbehaving
client slows down at once, while the operator decides whether to revoke it. When the
signals go quiet the factor returns to 1 at the next round.
"""

from __future__ import annotations

import math
from typing import Final, Literal, TypeAlias, get_args

import msgspec

__all__ = [
    "DEFAULT_TIER",
    "TIERS",
    "Risk",
    "RiskSignals",
    "Tier",
    "TierLimits",
    "assess",
    "effective_limit",
    "parse_tier_limits",
]

Tier: TypeAlias = Literal["public", "verified", "enterprise"]
TIERS: Final[tuple[Tier, ...]] = get_args(Tier)
DEFAULT_TIER: Final[Tier] = "verified"

WINDOW_MINUTES: Final = 60
"""The window the risk signals are counted over."""
MIN_DECISIONS: Final = 20
"""Fewer decisions than this say nothing about a client's blocked rate."""
HIGH_BLOCKED_RATE: Final = 0.5
ELEVATED_BLOCKED_RATE: Final = 0.2
HASH_MATCHES: Final = 3
NEW_CLIENT_DAYS: Final = 7


class TierLimits(msgspec.Struct, kw_only=True, frozen=True):
    """Base limits, in requests a minute, per tier."""

    public: int
    verified: int
    enterprise: int

    def of(self, tier: Tier) -> int:
        limit: int = getattr(self, tier)
        return limit


def parse_tier_limits(text: str | None, *, per_minute: int) -> TierLimits:
    """``public=N,verified=N,enterprise=N`` (any of them; the others from ``per_minute``).

    ValueError names what is wrong: an unknown tier, a repeated one, a limit below 1.
    """
    limits: dict[str, int] = {
        "public": max(1, per_minute // 4),
        "verified": per_minute,
        "enterprise": per_minute * 5,
    }
    seen: set[str] = set()
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = (p.strip() for p in part.partition("="))
        if name not in TIERS:
            msg = f"{name[:32]!r} is not a tier ({', '.join(TIERS)})"
            raise ValueError(msg)
        if not sep or not value.isdigit() or int(value) < 1:
            msg = f"the limit of {name} must be a whole number of requests a minute, >= 1"
            raise ValueError(msg)
        if name in seen:
            msg = f"{name} is given twice"
            raise ValueError(msg)
        seen.add(name)
        limits[name] = int(value)
    return TierLimits(**limits)


class RiskSignals(msgspec.Struct, kw_only=True, frozen=True):
    """What the gate saw of one client over the window, and how old the client is."""

    age_days: float
    decisions: int = 0
    blocked: int = 0
    hash_matches: int = 0


class Risk(msgspec.Struct, kw_only=True, frozen=True):
    factor: float
    """0 < factor <= 1: the share of its tier's limit the client gets."""
    reasons: tuple[str, ...]


def assess(tier: Tier, signals: RiskSignals) -> Risk:
    """The client's risk factor and why (see the module's docstring for the rules)."""
    factor = 1.0
    reasons: list[str] = []
    if signals.decisions >= MIN_DECISIONS:
        rate = signals.blocked / signals.decisions
        if rate >= HIGH_BLOCKED_RATE:
            factor *= 0.25
            reasons.append("blocked_rate_high")
        elif rate >= ELEVATED_BLOCKED_RATE:
            factor *= 0.5
            reasons.append("blocked_rate_elevated")
    if signals.hash_matches >= HASH_MATCHES:
        factor *= 0.5
        reasons.append("hash_matches")
    if tier == "public" and signals.age_days < NEW_CLIENT_DAYS:
        factor *= 0.5
        reasons.append("new_client")
    return Risk(factor=factor, reasons=tuple(reasons))


def effective_limit(base: int, factor: float) -> int:
    """Requests a minute a client with this base limit and risk factor gets (at least 1)."""
    return max(1, math.floor(base * factor))
