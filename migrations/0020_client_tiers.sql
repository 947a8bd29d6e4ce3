-- Issue 16, item 6: access tiers and rate limits tied to risk (registry.core.tiers).
-- Every client existing now had the one flat limit, which is the verified tier's by default.
ALTER TABLE api_clients
    ADD COLUMN tier text NOT NULL DEFAULT 'verified'
        CHECK (tier IN ('public', 'verified', 'enterprise')),
    -- The share of its tier's limit the client gets, recomputed by the risk worker from what
    -- the gate saw of it lately; the reasons say why it is below 1.
    ADD COLUMN risk_factor float8 NOT NULL DEFAULT 1 CHECK (risk_factor > 0 AND risk_factor <= 1),
    ADD COLUMN risk_reasons text[] NOT NULL DEFAULT '{}',
    -- When the factor last changed (NULL: never).
    ADD COLUMN risk_changed_at timestamptz;
