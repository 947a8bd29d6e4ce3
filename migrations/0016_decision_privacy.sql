-- Issue 18: erasure reaches the gate's records.
--
-- What a decision holds about people (the request as sent: prompt, user_id, sources and their
-- hashes, metadata; and the evidence: the registry's hashes of each source, the image's
-- hashes, hash-list matches) is sealed under a data key of its own (a consent_data_keys row,
-- the same table and the same shredding as the consents' keys). Erasing a consent deletes the
-- keys of the decisions made with it, so their sealed copies are unreadable wherever they are;
-- the decision keeps its outcome, reasons, scores, policy version and audit chain.
-- Rows written before this migration keep request and evidence in clear; erasure strips them.
ALTER TABLE moderation_decisions
    ALTER COLUMN request DROP NOT NULL,
    -- {request, evidence}, sealed under data_key_id (aad: the decision id).
    ADD COLUMN sealed bytea,
    ADD COLUMN data_key_id text REFERENCES consent_data_keys (key_id) ON DELETE SET NULL,
    -- Set when a consent the decision relied on was erased: its personal data is gone.
    ADD COLUMN erased_at timestamptz,
    -- A sealed row keeps in clear only the evidence's classifier results (names, scores,
    -- errors, latency: nothing about a person), which the KPIs count in SQL.
    ADD CONSTRAINT moderation_decisions_sealed_or_clear
        CHECK (sealed IS NULL OR (request IS NULL AND evidence ?& ARRAY['classifiers']
                                  AND evidence - 'classifiers' = '{}'::jsonb)),
    ADD CONSTRAINT moderation_decisions_erased
        CHECK (erased_at IS NULL OR (request IS NULL AND image_sha256 IS NULL
                                     AND image_phash IS NULL
                                     AND evidence - 'classifiers' = '{}'::jsonb));
CREATE INDEX moderation_decisions_data_key ON moderation_decisions (data_key_id)
    WHERE data_key_id IS NOT NULL;
-- Erasure tombstones the decision (0010 grants UPDATE of it). Which consents it relied on
-- stays (pseudonymous ids): the takedown worker reads it to notify the publishers.

-- Review images get a data key each (before: the master key), so the image a ticket's
-- decision removes, or an erasure, is gone with its key wherever a copy of the ciphertext
-- remains. The key goes with the row, and the row with the key. Rows from before keep
-- data_key_id NULL and the master key's seal.
ALTER TABLE review_images
    ADD COLUMN data_key_id text REFERENCES consent_data_keys (key_id) ON DELETE CASCADE;
CREATE FUNCTION review_images_forget_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM consent_data_keys WHERE key_id = OLD.data_key_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER review_images_forget_key AFTER DELETE ON review_images
    FOR EACH ROW WHEN (OLD.data_key_id IS NOT NULL)
    EXECUTE FUNCTION review_images_forget_key();

-- Shredding. A deleted data key's bytes stay in the table's file (a dead tuple, then free
-- space that VACUUM does not overwrite) and in the WAL until both are rewritten. Every delete
-- marks shredding due; the service's shredder (registry.consent.shredding) then rewrites the
-- table (VACUUM FULL: a new file; the old one is truncated at commit) and retires the WAL
-- segments that held the key (CHECKPOINT, a segment switch, CHECKPOINT; with
-- wal_recycle = off the old segments are deleted rather than reused).
CREATE TABLE consent_shred_due (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    since     timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION consent_data_keys_shred_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO consent_shred_due DEFAULT VALUES ON CONFLICT (singleton) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER consent_data_keys_shred_due AFTER DELETE ON consent_data_keys
    FOR EACH STATEMENT EXECUTE FUNCTION consent_data_keys_shred_due();
GRANT SELECT, INSERT ON consent_shred_due TO registry_service;
