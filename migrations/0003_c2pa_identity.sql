-- The C2PA signing identity when the operator supplies none: generated once, shared by every
-- service process. The PEM bundle (key, chain, anchor) is AES-GCM encrypted with the master key.
CREATE TABLE c2pa_identity (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    chain_pem  text NOT NULL,
    anchor_pem text,
    bundle_enc bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
