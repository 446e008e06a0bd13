#!/usr/bin/env bash
# Start a local PostgreSQL for the `lrkit tune` tests and print its URL as the last line of stdout.
#
# Idempotent, for a fresh Debian machine as root: installs Debian's `postgresql` when missing, creates and
# starts the newest cluster, creates the role and the database (each only if absent). Usage:
#
#     export LRKIT_TEST_POSTGRES="$(bash .ci/postgres.sh | tail -n 1)"
#
# Override the names with LRKIT_PG_USER, LRKIT_PG_PASSWORD, LRKIT_PG_DB, LRKIT_PG_PORT.
set -euo pipefail

user="${LRKIT_PG_USER:-lrkit}"
password="${LRKIT_PG_PASSWORD:-lrkit}"
db="${LRKIT_PG_DB:-lrkit_test}"
port="${LRKIT_PG_PORT:-5432}"

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "run me as root (I install packages and start the cluster as the postgres user)"
    exit 1
fi

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "${version} main"; then
    log "creating cluster ${version}/main on port ${port}"
    pg_createcluster --port "${port}" "${version}" main >/dev/null
fi
cluster_port="$(pg_lsclusters -h | awk -v v="${version}" '$1 == v && $2 == "main" {print $3}')"
if ! pg_lsclusters -h | awk -v v="${version}" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    log "starting cluster ${version}/main"
    pg_ctlcluster "${version}" main start
fi
for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "${cluster_port}" && break
    sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "${cluster_port}" || { log "PostgreSQL did not come up on port ${cluster_port}"; exit 1; }

psql_admin() { runuser -u postgres -- psql -p "${cluster_port}" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '${user}'")" != "1" ]; then
    log "creating role ${user}"
    psql_admin -c "CREATE ROLE \"${user}\" LOGIN PASSWORD '${password}'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '${db}'")" != "1" ]; then
    log "creating database ${db}"
    psql_admin -c "CREATE DATABASE \"${db}\" OWNER \"${user}\""
fi

url="postgresql://${user}:${password}@127.0.0.1:${cluster_port}/${db}"
PGPASSWORD="${password}" psql -h 127.0.0.1 -p "${cluster_port}" -U "${user}" -d "${db}" -qtA -c "SELECT 1" >/dev/null \
    || { log "cannot log in as ${user} at ${url}"; exit 1; }
export LRKIT_TEST_POSTGRES="${url}"
echo "${url}"
