-- Issue 18: reviewers' notes and appeal statements are free text that may name people. The
-- decision history is append-only, so the texts leave it (and the appeals) for a table an
-- erasure can delete from; the history entry and the appeal keep the text's SHA-256, so what
-- was written stays provable without staying readable.
CREATE TABLE review_texts (
    text_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id text NOT NULL REFERENCES moderation_decisions (decision_id),
    -- Exactly one: the history entry a note belongs to, or the appeal a statement is of.
    entry_id    bigint UNIQUE REFERENCES moderation_decision_history (entry_id),
    appeal_id   text UNIQUE REFERENCES review_appeals (appeal_id),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((entry_id IS NULL) <> (appeal_id IS NULL))
);
CREATE INDEX review_texts_decision ON review_texts (decision_id);
GRANT SELECT, INSERT, DELETE ON review_texts TO registry_service;

ALTER TABLE moderation_decision_history
    ADD COLUMN note_sha256 text CHECK (note_sha256 ~ '^[0-9a-f]{64}$');
ALTER TABLE review_appeals
    ADD COLUMN statement_sha256 text CHECK (statement_sha256 ~ '^[0-9a-f]{64}$');

-- What is written already moves (the owner lifts the append-only trigger for this once).
INSERT INTO review_texts (decision_id, entry_id, body, created_at)
    SELECT decision_id, entry_id, note, at FROM moderation_decision_history
    WHERE note IS NOT NULL;
ALTER TABLE moderation_decision_history
    DISABLE TRIGGER moderation_decision_history_append_only;
UPDATE moderation_decision_history
    SET note_sha256 = encode(sha256(convert_to(note, 'UTF8')), 'hex') WHERE note IS NOT NULL;
ALTER TABLE moderation_decision_history
    ENABLE TRIGGER moderation_decision_history_append_only;
INSERT INTO review_texts (decision_id, appeal_id, body, created_at)
    SELECT decision_id, appeal_id, statement, created_at FROM review_appeals;
UPDATE review_appeals SET statement_sha256 = encode(sha256(convert_to(statement, 'UTF8')), 'hex');

ALTER TABLE moderation_decision_history
    DROP COLUMN note,
    ADD CONSTRAINT moderation_decision_history_note
        CHECK (event = 'appealed' OR note_sha256 IS NOT NULL);
ALTER TABLE review_appeals
    DROP COLUMN statement,
    ALTER COLUMN statement_sha256 SET NOT NULL;
