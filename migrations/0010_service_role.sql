-- Least privilege (issue 11): migrations run as the tables' owner, the service as a role that
-- reads and writes rows but owns nothing. Only an owner (or a superuser) may ALTER, DROP or
-- TRUNCATE a table or disable its triggers, so the service can no longer switch off the
-- triggers that keep the audit log append-only, and the append-only tables take nothing but
-- INSERT from it: PostgreSQL refuses an UPDATE or DELETE before any trigger runs.
--
-- The grants go to a fixed NOLOGIN group role, registry_service, so they hold whatever the
-- service's login role is called: whoever creates that login role makes it a member (README,
-- "Database roles"; the embedded server does it at start). Roles belong to the cluster, not
-- the database, so the group is created here only when it is missing, which needs CREATEROLE.
--
-- Every later migration grants what the service needs on each table it adds, explicitly; there
-- are no ALTER DEFAULT PRIVILEGES. Default privileges would hand a new append-only table UPDATE
-- and DELETE unless someone remembered to revoke them, and they apply only to objects made by
-- the role that set them. tests/test_migrations.py lists the service's privileges on every
-- table and fails on a table it does not know. Identity columns need no grant on their
-- sequence; a serial column or a sequence read with nextval() would need USAGE.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registry_service') THEN
        CREATE ROLE registry_service NOLOGIN;
    END IF;
EXCEPTION
    -- Another database of this cluster migrating at the same moment created it first.
    WHEN duplicate_object OR unique_violation THEN NULL;
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'the role registry_service does not exist and % may not create it',
            current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'as a role with CREATEROLE run CREATE ROLE registry_service NOLOGIN, '
                         'then migrate again (README: Database roles)';
END
$$;

-- Before PostgreSQL 15 every role may create tables in the public schema, and so could the
-- service. Only the schema's owner can take that back; a migrating role that does not own the
-- schema leaves it to the operator (README: Database roles).
DO $$
BEGIN
    IF pg_has_role(
        (SELECT nspowner FROM pg_namespace WHERE nspname = current_schema()), 'USAGE'
    ) THEN
        EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO registry_service', current_schema());
    END IF;
END
$$;

-- /readyz and the start-up check read which migrations are applied; only the owner adds one.
GRANT SELECT ON schema_migrations TO registry_service;

-- Append-only: the audit log, its checkpoints, a decision's history and the record of
-- takedown delivery attempts.
GRANT SELECT, INSERT ON
    audit_events, audit_checkpoints, moderation_decision_history, takedown_attempts
TO registry_service;

-- Single rows that are only ever moved forward: the audit chain's head (appenders lock and
-- update it) and the hash lists' version (bumped by the lists' triggers, which run with the
-- rights of whoever changed a list).
GRANT SELECT, UPDATE ON audit_head, hash_lists_version TO registry_service;

-- Written once, never changed by the service.
GRANT SELECT, INSERT ON
    c2pa_identity, consent_templates, consent_secrets, consent_grants, signed_outputs,
    signed_output_consents, moderation_decision_consents
TO registry_service;

-- Rows whose state changes (revocation, withdrawal, erasure of sealed columns, review, key
-- rotation, delivery retries). UPDATE also covers the row locks (SELECT ... FOR UPDATE / FOR
-- SHARE) the service takes on these tables.
GRANT SELECT, INSERT, UPDATE ON
    api_clients, api_keys, signing_keys, consent_signers, consent_records, consent_assets,
    status_lists, issued_tokens, moderation_decisions, review_tickets, review_appeals,
    hash_lists, hash_list_entries, takedown_webhooks, takedown_events, takedown_deliveries
TO registry_service;

-- Rows the service deletes: a consent's data key (crypto-shredding erases the record), a
-- review image once its ticket is decided, ended console sessions.
GRANT SELECT, INSERT, DELETE ON consent_data_keys, review_images TO registry_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON web_sessions TO registry_service;
