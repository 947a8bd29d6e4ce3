"""Prometheus gauges for the moderation KPIs, set from :class:`registry.review.stats.Stats`.

Gauges, not counters: the figures are read from the database, which every service process
shares, so each process reports the same totals and a scrape of any one of them is right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Gauge

if TYPE_CHECKING:
    from registry.review.stats import Stats

__all__ = ["publish_stats"]

_DECISIONS = Gauge(
    "registry_moderation_decisions", "Gate decisions by the gate's outcome", ["status"]
)
_CURRENT = Gauge(
    "registry_moderation_decisions_current",
    "Gate decisions by their status after reviews and appeals",
    ["status"],
)
_REASONS = Gauge(
    "registry_moderation_decision_reasons", "Gate decisions carrying each reason", ["reason"]
)
_REVIEW_LATENCY = Gauge(
    "registry_review_latency_seconds",
    "Time from a review ticket's opening to its decision",
    ["quantile"],
)
_OPEN = Gauge("registry_review_tickets_open", "Review and appeal tickets not yet decided")
_LATE = Gauge(
    "registry_review_tickets_past_deadline", "Undecided tickets whose deadline has passed"
)
_OVERTURN = Gauge(
    "registry_appeal_overturn_ratio", "Decided appeals that changed the outcome (0..1)"
)
_CLASSIFIER_CALLS = Gauge(
    "registry_classifier_calls", "Classifier calls recorded in evidence", ["classifier"]
)
_CLASSIFIER_ERRORS = Gauge(
    "registry_classifier_errors", "Failed classifier calls by error", ["classifier", "error"]
)
_CLASSIFIER_LATENCY = Gauge(
    "registry_classifier_latency_ms", "Classifier latency", ["classifier", "quantile"]
)


def publish_stats(stats: Stats) -> None:
    """Replace every gauge's values with ``stats`` (labels that disappeared go too)."""
    for gauge in (
        _DECISIONS,
        _CURRENT,
        _REASONS,
        _REVIEW_LATENCY,
        _CLASSIFIER_CALLS,
        _CLASSIFIER_ERRORS,
        _CLASSIFIER_LATENCY,
    ):
        gauge.clear()
    for status, n in stats.by_status.items():
        _DECISIONS.labels(status=status).set(n)
    for status, n in stats.by_current_status.items():
        _CURRENT.labels(status=status).set(n)
    for reason, n in stats.by_reason.items():
        _REASONS.labels(reason=reason).set(n)
    latency = stats.review_latency_seconds
    for quantile, value in (("0.5", latency.p50), ("0.95", latency.p95)):
        if value is not None:
            _REVIEW_LATENCY.labels(quantile=quantile).set(value)
    _OPEN.set(stats.open_tickets)
    _LATE.set(stats.open_tickets_past_deadline)
    _OVERTURN.set(stats.appeals.overturn_rate or 0.0)
    _publish_classifiers(stats)


def _publish_classifiers(stats: Stats) -> None:
    for c in stats.classifiers:
        _CLASSIFIER_CALLS.labels(classifier=c.classifier).set(c.calls)
        for error, n in c.errors.items():
            _CLASSIFIER_ERRORS.labels(classifier=c.classifier, error=error).set(n)
        for quantile, value in (("0.5", c.latency_ms.p50), ("0.95", c.latency_ms.p95)):
            if value is not None:
                _CLASSIFIER_LATENCY.labels(classifier=c.classifier, quantile=quantile).set(value)
