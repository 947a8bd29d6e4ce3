"""The gate's tables in PostgreSQL: decisions, their consent tokens, review tickets, hash lists.

owns: moderation_decisions, moderation_decision_consents, review_tickets, hash_lists,
hash_list_entries, hash_lists_version, misuse_suspensions, feature_switches.

Only these modules touch those tables; every other domain reads or changes them through the
functions exported here (``tests/registry/test_repositories.py`` holds the whole map).

Review tickets are the gate's, although the review domain works them (claims, leases,
closing): migration 0006 created the table with the decisions it belongs to, a ticket is
opened by the gate in the very transaction that records its ``review`` decision, the gate's
stored answer names it (``DecisionRow.review_ticket``), and every queue read is scoped by its
decision's tenant and ordered with ``FOR UPDATE SKIP LOCKED`` in one statement that must see
both tables. Giving the table to review would split that statement across domains (or need a
copy of the tenant on every ticket); the gate being below review, review simply calls these
functions. What review adds and owns on its own tables (appeals, history, takedown) stays in
``registry.review.repository``.

Functions take a connection: callers own the transaction (and its unit of work).
"""

from __future__ import annotations

from registry.gate.repository.decisions import (
    AffectedDecision,
    DecisionConsent,
    DecisionRow,
    DecisionSummary,
    NewDecision,
    StoredCase,
    clients_using_consent,
    decision_case,
    decision_consents,
    decision_erased,
    decisions_using_consent,
    erase_decisions_of,
    find_decision,
    get_decision,
    hash_from_db,
    hash_to_db,
    insert_decision,
    iter_evidence,
    list_decisions,
    outcomes_since,
    set_current_status,
)
from registry.gate.repository.hashlists import (
    Changes,
    ExportRow,
    HashListView,
    ListRow,
    StagedEntry,
    all_lists,
    disable_hashes,
    entry_details,
    export_batches,
    find_list,
    insert_list,
    list_view,
    lists_version,
    lock_list,
    merge_import,
    read_changes,
    stage_import,
)
from registry.gate.repository.stats import (
    ClassifierCalls,
    ClientRepeats,
    ClientSignals,
    Spread,
    UserRepeats,
    VersionDecisions,
    classifier_calls,
    classifier_errors,
    client_repeats,
    client_signals,
    current_status_counts,
    open_ticket_counts,
    reason_counts,
    review_latency,
    status_counts,
    user_repeats,
    version_decisions,
)
from registry.gate.repository.tickets import (
    TicketKind,
    TicketRow,
    claim_next_ticket,
    close_ticket,
    get_ticket,
    list_tickets,
    open_review_ticket,
    review_ticket_of,
    reviewers_of,
)

__all__ = [
    "AffectedDecision",
    "Changes",
    "ClassifierCalls",
    "ClientRepeats",
    "ClientSignals",
    "DecisionConsent",
    "DecisionRow",
    "DecisionSummary",
    "ExportRow",
    "HashListView",
    "ListRow",
    "NewDecision",
    "Spread",
    "StagedEntry",
    "StoredCase",
    "TicketKind",
    "TicketRow",
    "UserRepeats",
    "VersionDecisions",
    "all_lists",
    "claim_next_ticket",
    "classifier_calls",
    "classifier_errors",
    "client_repeats",
    "client_signals",
    "clients_using_consent",
    "close_ticket",
    "current_status_counts",
    "decision_case",
    "decision_consents",
    "decision_erased",
    "decisions_using_consent",
    "disable_hashes",
    "entry_details",
    "erase_decisions_of",
    "export_batches",
    "find_decision",
    "find_list",
    "get_decision",
    "get_ticket",
    "hash_from_db",
    "hash_to_db",
    "insert_decision",
    "insert_list",
    "iter_evidence",
    "list_decisions",
    "list_tickets",
    "list_view",
    "lists_version",
    "lock_list",
    "merge_import",
    "open_review_ticket",
    "open_ticket_counts",
    "outcomes_since",
    "read_changes",
    "reason_counts",
    "review_latency",
    "review_ticket_of",
    "reviewers_of",
    "set_current_status",
    "stage_import",
    "status_counts",
    "user_repeats",
    "version_decisions",
]
