-- Review queue, appeals, decision history and takedown notices (issue 5, items 6-9).
--
-- Reviewer notes and appeal statements are free text that may name people: they live here,
-- never in the audit log (whose events carry ids and codes only).

-- Claims are leases: a claimed ticket whose lease has run out is back in the queue, so a
-- reviewer who walks away never strands work. Appeal tickets name the reviewers who decided
-- the decision before; they may not claim it.
ALTER TABLE review_tickets
    ADD COLUMN claimed_by         text,
    ADD COLUMN claimed_at         timestamptz,
    ADD COLUMN lease_expires_at   timestamptz,
    ADD COLUMN excluded_reviewers text[] NOT NULL DEFAULT '{}',
    ADD COLUMN closed_by          text,
    ADD COLUMN closed_at          timestamptz,
    ADD COLUMN outcome            text CHECK (outcome IN ('allowed', 'blocked')),
    ADD CONSTRAINT review_tickets_claim_complete
        CHECK (status <> 'claimed' OR (claimed_by IS NOT NULL AND lease_expires_at IS NOT NULL)),
    ADD CONSTRAINT review_tickets_close_complete
        CHECK (status <> 'closed' OR (closed_by IS NOT NULL AND closed_at IS NOT NULL
                                      AND outcome IS NOT NULL));
CREATE INDEX review_tickets_claims ON review_tickets (lease_expires_at) WHERE status = 'claimed';

-- One appeal per decision, filed by the publisher on behalf of its user.
CREATE TABLE review_appeals (
    appeal_id   text PRIMARY KEY CHECK (appeal_id ~ '^[A-Za-z0-9_-]{16,64}$'),
    decision_id text NOT NULL UNIQUE REFERENCES moderation_decisions (decision_id),
    ticket_id   text NOT NULL UNIQUE REFERENCES review_tickets (ticket_id),
    client_id   text NOT NULL REFERENCES api_clients (client_id),
    tenant      text NOT NULL,
    statement   text NOT NULL CHECK (length(statement) BETWEEN 1 AND 4000),
    -- The decision's status when the appeal was filed, and what the appeal came to.
    appealed_status text NOT NULL CHECK (appealed_status IN ('allowed', 'review', 'blocked')),
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'upheld', 'overturned')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz,
    CHECK ((status = 'open') = (decided_at IS NULL))
);
CREATE INDEX review_appeals_tenant ON review_appeals (tenant, created_at);

-- Everything that happened to a decision after the gate made it: reviews, appeals filed and
-- decided. The gate's own outcome is moderation_decisions.status; this table is append-only.
CREATE TABLE moderation_decision_history (
    entry_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id text NOT NULL REFERENCES moderation_decisions (decision_id),
    event       text NOT NULL CHECK (event IN ('reviewed', 'appealed', 'appeal_decided')),
    from_status text NOT NULL CHECK (from_status IN ('allowed', 'review', 'blocked')),
    to_status   text NOT NULL CHECK (to_status IN ('allowed', 'review', 'blocked')),
    actor       text NOT NULL,
    ticket_id   text REFERENCES review_tickets (ticket_id),
    appeal_id   text REFERENCES review_appeals (appeal_id),
    -- The reviewer's note; an appeal's own words stay on review_appeals.statement.
    note        text CHECK (length(note) BETWEEN 1 AND 4000),
    at          timestamptz NOT NULL DEFAULT now(),
    CHECK (event = 'appealed' OR note IS NOT NULL)
);
CREATE INDEX moderation_decision_history_decision ON moderation_decision_history (decision_id);

CREATE FUNCTION moderation_decision_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'moderation_decision_history is append-only'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER moderation_decision_history_append_only
    BEFORE UPDATE OR DELETE ON moderation_decision_history
    FOR EACH ROW EXECUTE FUNCTION moderation_decision_history_append_only();

-- Takedown webhooks: one URL per publisher client.
CREATE TABLE takedown_webhooks (
    client_id  text PRIMARY KEY REFERENCES api_clients (client_id),
    url        text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The outbox of withdrawals still to be turned into notices. A trigger fills it in the
-- withdrawing transaction itself, so a committed withdrawal is never missed and the consent
-- domain needs no knowledge of webhooks; the delivery task empties it.
CREATE TABLE takedown_events (
    event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consent_id   text NOT NULL,
    withdrawn_at timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);
CREATE INDEX takedown_events_pending ON takedown_events (event_id) WHERE processed_at IS NULL;

CREATE FUNCTION takedown_on_withdrawal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO takedown_events (consent_id, withdrawn_at)
        VALUES (NEW.consent_id, coalesce(NEW.withdrawn_at, now()));
    RETURN NULL;
END
$$;
CREATE TRIGGER consent_records_takedown AFTER UPDATE OF status ON consent_records
    FOR EACH ROW WHEN (OLD.status = 'active' AND NEW.status = 'withdrawn')
    EXECUTE FUNCTION takedown_on_withdrawal();

-- One signed notice per (withdrawal, publisher client); the same notice (same jti) is sent
-- on every attempt, so a receiver can drop repeats.
CREATE TABLE takedown_deliveries (
    delivery_id     text PRIMARY KEY CHECK (delivery_id ~ '^[A-Za-z0-9_-]{16,64}$'),
    event_id        bigint NOT NULL REFERENCES takedown_events (event_id),
    consent_id      text NOT NULL,
    client_id       text NOT NULL REFERENCES api_clients (client_id),
    url             text NOT NULL,
    -- Compact JWS, typ takedown+jwt, signed with the registry key ring.
    notice          text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (event_id, client_id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX takedown_deliveries_due ON takedown_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX takedown_deliveries_client ON takedown_deliveries (client_id, created_at);

CREATE TABLE takedown_attempts (
    delivery_id text NOT NULL REFERENCES takedown_deliveries (delivery_id),
    attempt     integer NOT NULL CHECK (attempt >= 1),
    started_at  timestamptz NOT NULL,
    duration_ms double precision NOT NULL CHECK (duration_ms >= 0),
    http_status integer,
    -- NULL when the receiver answered 2xx; otherwise a short code (timeout, http_status, ...).
    error       text CHECK (length(error) BETWEEN 1 AND 64),
    PRIMARY KEY (delivery_id, attempt)
);
