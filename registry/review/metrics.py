"""Prometheus gauges for the moderation KPIs, set from :class:`registry.review.stats.Stats`.

Gauges, not counters: the figures are read from the database, which every service process
shares, so each process reports the same totals and a scrape of any one of them is right.

With several workers (Prometheus multiprocess mode, set up by ``registry.cli.supervise``)
every worker writes its own copy of these gauges and ``/metrics`` merges them as
``livemostrecent``: the value set last by a live worker, once per label set (they publish
the same stored snapshot, ``registry.core.kpi_snapshot``), and a dead worker's copy goes
with it. Label sets cannot be removed from the shared files, so there a label set that
disappeared from the figures is set to 0 (a count) or NaN (a quantile with no data) instead
of going away as it does with one process.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Final

from prometheus_client import Gauge

from registry.gate.misuse import FEATURES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from registry.review.stats import Stats

__all__ = ["publish_stats"]

# The same figures in every process, so the most recent value of a live one is the answer.
_MODE: Final = "livemostrecent"
_DECISIONS = Gauge(
    "registry_moderation_decisions",
    "Gate decisions by the gate's outcome",
    ["status"],
    multiprocess_mode=_MODE,
)
_CURRENT = Gauge(
    "registry_moderation_decisions_current",
    "Gate decisions by their status after reviews and appeals",
    ["status"],
    multiprocess_mode=_MODE,
)
_REASONS = Gauge(
    "registry_moderation_decision_reasons",
    "Gate decisions carrying each reason",
    ["reason"],
    multiprocess_mode=_MODE,
)
_REVIEW_LATENCY = Gauge(
    "registry_review_latency_seconds",
    "Time from a review ticket's opening to its decision",
    ["quantile"],
    multiprocess_mode=_MODE,
)
_OPEN = Gauge(
    "registry_review_tickets_open",
    "Review and appeal tickets not yet decided",
    multiprocess_mode=_MODE,
)
_LATE = Gauge(
    "registry_review_tickets_past_deadline",
    "Undecided tickets whose deadline has passed",
    multiprocess_mode=_MODE,
)
_OVERTURN = Gauge(
    "registry_appeal_overturn_ratio",
    "Decided appeals that changed the outcome (0..1)",
    multiprocess_mode=_MODE,
)
_CLASSIFIER_CALLS = Gauge(
    "registry_classifier_calls",
    "Classifier calls recorded in evidence",
    ["classifier"],
    multiprocess_mode=_MODE,
)
_CLASSIFIER_ERRORS = Gauge(
    "registry_classifier_errors",
    "Failed classifier calls by error",
    ["classifier", "error"],
    multiprocess_mode=_MODE,
)
_CLASSIFIER_LATENCY = Gauge(
    "registry_classifier_latency_ms",
    "Classifier latency",
    ["classifier", "quantile"],
    multiprocess_mode=_MODE,
)
_REPEAT_USERS = Gauge(
    "registry_recidivism_end_users",
    "End users with blocked decisions in the last 30 days: any (kind=blocked), two or more "
    "(kind=repeat)",
    ["kind"],
    multiprocess_mode=_MODE,
)
_REPEAT_BLOCKS = Gauge(
    "registry_recidivism_repeat_blocks",
    "Blocked decisions of repeat end users beyond each one's first, last 30 days",
    multiprocess_mode=_MODE,
)
_CLIENT_BLOCKED = Gauge(
    "registry_recidivism_client_blocked",
    "Blocked decisions per client (the 20 most blocked), last 30 days",
    ["client_id"],
    multiprocess_mode=_MODE,
)
_FALSE_POSITIVE = Gauge(
    "registry_policy_false_positive_ratio",
    "Decided appeals that overturned a block, per policy version, last 30 days (0..1)",
    ["policy_version"],
    multiprocess_mode=_MODE,
)
_FALSE_NEGATIVE = Gauge(
    "registry_policy_false_negative_ratio",
    "Gate-allowed publish decisions a reviewer blocked after a report, per policy version, "
    "last 30 days (0..1)",
    ["policy_version"],
    multiprocess_mode=_MODE,
)
_SUSPENDED = Gauge(
    "registry_misuse_suspensions_active",
    "Clients and models suspended by a stop condition of the policy, in force now",
    ["subject_kind"],
    multiprocess_mode=_MODE,
)
_PAUSED = Gauge(
    "registry_feature_paused",
    "1 for each feature an operator paused (sign, publish, prompt_check), else 0",
    ["feature"],
    multiprocess_mode=_MODE,
)
_QUANTILES = (_REVIEW_LATENCY, _CLASSIFIER_LATENCY, _FALSE_POSITIVE, _FALSE_NEGATIVE)

# Multiprocess mode only: every label set this process ever set, by gauge.
_published: dict[Gauge, set[tuple[str, ...]]] = {}


def _multiprocess() -> bool:
    # prometheus_client's own test, made when it was imported (it sets this name from the
    # deprecated lower-case one, when that was used, as it makes its first value).
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


def publish_stats(stats: Stats) -> None:
    """Replace every gauge's values with ``stats`` (labels that disappeared go too, or read
    0 or NaN in multiprocess mode)."""
    latency = stats.review_latency_seconds
    labelled: dict[Gauge, dict[tuple[str, ...], float]] = {
        _DECISIONS: {(s,): n for s, n in stats.by_status.items()},
        _CURRENT: {(s,): n for s, n in stats.by_current_status.items()},
        _REASONS: {(r,): n for r, n in stats.by_reason.items()},
        _REVIEW_LATENCY: {
            (q,): v for q, v in (("0.5", latency.p50), ("0.95", latency.p95)) if v is not None
        },
        _CLASSIFIER_CALLS: {(c.classifier,): c.calls for c in stats.classifiers},
        _CLASSIFIER_ERRORS: {
            (c.classifier, error): n for c in stats.classifiers for error, n in c.errors.items()
        },
        _CLASSIFIER_LATENCY: {
            (c.classifier, q): v
            for c in stats.classifiers
            for q, v in (("0.5", c.latency_ms.p50), ("0.95", c.latency_ms.p95))
            if v is not None
        },
    }
    recidivism = stats.recidivism
    if recidivism is not None:
        labelled[_REPEAT_USERS] = {
            ("blocked",): recidivism.blocked_users,
            ("repeat",): recidivism.repeat_users,
        }
        labelled[_CLIENT_BLOCKED] = {(c.client_id,): c.blocked for c in recidivism.clients}
        _REPEAT_BLOCKS.set(recidivism.repeat_blocks)
    labelled[_FALSE_POSITIVE] = {
        (v.policy_version,): v.false_positive_rate
        for v in stats.policy_versions
        if v.false_positive_rate is not None
    }
    labelled[_FALSE_NEGATIVE] = {
        (v.policy_version,): v.false_negative_rate
        for v in stats.policy_versions
        if v.false_negative_rate is not None
    }
    stops = stats.stops
    if stops is not None:
        labelled[_SUSPENDED] = {
            ("client",): stops.suspended_clients,
            ("model",): stops.suspended_models,
        }
        labelled[_PAUSED] = {
            (feature,): 1.0 if feature in stops.paused_features else 0.0 for feature in FEATURES
        }
    multiprocess = _multiprocess()
    for gauge, values in labelled.items():
        _replace(gauge, values, multiprocess=multiprocess)
    _OPEN.set(stats.open_tickets)
    _LATE.set(stats.open_tickets_past_deadline)
    _OVERTURN.set(stats.appeals.overturn_rate or 0.0)


def _replace(gauge: Gauge, values: Mapping[tuple[str, ...], float], *, multiprocess: bool) -> None:
    if not multiprocess:
        gauge.clear()
    else:
        # The files keep every label set ever written: one that disappeared is overwritten,
        # with a fresh timestamp, so it wins over any other process's older value.
        published = _published.setdefault(gauge, set())
        absent = math.nan if gauge in _QUANTILES else 0.0
        for labels in published - values.keys():
            gauge.labels(*labels).set(absent)
        published.update(values)
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
