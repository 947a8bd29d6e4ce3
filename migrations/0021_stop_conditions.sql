-- Issue 16, item 5: kill-switches. A stop condition of the policy ([stop_conditions]) that a
-- client or a model trips suspends it: its gate decisions are never `allowed` and it signs
-- nothing until an admin lifts the suspension. An admin can also pause a whole feature.

-- The model a decision's request named, in clear: it is the generator's product name, not
-- personal data, and the stop conditions count decisions per model.
ALTER TABLE moderation_decisions
    ADD COLUMN model text CHECK (length(model) BETWEEN 1 AND 200);
CREATE INDEX moderation_decisions_model ON moderation_decisions (model, created_at)
    WHERE model IS NOT NULL;

CREATE TABLE misuse_suspensions (
    suspension_id  text PRIMARY KEY CHECK (suspension_id ~ '^sus_[A-Za-z0-9_-]{16,64}$'),
    subject_kind   text NOT NULL CHECK (subject_kind IN ('client', 'model')),
    subject        text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    -- The policy's condition that tripped, and the policy it was in.
    condition_id   text NOT NULL CHECK (length(condition_id) BETWEEN 1 AND 48),
    policy_version text NOT NULL,
    -- What the condition saw over its window when it tripped.
    window_minutes integer NOT NULL CHECK (window_minutes > 0),
    decisions      integer NOT NULL CHECK (decisions >= 0),
    blocked        integer NOT NULL CHECK (blocked >= 0),
    hash_matches   integer NOT NULL CHECK (hash_matches >= 0),
    tripped_at     timestamptz NOT NULL DEFAULT now(),
    lifted_at      timestamptz,
    lifted_by      text,
    -- The admin's reason is audited as its SHA-256 only (it may name people).
    lift_reason_sha256 text CHECK (lift_reason_sha256 ~ '^[0-9a-f]{64}$'),
    CHECK ((lifted_at IS NULL) = (lifted_by IS NULL))
);
-- One suspension in force per subject: a second trip while one is active is not a new one.
CREATE UNIQUE INDEX misuse_suspensions_active ON misuse_suspensions (subject_kind, subject)
    WHERE lifted_at IS NULL;
CREATE INDEX misuse_suspensions_recent ON misuse_suspensions (tripped_at DESC);

-- A row per paused feature; resuming deletes it (the audit log keeps the history).
CREATE TABLE feature_switches (
    feature       text PRIMARY KEY CHECK (feature IN ('sign', 'publish', 'prompt_check')),
    paused_at     timestamptz NOT NULL DEFAULT now(),
    paused_by     text NOT NULL,
    reason_sha256 text CHECK (reason_sha256 ~ '^[0-9a-f]{64}$')
);

-- The operator hears of every trip the way publishers hear of withdrawals: a signed notice
-- (typ misuse+jwt) to the webhook of each admin client that has one, through the same
-- delivery outbox and worker. Such a delivery has a suspension and no withdrawal.
ALTER TABLE takedown_deliveries
    ALTER COLUMN event_id DROP NOT NULL,
    ALTER COLUMN consent_id DROP NOT NULL,
    ADD COLUMN suspension_id text REFERENCES misuse_suspensions (suspension_id),
    ADD CONSTRAINT takedown_deliveries_one_subject CHECK (
        (event_id IS NOT NULL AND consent_id IS NOT NULL AND suspension_id IS NULL)
        OR (event_id IS NULL AND consent_id IS NULL AND suspension_id IS NOT NULL)
    ),
    ADD CONSTRAINT takedown_deliveries_one_per_suspension UNIQUE (suspension_id, client_id);

GRANT SELECT, INSERT, UPDATE ON misuse_suspensions TO registry_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON feature_switches TO registry_service;
