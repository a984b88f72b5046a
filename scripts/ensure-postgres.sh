#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers, and prints the DATABASE_URL to use.
#
# 1. DATABASE_URL already set and answering: use it.
# 2. The machine's cluster on 127.0.0.1:5432: start it if it is stopped.
# 3. Otherwise: initdb a throwaway cluster under target/pg-test (as the
#    postgres user, since PostgreSQL refuses to run as root) on port 55432.
#
# Usage: eval "$(scripts/ensure-postgres.sh)"   # exports DATABASE_URL
set -euo pipefail

log() { echo "ensure-postgres: $*" >&2; }

answers() { # url
  if command -v psql >/dev/null 2>&1; then
    psql "$1" -Atqc 'select 1' >/dev/null 2>&1
  else
    return 1
  fi
}

if [ -n "${DATABASE_URL:-}" ]; then
  if answers "$DATABASE_URL"; then
    echo "export DATABASE_URL='$DATABASE_URL'"
    exit 0
  fi
  log "DATABASE_URL is set but does not answer; trying the local cluster"
fi

default_url="postgres://postgres@127.0.0.1:5432/postgres"
if answers "$default_url"; then
  echo "export DATABASE_URL='$default_url'"
  exit 0
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -n "$version" ]; then
    log "starting the machine's cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 2>&1 || true
    for _ in $(seq 1 30); do
      answers "$default_url" && { echo "export DATABASE_URL='$default_url'"; exit 0; }
      sleep 1
    done
  fi
fi

# A throwaway cluster of our own.
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ]; then
  log "no PostgreSQL binaries found; installing the postgresql package"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
root=$(cd "$(dirname "$0")/.." && pwd)
data="$root/target/pg-test/data"
port=55432
url="postgres://postgres@127.0.0.1:$port/postgres"
if answers "$url"; then
  echo "export DATABASE_URL='$url'"
  exit 0
fi
mkdir -p "$root/target/pg-test"
chown -R postgres "$root/target/pg-test" 2>/dev/null || true
if [ ! -f "$data/PG_VERSION" ]; then
  log "initdb a throwaway cluster in $data"
  runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=trust >&2
fi
log "starting the throwaway cluster on port $port"
runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$root/target/pg-test/log" \
  -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" -w start >&2
answers "$url" || { log "the throwaway cluster does not answer; see target/pg-test/log"; exit 1; }
echo "export DATABASE_URL='$url'"
