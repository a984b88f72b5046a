#!/usr/bin/env bash
# Throughput of the wallet on PostgreSQL, side by side with the server's own
# ceiling measured in the same run.
#
# 1. `pgbench -N` (one-row update + inserts per transaction) with the same
#    client count, on a scratch database of the same server: the reference.
# 2. The load generator's workloads (spread, hot, mixed) against another
#    scratch database, each reported with the reference and the ratio.
#
# Usage: scripts/bench.sh [--clients N] [--seconds S] [--json]
# Environment: DATABASE_URL (any database on the server; default: the one
# scripts/ensure-postgres.sh finds or starts).
set -euo pipefail
cd "$(dirname "$0")/.."

clients=16
seconds=10
json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --json) json="--json"; shift ;;
    *) echo "usage: scripts/bench.sh [--clients N] [--seconds S] [--json]" >&2; exit 2 ;;
  esac
done

eval "$(scripts/ensure-postgres.sh)"
admin_url="$DATABASE_URL"
# Replace the database name of the URL (the last path segment).
url_for() { echo "${admin_url%/*}/$1"; }

reference_db="wallet_bench_pgbench"
wallet_db="wallet_bench_ledger"
for db in "$reference_db" "$wallet_db"; do
  psql "$admin_url" -qc "drop database if exists $db" >/dev/null
  psql "$admin_url" -qc "create database $db" >/dev/null
done

echo "bench.sh: building the load generator (release)" >&2
cargo build --release --features postgres --example loadgen >&2

echo "bench.sh: pgbench -N, $clients clients, ${seconds}s (scale 10)" >&2
pgbench -q -i -s 10 "$(url_for "$reference_db")" >/dev/null 2>&1
threads=$(( clients < 2 ? clients : 2 ))
reference_tps=$(pgbench -N -c "$clients" -j "$threads" -T "$seconds" -n "$(url_for "$reference_db")" 2>/dev/null \
  | awk '/^tps = / { print $3; exit }')
if [ -z "$reference_tps" ]; then
  echo "bench.sh: pgbench gave no figure" >&2
  exit 1
fi
[ -n "$json" ] || echo "reference: pgbench -N clients=$clients seconds=$seconds tps=$reference_tps"

target/release/examples/loadgen --database-url "$(url_for "$wallet_db")" --workload all \
  --clients "$clients" --seconds "$seconds" --reference-tps "$reference_tps" $json

for db in "$reference_db" "$wallet_db"; do
  psql "$admin_url" -qc "drop database if exists $db" >/dev/null
done
