-- The audit log as an RFC 9162 Merkle tree (issue 13): leaf i is the stored hash of event
-- seq = i + 1, leaf hashes SHA-256(0x00 || hash), nodes SHA-256(0x01 || left || right).

-- The hashes of complete, aligned subtrees of 2^8 = 256 leaves and more: block (level, idx)
-- covers leaves [idx * 2^level, (idx + 1) * 2^level). Derived from audit_events alone and
-- filled in order as blocks complete (registry.core.audit_tree), so a root or a proof reads
-- about log2(n) of these rows and at most a few runs of 255 event hashes, never the whole log.
-- `registry audit verify` recomputes every stored block from the events. Append-only, like the
-- log: a block never changes once its 2^level events exist.
CREATE TABLE audit_merkle_blocks (
    level smallint NOT NULL CHECK (level BETWEEN 8 AND 63),
    idx   bigint NOT NULL CHECK (idx >= 0),
    hash  bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);
CREATE TRIGGER audit_merkle_blocks_append_only BEFORE UPDATE OR DELETE ON audit_merkle_blocks
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_merkle_blocks_no_truncate BEFORE TRUNCATE ON audit_merkle_blocks
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_merkle_blocks FROM PUBLIC;

-- Checkpoints also sign the Merkle root (in the JWS, as `root`) and are kept as C2SP signed
-- notes (c2sp.org/tlog-checkpoint): the note and the verifier key ("vkey") of the key that
-- signed it. Empty for checkpoints signed before this migration.
ALTER TABLE audit_checkpoints
    ADD COLUMN root_hash bytea CHECK (length(root_hash) = 32),
    ADD COLUMN note text,
    ADD COLUMN note_key text;

-- Blocks are appended by whichever process first needs them (a checkpoint, a proof).
GRANT SELECT, INSERT ON audit_merkle_blocks TO registry_service;
