"""Errors of the review domain (queue, appeals, takedown), each with a stable ``code``.

``kind`` says how the shell answers (``registry.core.errors`` maps kinds to HTTP statuses once).
Messages name what was wrong with the request; they never echo notes or statements.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeAlias

from registry.core.errors import RegistryError

Kind: TypeAlias = Literal["invalid", "not_found", "conflict"]


class ReviewError(RegistryError):
    """Base of every error raised by ``registry.review`` (under the shell's one root)."""

    code = "review_error"
    kind: ClassVar[Kind] = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TicketNotFound(ReviewError):
    """No ticket with this id that the reviewer may see."""

    code = "ticket_not_found"
    kind = "not_found"


class TicketNotHeld(ReviewError):
    """The ticket is open, leased to someone else, or the caller's lease ran out."""

    code = "ticket_not_held"
    kind = "conflict"


class TicketClosed(ReviewError):
    """The ticket was decided already."""

    code = "ticket_closed"
    kind = "conflict"


class DecisionNotFound(ReviewError):
    """No gate decision with this id in the caller's tenant."""

    code = "decision_not_found"
    kind = "not_found"


class DecisionNotAppealable(ReviewError):
    """Only a decision that currently blocks publication can be appealed."""

    code = "decision_not_appealable"
    kind = "conflict"


class DecisionNotReportable(ReviewError):
    """Only a published output the gate (or a reviewer) allowed can be reported."""

    code = "decision_not_reportable"
    kind = "conflict"


class ConsentEnded(ReviewError):
    """A reviewer tried to allow an output whose consent was withdrawn, erased or suspended
    (or whose token was revoked) since the gate ran."""

    code = "consent_ended_since_gate"
    kind = "conflict"


class AppealExists(ReviewError):
    """The decision was appealed before; a decision is appealed once."""

    code = "appeal_exists"
    kind = "conflict"


class AppealNotFound(ReviewError):
    """No appeal with this id in the caller's tenant."""

    code = "appeal_not_found"
    kind = "not_found"


class AppealNotOpen(ReviewError):
    """The appeal was decided already: its image would be kept for nothing."""

    code = "appeal_not_open"
    kind = "conflict"


class AppealImageNotKept(ReviewError):
    """The decision's image is never kept for an appeal (a likely minor, a block-distance
    hash match), or the decision has no image (a prompt check)."""

    code = "appeal_image_not_kept"
    kind = "conflict"


class AppealImageMismatch(ReviewError):
    """The image sent is not the one the gate decided on (its SHA-256 differs)."""

    code = "appeal_image_mismatch"


class WebhookUrlInvalid(ReviewError):
    """The webhook URL is not an absolute http(s) URL without credentials or fragment."""

    code = "webhook_url_invalid"


class WebhookHostNotAllowed(ReviewError):
    """The webhook URL's host is not on REGISTRY_WEBHOOK_HOSTS."""

    code = "webhook_host_not_allowed"


class WebhookClientInvalid(ReviewError):
    """Webhooks are registered for existing publisher clients only."""

    code = "webhook_client_invalid"


class ConsentIdInvalid(ReviewError):
    """A consent id is 1-128 letters, digits, '_' or '-'."""

    code = "consent_id_invalid"
