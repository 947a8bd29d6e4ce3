#!/bin/sh
# The database roles of README "Database roles", made once, when the postgres container starts
# on an empty data volume (compose.yaml mounts this file in /docker-entrypoint-initdb.d, where
# the image runs it as the superuser over its local socket).
#
#   registry_service  NOLOGIN: the group migration 0010 grants the service's privileges to
#   registry_owner    LOGIN: owns the database, its public schema and so every table; migrates
#   registry_app      LOGIN, IN ROLE registry_service: the service's login, owns nothing
#
# The passwords are read from the files the two variables name (compose's secrets), by psql
# itself (\set with a back-quoted command), so they are never on a command line. The image
# executes this file (it is executable) or sources it; both work, hence no `set -u` here and
# no changes to the caller's shell beyond `set -e`.
set -e

for file in "$REGISTRY_OWNER_PASSWORD_FILE" "$REGISTRY_APP_PASSWORD_FILE"; do
    if [ -z "$file" ] || [ ! -s "$file" ]; then
        echo "postgres-init: REGISTRY_OWNER_PASSWORD_FILE and REGISTRY_APP_PASSWORD_FILE must name non-empty files (deploy/make-secrets.sh writes them)" >&2
        exit 1
    fi
done

psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
\set owner_password `cat "$REGISTRY_OWNER_PASSWORD_FILE"`
\set app_password `cat "$REGISTRY_APP_PASSWORD_FILE"`
-- The grants go to this group; its name is fixed (migration 0010).
CREATE ROLE registry_service NOLOGIN;
CREATE ROLE registry_owner LOGIN PASSWORD :'owner_password';
-- Any name would do for the service's login, as long as it is a member of registry_service.
CREATE ROLE registry_app LOGIN PASSWORD :'app_password' IN ROLE registry_service;
CREATE DATABASE registry OWNER registry_owner;
\connect registry
-- The owner owns the schema the tables go in, and nobody else may create there (already so on
-- PostgreSQL 15 and later; said again so that it does not depend on the version).
ALTER SCHEMA public OWNER TO registry_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
