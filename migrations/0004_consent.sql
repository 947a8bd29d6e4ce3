-- The consent registry (issue 3): templates, enrolled signers, consent records and their
-- assets, grants, issued tokens and the status lists that revoke them.
--
-- Personal data (subject references, signer keys, asset hashes, the signed form itself) is
-- stored only as AES-256-GCM ciphertext under a per-record data key; the data key is stored
-- wrapped under the master key in consent_data_keys. Erasure deletes the data key row, after
-- which the ciphertext cannot be read by anyone.

CREATE TABLE consent_templates (
    template_id text PRIMARY KEY CHECK (template_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body        text NOT NULL,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    uses        text[] NOT NULL CHECK (cardinality(uses) > 0),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consent_data_keys (
    key_id      text PRIMARY KEY,
    -- master_key.encrypt(data key, aad = key_id)
    wrapped_key bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Secrets of the consent domain, wrapped under the master key (e.g. the blind-index key that
-- lets a tenant find records by subject reference without storing the reference in clear).
CREATE TABLE consent_secrets (
    name       text PRIMARY KEY,
    wrapped    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consent_signers (
    signer_id   text PRIMARY KEY,
    tenant      text NOT NULL,
    -- RFC 7638 thumbprint of the public key: the kid a form names. NULL once erased: it
    -- identifies the person's key wherever else they use it.
    kid         text CHECK (kid ~ '^[A-Za-z0-9_.-]{1,128}$'),
    role        text NOT NULL CHECK (role IN ('subject', 'guardian', 'agent', 'rights_holder')),
    -- {jwk, subject_ref}, sealed under data_key_id; NULL once erased.
    sealed      bytea,
    data_key_id text REFERENCES consent_data_keys (key_id) ON DELETE SET NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    UNIQUE (tenant, kid),
    CHECK (erased_at IS NOT NULL OR (sealed IS NOT NULL AND kid IS NOT NULL))
);

CREATE TABLE consent_records (
    consent_id       text PRIMARY KEY,
    tenant           text NOT NULL,
    created_by       text NOT NULL,
    template_id      text NOT NULL REFERENCES consent_templates (template_id),
    template_sha256  text NOT NULL,
    signer_role      text NOT NULL
                     CHECK (signer_role IN ('subject', 'guardian', 'agent', 'rights_holder')),
    assurance        text NOT NULL CHECK (assurance IN ('enrolled', 'x509', 'self_asserted')),
    signer_id        text REFERENCES consent_signers (signer_id),
    permitted_uses   text[] NOT NULL,
    prohibited_uses  text[] NOT NULL,
    uses_version     integer NOT NULL,
    valid_from       timestamptz NOT NULL,
    valid_until      timestamptz NOT NULL,
    jurisdiction     text NOT NULL,
    signed_at        timestamptz NOT NULL,
    -- SHA-256 of the compact JWS: refuses a replayed form; reveals nothing (the form has a nonce).
    form_sha256      text NOT NULL UNIQUE,
    -- Pseudonymous subject of the record's tokens (random, not derived from the reference).
    subject_pseudonym text NOT NULL UNIQUE,
    -- HMAC of the subject reference under the blind-index key; NULL once erased.
    subject_index    bytea,
    -- {subject_ref, form, signer_jwk, signer_thumbprint, receipt}, sealed; NULL once erased.
    sealed           bytea,
    data_key_id      text REFERENCES consent_data_keys (key_id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'withdrawn', 'erased')),
    idempotency_key  text,
    request_sha256   text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    withdrawn_at     timestamptz,
    withdrawn_by     text,
    withdrawal_sha256 text,
    erased_at        timestamptz,
    CHECK (valid_until > valid_from),
    CHECK (status = 'active' OR withdrawn_at IS NOT NULL),
    CHECK (status <> 'erased' OR (erased_at IS NOT NULL AND sealed IS NULL
                                  AND subject_index IS NULL)),
    UNIQUE (tenant, idempotency_key)
);
CREATE INDEX consent_records_subject ON consent_records (tenant, subject_index)
    WHERE subject_index IS NOT NULL;
CREATE INDEX consent_records_signer ON consent_records (signer_id) WHERE signer_id IS NOT NULL;

CREATE TABLE consent_assets (
    asset_id   text PRIMARY KEY,
    consent_id text NOT NULL REFERENCES consent_records (consent_id),
    position   integer NOT NULL CHECK (position >= 0),
    -- True when the image itself was uploaded and decoded (perceptual hashes computed here).
    uploaded   boolean NOT NULL,
    media_type text,
    width      integer,
    height     integer,
    -- {sha256, phash, dhash, label}, sealed under the record's data key; NULL once erased.
    sealed     bytea,
    UNIQUE (consent_id, position)
);

CREATE TABLE consent_grants (
    consent_id text NOT NULL REFERENCES consent_records (consent_id),
    client_id  text NOT NULL REFERENCES api_clients (client_id),
    granted_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consent_id, client_id)
);

-- IETF Token Status Lists. The bits are not stored here: a list's content is the set of its
-- tokens whose status is not 0, so revoking is an UPDATE of token rows, never a rewrite of a
-- shared byte array. version changes whenever a status in the list changes, so every process
-- can tell whether its signed copy of the list is still current with one indexed read.
CREATE TABLE status_lists (
    list_id    text PRIMARY KEY CHECK (list_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    bits       smallint NOT NULL CHECK (bits IN (1, 2, 4, 8)),
    size       integer NOT NULL CHECK (size >= 131072),
    state      text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'full')),
    version    bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_lists_open ON status_lists (created_at) WHERE state = 'open';

CREATE TABLE issued_tokens (
    jti            text PRIMARY KEY,
    consent_id     text NOT NULL REFERENCES consent_records (consent_id),
    audience       text NOT NULL,
    uses           text[] NOT NULL,
    asset_ids      text[] NOT NULL,
    issued_at      timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    status_list_id text NOT NULL REFERENCES status_lists (list_id),
    status_idx     integer NOT NULL CHECK (status_idx >= 0),
    -- 0 valid, 1 invalid (revoked), 2 suspended: the draft's status values.
    status         smallint NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2)),
    UNIQUE (status_list_id, status_idx)
);
CREATE INDEX issued_tokens_consent ON issued_tokens (consent_id);
CREATE INDEX issued_tokens_set ON issued_tokens (status_list_id) WHERE status <> 0;
