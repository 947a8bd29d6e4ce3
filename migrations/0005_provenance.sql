-- Provenance (issue 4): the outputs this registry signed, and the consent tokens each used.
--
-- Nothing here is personal data: hashes of the signed output, pseudonymous consent ids and
-- token ids (jti) with their status-list entries. A token's current status is read from
-- issued_tokens at query time, never copied here, so a revocation shows at once.

CREATE TABLE signed_outputs (
    -- Ascending number for the in-memory perceptual-hash index, which loads what is new.
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    output_id     text NOT NULL UNIQUE CHECK (output_id ~ '^[A-Za-z0-9_-]{16,64}$'),
    tenant        text NOT NULL,
    client_id     text NOT NULL REFERENCES api_clients (client_id),
    generation_id text NOT NULL CHECK (length(generation_id) BETWEEN 1 AND 200),
    model         text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    media_type    text NOT NULL CHECK (media_type IN ('image/jpeg', 'image/png', 'image/webp')),
    width         integer NOT NULL CHECK (width > 0),
    height        integer NOT NULL CHECK (height > 0),
    -- SHA-256 of the signed bytes (manifest included): what a verifier hashes.
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- 64-bit pHash of the pixels, stored as the signed bigint with the same bits.
    phash         bigint NOT NULL,
    decision_id   text,
    -- The detached provenance assertion (compact JWS, typ provenance+jwt).
    assertion     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- The same generation is signed once per generator client.
    UNIQUE (client_id, generation_id)
);
CREATE INDEX signed_outputs_sha256 ON signed_outputs (sha256);

CREATE TABLE signed_output_consents (
    output_id       text NOT NULL REFERENCES signed_outputs (output_id),
    position        integer NOT NULL CHECK (position >= 0),
    jti             text NOT NULL,
    consent_id      text NOT NULL,
    status_list_uri text NOT NULL,
    status_idx      integer NOT NULL CHECK (status_idx >= 0),
    PRIMARY KEY (output_id, position)
);
CREATE INDEX signed_output_consents_consent ON signed_output_consents (consent_id);
CREATE INDEX signed_output_consents_jti ON signed_output_consents (jti);
