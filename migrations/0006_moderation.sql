-- Moderation (issue 5): publish-gate decisions with their evidence, the consent tokens each
-- decision used, review tickets, and the perceptual-hash lists.
--
-- review_tickets is extended by R (review queue, appeals) in a later migration: lease/claim
-- columns, reviewer notes and the appeals table live there, not here.
--
-- No credentials and no image bytes: evidence holds hashes, pseudonymous consent ids and
-- token ids (jti), scores and reason codes, never raw tokens. The request (prompt, user_id)
-- is kept because reviewers must see what the gate saw; it is never copied into the audit log.

CREATE TABLE moderation_decisions (
    decision_id    text PRIMARY KEY CHECK (decision_id ~ '^[A-Za-z0-9_-]{16,64}$'),
    -- Ascending number: stable order for replays and listings.
    seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    generation_id  text NOT NULL CHECK (length(generation_id) BETWEEN 1 AND 200),
    stage          text NOT NULL CHECK (stage IN ('publish', 'prompt')),
    client_id      text NOT NULL REFERENCES api_clients (client_id),
    tenant         text NOT NULL,
    -- SHA-256 of the checked image bytes (NULL at the prompt stage) and its 64-bit pHash
    -- (signed bigint, same bits; NULL as well when the image could not be decoded).
    image_sha256   text CHECK (image_sha256 ~ '^[0-9a-f]{64}$'),
    image_phash    bigint,
    -- SHA-256 of the canonical request: the idempotency key of the prompt stage, where
    -- there is no image to compare.
    request_sha256 text NOT NULL CHECK (request_sha256 ~ '^[0-9a-f]{64}$'),
    -- The gate's outcome, never changed afterwards.
    status         text NOT NULL CHECK (status IN ('allowed', 'review', 'blocked')),
    reasons        text[] NOT NULL,
    scores         jsonb NOT NULL,
    -- moderation.encode_evidence of everything the gate collected.
    evidence       jsonb NOT NULL,
    -- The request as the caller sent it, without image bytes or consent tokens (prompt,
    -- user_id, source assets, metadata, supplied scores): what a reviewer must see. Never
    -- copied into the audit log.
    request        jsonb NOT NULL,
    policy_version text NOT NULL CHECK (policy_version ~ '^[0-9a-f]{64}$'),
    policy_label   text NOT NULL,
    -- The outcome now: equal to status until a review or an appeal changes it.
    current_status text NOT NULL CHECK (current_status IN ('allowed', 'review', 'blocked')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, generation_id, stage)
);
CREATE INDEX moderation_decisions_tenant ON moderation_decisions (tenant, created_at);
CREATE INDEX moderation_decisions_current ON moderation_decisions (current_status, created_at);
CREATE INDEX moderation_decisions_sha256 ON moderation_decisions (image_sha256);

-- The consent tokens a decision relied on (those whose claims could be read), so a
-- withdrawal can list the decisions it affects.
CREATE TABLE moderation_decision_consents (
    decision_id text NOT NULL REFERENCES moderation_decisions (decision_id),
    position    integer NOT NULL CHECK (position >= 0),
    asset_id    text NOT NULL,
    consent_id  text NOT NULL,
    jti         text NOT NULL,
    PRIMARY KEY (decision_id, position)
);
CREATE INDEX moderation_decision_consents_consent ON moderation_decision_consents (consent_id);
CREATE INDEX moderation_decision_consents_jti ON moderation_decision_consents (jti);

-- Work for humans: a `review` decision opens one; R adds claims, leases and appeals.
CREATE TABLE review_tickets (
    ticket_id   text PRIMARY KEY CHECK (ticket_id ~ '^[A-Za-z0-9_-]{16,64}$'),
    decision_id text NOT NULL REFERENCES moderation_decisions (decision_id),
    kind        text NOT NULL CHECK (kind IN ('review', 'appeal')),
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'claimed', 'closed')),
    -- Policy tier name and its rank (0 = most urgent, the order of [review].tiers).
    tier        text NOT NULL CHECK (length(tier) BETWEEN 1 AND 64),
    rank        integer NOT NULL CHECK (rank >= 0),
    deadline    timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX review_tickets_queue ON review_tickets (status, rank, deadline);
CREATE INDEX review_tickets_decision ON review_tickets (decision_id);

-- Perceptual-hash lists. Entries are 64-bit pHashes stored as the signed bigint with the
-- same bits (format_hash(h & (2**64-1)) gives the hex back).
CREATE TABLE hash_lists (
    list_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    action     text NOT NULL CHECK (action IN ('review', 'block')),
    enabled    boolean NOT NULL DEFAULT true,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hash_list_entries (
    entry_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    list_id  bigint NOT NULL REFERENCES hash_lists (list_id),
    hash     bigint NOT NULL,
    label    text NOT NULL CHECK (length(label) BETWEEN 1 AND 512),
    source   text CHECK (length(source) BETWEEN 1 AND 512),
    enabled  boolean NOT NULL DEFAULT true,
    UNIQUE (list_id, hash)
);

-- One row counting changes to the lists. Every service process compares it with the
-- version its in-memory index was built from (one cheap read per gate request) and
-- reloads when it moved; the statement triggers below make every change count, whoever
-- writes it (API, CLI import, psql).
CREATE TABLE hash_lists_version (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL
);
INSERT INTO hash_lists_version (version) VALUES (0);

CREATE FUNCTION hash_lists_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE hash_lists_version SET version = version + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER hash_lists_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hash_lists
    FOR EACH STATEMENT EXECUTE FUNCTION hash_lists_bump();
CREATE TRIGGER hash_list_entries_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hash_list_entries
    FOR EACH STATEMENT EXECUTE FUNCTION hash_lists_bump();
