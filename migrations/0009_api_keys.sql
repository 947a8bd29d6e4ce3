-- API key lifecycle: a client holds any number of keys, each revocable on its own and
-- optionally expiring; a client can be revoked as a whole (api_clients.disabled_at).
--
-- A key authenticates only while it is not revoked, not expired and its client is enabled.
-- Rows are never deleted, so a revoked key stays refused, and `registry clients` or a start
-- with REGISTRY_BOOTSTRAP_ADMIN_KEY does not bring it back.

CREATE TABLE api_keys (
    key_id       text PRIMARY KEY CHECK (key_id ~ '^key_[0-9a-f]{16}$'),
    client_id    text NOT NULL REFERENCES api_clients (client_id) ON DELETE CASCADE,
    -- SHA-256 of the API key, as api_clients.key_hash was: keys are 256-bit random.
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    -- Written in batches, at most once a minute per key: a hint for audits, not a log.
    last_used_at timestamptz,
    CHECK (expires_at IS NULL OR expires_at > created_at),
    CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
CREATE INDEX api_keys_client ON api_keys (client_id, created_at);

-- Every existing client's key becomes its first key, disabled clients' included (their keys
-- stay refused through disabled_at). The id is derived from the client id, so it is the same
-- whichever process migrates; a client had exactly one key until now.
INSERT INTO api_keys (key_id, client_id, key_hash, created_at)
SELECT 'key_' || left(md5(client_id), 16), client_id, key_hash, created_at
FROM api_clients;

-- Kept, not dropped, so service processes still running the previous release keep
-- authenticating existing keys while a rolling deploy replaces them. New clients leave it
-- NULL, and revoking a key clears it where it holds that key's hash, so it never lets a
-- revoked key in. A later migration drops it.
ALTER TABLE api_clients ALTER COLUMN key_hash DROP NOT NULL;
COMMENT ON COLUMN api_clients.key_hash IS
    'deprecated since 0009: read api_keys; kept for processes of the previous release';
