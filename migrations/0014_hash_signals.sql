-- Hash lists of two signals, entries of images, and incremental index updates (issue 14).

-- A list holds one signal: 'phash' (64-bit, every list before this migration) or 'pdq'
-- (256-bit). unreviewed_distance: entries taken from an exchange as they are (reviewed =
-- false) match only this close, when it is stricter than the policy's band.
-- tenant owns the list: only its admins see, change and export it. scope 'global' matches
-- every tenant's requests (a protected person is protected everywhere; the label is then
-- visible to every tenant's reviewers), 'tenant' only its own. Lists made before this
-- migration keep matching everywhere, owned by the tenant of the client that made them (the
-- operator's, 'system', when the command line made them).
ALTER TABLE hash_lists
    ADD COLUMN signal text NOT NULL DEFAULT 'phash' CHECK (signal IN ('phash', 'pdq')),
    ADD COLUMN unreviewed_distance integer CHECK (unreviewed_distance BETWEEN 0 AND 256),
    ADD COLUMN tenant text NOT NULL DEFAULT 'system',
    ADD COLUMN scope text NOT NULL DEFAULT 'global' CHECK (scope IN ('global', 'tenant'));
UPDATE hash_lists l SET tenant = c.tenant FROM api_clients c WHERE c.client_id = l.created_by;
ALTER TABLE hash_lists
    ALTER COLUMN signal DROP DEFAULT,
    ALTER COLUMN tenant DROP DEFAULT,
    ALTER COLUMN scope DROP DEFAULT;

-- Hashes become their big-endian bytes (int8send keeps a pHash's 64 bits as they were), so
-- both signals share one column; the list's signal fixes the length, which the service
-- checks on every write.
-- image_id groups the entries made from one image added to a list (its hash and, on a pHash
-- list, the hashes of its crops; crop names which, as "left 10%", "centre 20%"). quality is
-- PDQ's score when it is known.
-- changed_xid is the transaction that last wrote the row (its xid8): a process that read the entries
-- under a snapshot whose oldest running transaction was X reads again only rows written by
-- X or later (registry.gate.hashlists), and so never misses a transaction that committed
-- after it looked, whatever order the writers committed in.
ALTER TABLE hash_list_entries
    ALTER COLUMN hash TYPE bytea USING int8send(hash),
    ADD CONSTRAINT hash_list_entries_hash_length CHECK (length(hash) IN (8, 32)),
    ADD COLUMN reviewed boolean NOT NULL DEFAULT true,
    ADD COLUMN quality smallint CHECK (quality BETWEEN 0 AND 100),
    ADD COLUMN image_id uuid,
    ADD COLUMN crop text CHECK (crop ~ '^(left|right|top|bottom|centre) [0-9]{1,2}%$'),
    ADD COLUMN changed_xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint;

CREATE FUNCTION hash_list_entries_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_xid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$;
CREATE TRIGGER hash_list_entries_touched BEFORE UPDATE ON hash_list_entries
    FOR EACH ROW EXECUTE FUNCTION hash_list_entries_touch();

-- The transaction id as bigint (an xid8 is 64 bits and far from the sign bit) so that a BRIN
-- index can hold it: rows are written in transaction order, so a few bytes a range of pages
-- find the recent ones, and a bulk import does not pay for a B-tree over a million equal
-- keys (4 of 22 seconds for a million entries, measured).
CREATE INDEX hash_list_entries_changed ON hash_list_entries USING brin (changed_xid);
CREATE INDEX hash_list_entries_image ON hash_list_entries (image_id) WHERE image_id IS NOT NULL;

-- The entries' reference to their list, checked once per statement instead of once per row:
-- a foreign key looks its list up for every row, 8 of the 18 seconds a million-entry import
-- spent inserting (measured). Lists are never deleted (they are disabled, so that a past
-- decision's match can always be traced), which is the half of a foreign key this does not
-- need to check.
ALTER TABLE hash_list_entries DROP CONSTRAINT hash_list_entries_list_id_fkey;

CREATE FUNCTION hash_list_entries_list_exists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM written w
               WHERE NOT EXISTS (SELECT 1 FROM hash_lists l WHERE l.list_id = w.list_id)) THEN
        RAISE foreign_key_violation USING MESSAGE = 'hash_list_entries: no hash list with that list_id';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER hash_list_entries_inserted_list AFTER INSERT ON hash_list_entries
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION hash_list_entries_list_exists();
CREATE TRIGGER hash_list_entries_updated_list AFTER UPDATE ON hash_list_entries
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION hash_list_entries_list_exists();

CREATE FUNCTION hash_lists_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE restrict_violation USING MESSAGE = 'hash lists are disabled, never deleted';
END
$$;
CREATE TRIGGER hash_lists_kept BEFORE DELETE ON hash_lists
    FOR EACH ROW EXECUTE FUNCTION hash_lists_never_deleted();
CREATE TRIGGER hash_lists_kept_whole BEFORE TRUNCATE ON hash_lists
    FOR EACH STATEMENT EXECUTE FUNCTION hash_lists_never_deleted();
