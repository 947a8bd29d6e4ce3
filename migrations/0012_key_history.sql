-- Key history: when each signing key stopped signing, so its whole signing period can be
-- published (GET /.well-known/registry-keys.json) and an artifact it signed years ago still
-- verifies with the iat inside that period.
--
-- A key signs from activated_at to signs_until: the rotation that retired it, plus the time
-- the other processes of the service may take to notice (two key refresh intervals), during
-- which they may still sign with it. NULL while the key is active (or has never signed).
-- Rotation erases a key's private part but never its row: the service's role has no DELETE
-- on signing_keys (migration 0010), so a public key that signed stays in the history.

ALTER TABLE signing_keys ADD COLUMN signs_until timestamptz;

-- Keys rotated before this migration: their successor was activated in the same transaction
-- (the same now()), so that is when they stopped; add the default margin of two 5-second
-- refresh intervals. A key with no successor (never seen) keeps the latest bound we know.
UPDATE signing_keys k
SET signs_until = coalesce(
    (SELECT min(s.activated_at) FROM signing_keys s WHERE s.activated_at > k.activated_at)
        + interval '10 seconds',
    k.retire_after,
    k.retired_at
)
WHERE k.state IN ('retiring', 'retired');

ALTER TABLE signing_keys
    ADD CONSTRAINT signing_keys_stopped_signing
        CHECK (state NOT IN ('retiring', 'retired') OR signs_until IS NOT NULL),
    ADD CONSTRAINT signing_keys_signing_period
        CHECK (signs_until IS NULL OR (activated_at IS NOT NULL AND signs_until >= activated_at));
