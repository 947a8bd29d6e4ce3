-- Foundation: API clients and the tamper-evident audit log.

CREATE TABLE api_clients (
    client_id   text PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    tenant      text NOT NULL CHECK (length(tenant) BETWEEN 1 AND 100),
    roles       text[] NOT NULL CHECK (cardinality(roles) > 0),
    -- SHA-256 of the API key: keys are 256-bit random, so a fast hash is enough.
    key_hash    bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

-- Append-only, hash-chained event log. hash = SHA-256(prev_hash || canonical JSON of the event).
CREATE TABLE audit_events (
    seq          bigint PRIMARY KEY CHECK (seq > 0),
    occurred_at  timestamptz NOT NULL,
    actor        text NOT NULL,
    tenant       text,
    action       text NOT NULL,
    subject_type text NOT NULL,
    subject_id   text NOT NULL,
    payload      jsonb NOT NULL,
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL
);
CREATE INDEX audit_events_subject ON audit_events (subject_type, subject_id);

-- One row holding the chain head; appenders lock it, so events are numbered without gaps.
CREATE TABLE audit_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_checkpoints (
    tree_size  bigint PRIMARY KEY,
    head_hash  bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    jws        text NOT NULL
);

-- The service may append but never rewrite history. The trigger holds even for the table's
-- owner; only a superuser who disables triggers can get past it, and `registry audit verify`
-- catches what they change against the signed checkpoints.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_checkpoints FROM PUBLIC;
