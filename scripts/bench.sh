#!/usr/bin/env bash
# Throughput of the wallet on PostgreSQL, side by side with the server's own
# ceiling measured in the same run.
#
# Each round, for each workload (spread, hot, mixed):
# 1. `pgbench -N` (one-row update + inserts per transaction) with the same
#    client count, on a scratch database of the same server: the reference,
#    measured right before the workload (the server's speed drifts on a
#    shared machine, so the two are kept close in time).
# 2. The load generator on that workload against another scratch
#    database, on both write paths (one transaction per command, and the
#    batching writer), each reported with the reference and the ratio.
# With several rounds, a last table gives the medians (needs jq).
#
# Usage: scripts/bench.sh [--clients N] [--seconds S] [--rounds R] [--json]
#                         [-- LOADGEN-ARGS...]   (e.g. -- --writers 2 --path batched)
#   --workloads "spread hot" picks workloads (default: spread hot mixed;
#   also hot-deposit, transfer-spread, transfer-hot).
# Environment: DATABASE_URL (any database on the server; default: the one
# scripts/ensure-postgres.sh finds or starts); CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

clients=16
seconds=10
rounds=1
json=""
workloads="spread hot mixed"
extra=()
usage="usage: scripts/bench.sh [--clients N] [--seconds S] [--rounds R] [--workloads \"spread hot mixed\"] [--json] [-- LOADGEN-ARGS...]"
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --json) json="--json"; shift ;;
    --workloads) workloads="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
for workload in $workloads; do
  case "$workload" in
    spread|hot|mixed|hot-deposit|transfer-spread|transfer-hot) ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
for value in "$clients" "$seconds" "$rounds"; do
  case "$value" in
    ''|*[!0-9]*) echo "$usage" >&2; exit 2 ;;
  esac
done
if [ "$rounds" -lt 1 ] || [ "$rounds" -gt 20 ] || [ "$seconds" -gt 600 ]; then
  echo "bench.sh: at most 20 rounds of at most 600 s" >&2
  exit 2
fi

eval "$(scripts/ensure-postgres.sh)"
admin_url="$DATABASE_URL"
# Replace the database name of the URL (the last path segment).
url_for() { echo "${admin_url%/*}/$1"; }

reference_db="wallet_bench_pgbench"
wallet_db="wallet_bench_ledger"
drop_databases() {
  for db in "$reference_db" "$wallet_db"; do
    psql "$admin_url" -qc "drop database if exists $db" >/dev/null 2>&1 || true
  done
}
results=$(mktemp)
trap 'drop_databases; rm -f "$results"' EXIT
drop_databases
for db in "$reference_db" "$wallet_db"; do
  psql "$admin_url" -qc "create database $db" >/dev/null
done

echo "bench.sh: building the load generator (release)" >&2
cargo build --release --features postgres --example loadgen >&2
loadgen="${CARGO_TARGET_DIR:-target}/release/examples/loadgen"

pgbench -q -i -s 10 "$(url_for "$reference_db")" >/dev/null 2>&1
threads=$(( clients < 2 ? clients : 2 ))
for round in $(seq 1 "$rounds"); do
  for workload in $workloads; do
    echo "bench.sh: round $round of $rounds, $workload: pgbench -N, $clients clients, ${seconds}s (scale 10)" >&2
    reference_tps=$(pgbench -N -c "$clients" -j "$threads" -T "$seconds" -n "$(url_for "$reference_db")" 2>/dev/null \
      | awk '/^tps = / { print $3; exit }')
    if [ -z "$reference_tps" ]; then
      echo "bench.sh: pgbench gave no figure" >&2
      exit 1
    fi
    [ -n "$json" ] || echo "reference: pgbench -N clients=$clients seconds=$seconds tps=$reference_tps"
    run=("$loadgen" --database-url "$(url_for "$wallet_db")" --workload "$workload"
      --clients "$clients" --seconds "$seconds" --reference-tps "$reference_tps" "${extra[@]}")
    if [ -z "$json" ] && ! command -v jq >/dev/null 2>&1; then
      "${run[@]}"   # text lines; medians need jq
      continue
    fi
    "${run[@]}" --json \
      | tee -a "$results" \
      | if [ -n "$json" ]; then cat; else
          jq -r '"\(.workload | . + "               " | .[0:15]) \(.path | . + "              " | .[0:14]) clients=\(.clients) ops/s=\(.ops_per_s | floor) p50=\(.p50_ms * 100 | floor / 100)ms p99=\(.p99_ms * 100 | floor / 100)ms errors=\(.errors) reference_tps=\(.reference_tps | floor) ratio=\(.ratio * 100 | floor / 100)\(if .mean_batch then " mean_batch=\(.mean_batch * 10 | floor / 10)" else "" end)"'
        fi
  done
done

if [ "$rounds" -gt 1 ] && [ -z "$json" ] && command -v jq >/dev/null 2>&1; then
  echo
  echo "medians of $rounds rounds:"
  jq -s -r '
    def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                       else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    group_by([.workload, .path])[]
    | "\(.[0].workload | . + "               " | .[0:15]) \(.[0].path | . + "              " | .[0:14]) ops/s=\(map(.ops_per_s) | median | floor) p50=\(map(.p50_ms) | median * 100 | floor / 100)ms p99=\(map(.p99_ms) | median * 100 | floor / 100)ms reference_tps=\(map(.reference_tps) | median | floor) ratio=\(map(.ratio) | median * 100 | floor / 100) (\(map(.ratio) | min * 100 | floor / 100) to \(map(.ratio) | max * 100 | floor / 100))"
  ' "$results"
fi
