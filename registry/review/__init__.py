"""The human side of moderation: review queue, appeals, decision history, takedown, KPIs.

- ``queue``: tickets leased to reviewers (claims never collide, leases expire), decisions.
- ``appeals``: a publisher appeals a blocked decision; a different reviewer decides.
- ``reports``: a publisher reports an allowed output after publication; a reviewer decides.
- ``history``: every change of a decision's status, with actor, time and note.
- ``records``: a decision's record for its publisher; a review case for reviewers.
- ``takedown``: what a consent withdrawal affects; signed notices to publisher webhooks,
  and the operator's notices of misuse suspensions to admin webhooks.
- ``stats``/``metrics``: KPIs from the database, and the Prometheus gauges that show them.
- ``repository``: the SQL on review's own tables (appeals, reports, history, takedown);
  decisions and tickets are read and changed through the gate's repository.
"""

from __future__ import annotations

from registry.review.actions import claim, decide
from registry.review.appeals import (
    NO_IMAGE_REASONS,
    Appeal,
    AppealFiled,
    AppealImage,
    appeal_of,
    attach_image,
    file_appeal,
)
from registry.review.errors import (
    AppealExists,
    ConsentEnded,
    ConsentIdInvalid,
    DecisionNotAppealable,
    DecisionNotFound,
    DecisionNotReportable,
    ReviewError,
    TicketClosed,
    TicketNotFound,
    TicketNotHeld,
    WebhookClientInvalid,
    WebhookHostNotAllowed,
    WebhookUrlInvalid,
)
from registry.review.history import Explained, HistoryEntry, decision_row, history_of
from registry.review.metrics import publish_stats
from registry.review.queue import (
    Claimed,
    Outcome,
    Ticket,
    TicketDecided,
    TicketStatus,
    claim_next,
    decide_ticket,
    get_ticket,
    list_tickets,
    review_scope,
)
from registry.review.records import (
    ConsentNow,
    DecisionRecord,
    ReviewCase,
    decision_record,
    review_case,
)
from registry.review.reports import Report, ReportCategory, ReportFiled, file_report
from registry.review.stats import DEFAULT_WINDOW_DAYS, Stats, compute_stats
from registry.review.takedown import (
    MISUSE_TYP,
    TAKEDOWN_TYP,
    AffectedView,
    Backoff,
    Delivery,
    NoticeSender,
    SendResult,
    TakedownWorker,
    Webhook,
    affected,
    affected_decisions,
    list_deliveries,
    misuse_notices,
    register_webhook,
)
from registry.review.webhooks import NOTICE_MEDIA_TYPE, WebhookSender

__all__ = [
    "DEFAULT_WINDOW_DAYS",
    "MISUSE_TYP",
    "NOTICE_MEDIA_TYPE",
    "NO_IMAGE_REASONS",
    "TAKEDOWN_TYP",
    "AffectedView",
    "Appeal",
    "AppealExists",
    "AppealFiled",
    "AppealImage",
    "Backoff",
    "Claimed",
    "ConsentEnded",
    "ConsentIdInvalid",
    "ConsentNow",
    "DecisionNotAppealable",
    "DecisionNotFound",
    "DecisionNotReportable",
    "DecisionRecord",
    "Delivery",
    "Explained",
    "HistoryEntry",
    "NoticeSender",
    "Outcome",
    "Report",
    "ReportCategory",
    "ReportFiled",
    "ReviewCase",
    "ReviewError",
    "SendResult",
    "Stats",
    "TakedownWorker",
    "Ticket",
    "TicketClosed",
    "TicketDecided",
    "TicketNotFound",
    "TicketNotHeld",
    "TicketStatus",
    "Webhook",
    "WebhookClientInvalid",
    "WebhookHostNotAllowed",
    "WebhookSender",
    "WebhookUrlInvalid",
    "affected",
    "affected_decisions",
    "appeal_of",
    "attach_image",
    "claim",
    "claim_next",
    "compute_stats",
    "decide",
    "decide_ticket",
    "decision_record",
    "decision_row",
    "file_appeal",
    "file_report",
    "get_ticket",
    "history_of",
    "list_deliveries",
    "list_tickets",
    "misuse_notices",
    "publish_stats",
    "register_webhook",
    "review_case",
    "review_scope",
]
