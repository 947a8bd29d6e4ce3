-- Issue 16, item 7: the KPIs a policy team steers by, beyond counts of outcomes.
--
-- Recidivism needs to know which decisions were about the same end user. The gate request's
-- user_id is sealed with the rest of the request (0016), so it cannot be grouped by; user_ref
-- is its blind index instead: an HMAC of (tenant, user_id) under the registry's subject-index
-- key, equal for the same user of the same tenant and meaningless elsewhere.
ALTER TABLE moderation_decisions ADD COLUMN user_ref text CHECK (user_ref ~ '^eu1:[0-9a-f]{64}$');
CREATE INDEX moderation_decisions_recidivism
    ON moderation_decisions (created_at, user_ref) WHERE status = 'blocked';

-- False negatives: a publisher reports an output the gate allowed (its users flagged it); a
-- ticket of kind 'report' puts it before a reviewer, and a reviewer who blocks it marks the
-- gate's 'allowed' as a miss of the policy version that made it.
ALTER TABLE review_tickets DROP CONSTRAINT review_tickets_kind_check,
    ADD CONSTRAINT review_tickets_kind_check CHECK (kind IN ('review', 'appeal', 'report'));
ALTER TABLE moderation_decision_history DROP CONSTRAINT moderation_decision_history_event_check,
    ADD CONSTRAINT moderation_decision_history_event_check
        CHECK (event IN ('reviewed', 'appealed', 'appeal_decided', 'reported', 'report_decided')),
    -- Filing a report, like filing an appeal, carries no reviewer's note.
    DROP CONSTRAINT moderation_decision_history_note,
    ADD CONSTRAINT moderation_decision_history_note
        CHECK (event IN ('appealed', 'reported') OR note_sha256 IS NOT NULL);

-- False positives are appeals that overturn, counted per policy version: each appeal keeps the
-- version of the decision it contests, so the review domain counts its own rows.
ALTER TABLE review_appeals ADD COLUMN policy_version text;
UPDATE review_appeals a SET policy_version = d.policy_version
    FROM moderation_decisions d WHERE d.decision_id = a.decision_id;
ALTER TABLE review_appeals ALTER COLUMN policy_version SET NOT NULL;

-- One open report per decision; a report carries a category from a fixed list, no free text
-- (what a user wrote to the publisher stays with the publisher).
CREATE TABLE review_reports (
    report_id   text PRIMARY KEY CHECK (report_id ~ '^[A-Za-z0-9_-]{16,64}$'),
    decision_id text NOT NULL REFERENCES moderation_decisions (decision_id),
    ticket_id   text NOT NULL UNIQUE REFERENCES review_tickets (ticket_id),
    client_id   text NOT NULL REFERENCES api_clients (client_id),
    tenant      text NOT NULL,
    -- The version of the policy that decided, and whether the gate itself allowed the output
    -- (only then is a confirmed report the policy's miss; a reviewer may have allowed it).
    policy_version text NOT NULL,
    gate_allowed boolean NOT NULL,
    category    text NOT NULL CHECK (category IN ('nonconsensual', 'sexual', 'minor', 'violence',
                                                  'hate', 'self_harm', 'other')),
    -- What the reviewer made of it: 'confirmed' (blocked) or 'dismissed' (allowed stays).
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'confirmed', 'dismissed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz,
    CHECK ((status = 'open') = (decided_at IS NULL))
);
CREATE UNIQUE INDEX review_reports_one_open ON review_reports (decision_id) WHERE status = 'open';
CREATE INDEX review_reports_tenant ON review_reports (tenant, created_at);

GRANT SELECT, INSERT, UPDATE ON review_reports TO registry_service;
