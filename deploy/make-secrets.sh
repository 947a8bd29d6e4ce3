#!/bin/sh
# Writes the secrets compose.yaml reads, once, into deploy/secrets/ (or the folder named as the
# first argument): fresh random passwords for the three database logins, the master key, and
# the two settings files that carry them to the service (the service reads its settings from
# the environment or from the TOML file REGISTRY_CONFIG_FILE names; a file is what a compose
# secret is, so the URLs with their passwords and the master key go in one).
#
#   postgres_password          the superuser's (POSTGRES_PASSWORD_FILE)
#   registry_owner_password    registry_owner's, read by deploy/postgres-init.sh
#   registry_app_password      registry_app's, likewise
#   migrate.toml               `registry migrate`: the owner's URL
#   serve.toml                 `registry serve`: the service role's URL and the master key
#
# It never overwrites: a new master key would make every stored private key unreadable (the
# start stops with key_decryption_failed), so keep these files, and back the master key up
# apart from the database's backups. REGISTRY_DB_SERVER (default postgres:5432, compose's
# service) is where the URLs point.
set -eu

dir=${1:-"$(dirname "$0")/secrets"}
server=${REGISTRY_DB_SERVER:-postgres:5432}

if [ -e "$dir/serve.toml" ] || [ -e "$dir/migrate.toml" ]; then
    echo "make-secrets: $dir already holds secrets; nothing was changed" >&2
    exit 1
fi

# Hex: safe unquoted in a URL, a TOML string and a SQL literal alike. 24 bytes of the
# kernel's randomness per password; the master key is 32 bytes, which REGISTRY_MASTER_KEY also
# takes as 64 hex digits.
random_hex() {
    od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

owner_password=$(random_hex 24)
app_password=$(random_hex 24)
printf '%s\n' "$(random_hex 24)" > "$dir/postgres_password"
printf '%s\n' "$owner_password" > "$dir/registry_owner_password"
printf '%s\n' "$app_password" > "$dir/registry_app_password"

cat > "$dir/migrate.toml" <<TOML
# registry migrate, as the tables' owner. database_url is the same URL: an owner URL alone is
# refused (it would mean the embedded server), and this container needs no other role.
database_url = "postgresql://registry_owner:$owner_password@$server/registry"
database_owner_url = "postgresql://registry_owner:$owner_password@$server/registry"
TOML

cat > "$dir/serve.toml" <<TOML
# registry serve, as registry_app (a member of registry_service that owns nothing).
database_url = "postgresql://registry_app:$app_password@$server/registry"
master_key = "$(random_hex 32)"
TOML

# Compose's file secrets are bind mounts that keep the host's owner and mode, and the
# containers read them as other users (uid 10001 for the service, 999 for postgres): the files
# are readable, the folder (0700) keeps the host's other users out.
chmod 0644 "$dir"/*
echo "make-secrets: wrote $dir"
