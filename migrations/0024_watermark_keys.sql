-- The watermark soft binding (issue 17): the random lookup key our invisible watermark
-- (verifier.watermark, org.consent-registry.watermark.dwtdct.1) carries in a signed output's
-- pixels, so that a copy stripped of its manifest names the output.
--
-- Not personal data: 40 random bits chosen at signing, derived from nothing. NULL for outputs
-- signed before this migration, or whose image could not carry the mark (too small, palette
-- or 16-bit pixels). One output per key: a key read from an image names one output.

ALTER TABLE signed_outputs
    ADD COLUMN watermark_key text CHECK (watermark_key ~ '^[0-9a-f]{10}$');
CREATE UNIQUE INDEX signed_outputs_watermark_key ON signed_outputs (watermark_key)
    WHERE watermark_key IS NOT NULL;
