-- Web pages (issue 6): console sign-in sessions, and the images reviewers look at.
--
-- A session row is keyed by the SHA-256 of the random id in the browser's cookie, so reading
-- this table does not let anyone sign in as a reviewer. Rows die with their client (disabling
-- a client ends its sessions at the next request; deleting it removes them).

CREATE TABLE web_sessions (
    id_hash      bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    client_id    text NOT NULL REFERENCES api_clients (client_id) ON DELETE CASCADE,
    csrf_token   text NOT NULL CHECK (length(csrf_token) >= 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- The generated image of a decision sent to human review, kept only while its ticket is
-- open: written by the gate with the decision, deleted when the ticket is decided. Sealed
-- with AES-256-GCM under the master key; the decision id is the associated data, so a
-- blob moved to another row does not decrypt.
CREATE TABLE review_images (
    decision_id text PRIMARY KEY CHECK (length(decision_id) BETWEEN 1 AND 200),
    media_type  text NOT NULL CHECK (media_type IN ('image/jpeg', 'image/png', 'image/webp')),
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Whatever closes a ticket (the console, the API, a future tool), its image goes in the same
-- transaction.
CREATE FUNCTION review_images_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM review_images WHERE decision_id = NEW.decision_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER review_tickets_forget_image AFTER UPDATE OF status ON review_tickets
    FOR EACH ROW WHEN (NEW.status = 'closed' AND OLD.status <> 'closed')
    EXECUTE FUNCTION review_images_forget();
