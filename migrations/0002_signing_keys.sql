-- The registry's own signing keys: published (next, active, retiring) and retired.
--
-- A key is 'next' (published, not yet signing) for a whole rotation period, then 'active'
-- (the only key that signs), then 'retiring' (published until every token it signed has
-- expired), then 'retired'. Private keys are AES-256-GCM ciphertext under the master key with
-- the kid as associated data; once a key stops signing its ciphertext is erased.

CREATE TABLE signing_keys (
    kid             text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_.-]{1,128}$'),
    alg             text NOT NULL CHECK (alg IN ('EdDSA', 'ES256')),
    public_jwk      jsonb NOT NULL CHECK (jsonb_typeof(public_jwk) = 'object'),
    private_key_enc bytea,
    state           text NOT NULL CHECK (state IN ('next', 'active', 'retiring', 'retired')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz,
    retire_after    timestamptz,
    retired_at      timestamptz,
    CHECK (state IN ('retiring', 'retired') OR private_key_enc IS NOT NULL),
    CHECK (state NOT IN ('active', 'retiring') OR activated_at IS NOT NULL),
    CHECK (state <> 'retiring' OR retire_after IS NOT NULL),
    CHECK (state <> 'retired' OR retired_at IS NOT NULL)
);

-- At most one key signs and at most one waits to sign.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys ((true)) WHERE state = 'next';
