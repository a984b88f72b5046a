#!/usr/bin/env bash
# Throughput of wallet-http on loopback against the library's own figure on
# the same workload, measured in the same run, and the service's memory.
#
# For each write path (one transaction per command, then the batching
# writer):
# 1. the library: the load generator drives wallet-pg directly (workloads
#    `spread`: deposits over 10,000 wallets, and `hot-deposit`: deposits
#    into one wallet) on a scratch database;
# 2. the service: wallet-http (release build, development mode on
#    127.0.0.1, a scratch database of the same server, WALLET_BATCH on or
#    off) is given the same deposits by wrk (scripts/bench-http.lua) with
#    the same number of connections; its resident memory is sampled from
#    /proc/<pid>/status while it runs (VmRSS, largest seen) and read at the
#    end (VmHWM, the peak).
# Each line gives requests/s, p50, p99, errors, the library's ops/s and the
# ratio, and the memory.
#
# Usage: scripts/bench-http.sh [--connections N] [--seconds S] [--path single|batched|both]
# Needs wrk (apt-get install wrk). Environment: DATABASE_URL as for
# scripts/bench.sh; CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=16
seconds=10
paths="single batched"
wallets=10000
usage="usage: scripts/bench-http.sh [--connections N] [--seconds S] [--path single|batched|both]"
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --path)
      case "$2" in
        single|batched) paths="$2" ;;
        both) paths="single batched" ;;
        *) echo "$usage" >&2; exit 2 ;;
      esac
      shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
for value in "$connections" "$seconds"; do
  case "$value" in
    ''|*[!0-9]*) echo "$usage" >&2; exit 2 ;;
  esac
done
if [ "$connections" -lt 1 ] || [ "$connections" -gt 512 ] || [ "$seconds" -lt 1 ] || [ "$seconds" -gt 600 ]; then
  echo "bench-http.sh: 1 to 512 connections, 1 to 600 seconds" >&2
  exit 2
fi
command -v wrk >/dev/null 2>&1 || { echo "bench-http.sh: wrk is needed (apt-get install wrk)" >&2; exit 1; }

eval "$(scripts/ensure-postgres.sh)"
admin_url="$DATABASE_URL"
url_for() { echo "${admin_url%/*}/$1"; }
library_db="wallet_bench_http_library"
service_db="wallet_bench_http_service"
target="${CARGO_TARGET_DIR:-target}"
work=$(mktemp -d)
server_pid=""

stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
recreate() { # database
  psql "$admin_url" -qc "drop database if exists $1" >/dev/null 2>&1 || true
  psql "$admin_url" -qc "create database $1" >/dev/null
}
cleanup() {
  stop_server
  for db in "$library_db" "$service_db"; do
    psql "$admin_url" -qc "drop database if exists $db" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

echo "bench-http.sh: building wallet-http and the load generator (release)" >&2
cargo build --release -p wallet-http >&2
cargo build --release --features postgres --example loadgen >&2

kib_of() { # pid field -> KiB
  awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}
mib() { awk -v kib="$1" 'BEGIN { printf "%.1f", kib / 1024 }'; }

# Runs wrk against the server; sets `result` (its result line) and
# `rss_peak` (the largest VmRSS seen meanwhile, KiB).
run_wrk() { # mode wallets duration
  local peak=0 rss wrk_pid
  wrk -t 2 -c "$connections" -d "${3}s" --timeout 10s -s scripts/bench-http.lua "$base_url" \
    -- "$1" "$2" "$token" "$prefix" 2 > "$work/wrk.out" 2>&1 &
  wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    rss=$(kib_of "$server_pid" VmRSS)
    if [ "${rss:-0}" -gt "$peak" ]; then peak=$rss; fi
    # wrk runs for its whole duration even when every thread has stopped:
    # a create run is interrupted (wrk then reports) once the wallets exist.
    if [ "$1" = create ] && [ "$(wallet_count)" -ge "$2" ]; then
      kill -INT "$wrk_pid" 2>/dev/null || true
    fi
    sleep 0.5
  done
  wait "$wrk_pid" || true
  rss_peak=$peak
  result=$(grep '^result ' "$work/wrk.out" || true)
  if [ -z "$result" ]; then
    cat "$work/wrk.out" >&2
    result="result requests_per_s=0 p50_ms=0 p99_ms=0 requests=0 errors=-1"
  fi
}
wallet_count() {
  psql "$(url_for "$service_db")" -Atqc "select count(*) from wallets" 2>/dev/null || echo 0
}
# The user id the Lua script gives wallet number n of this run.
missing_wallets() { # wallets
  psql "$(url_for "$service_db")" -Atqc "
    select u from (select format('%s-0000-7000-8000-%s', '$prefix', lpad(to_hex(n), 12, '0')) as u
                   from generate_series(0, $1 - 1) n) ids
    where not exists (select 1 from wallets w where w.user_id = ids.u::uuid)"
}
field() { # line name
  echo "$1" | tr ' ' '\n' | awk -F= -v name="$2" '$1 == name { print $2 }'
}

printf '%-12s %-8s %10s %8s %8s %7s %12s %6s %9s %9s\n' \
  workload path "http_rps" "p50_ms" "p99_ms" errors "library_ops" ratio "rss_MiB" "hwm_MiB"
for path in $paths; do
  batch=false
  loadgen_path=single
  if [ "$path" = batched ]; then batch=true; loadgen_path=batched; fi

  # 1. The library on the same workloads, with the pool settings the
  #    service uses (a liveness check per acquire).
  recreate "$library_db"
  declare -A library=()
  for workload in spread hot-deposit; do
    line=$("$target/release/examples/loadgen" --database-url "$(url_for "$library_db")" \
      --workload "$workload" --path "$loadgen_path" --clients "$connections" \
      --seconds "$seconds" --test-before-acquire --json)
    library[$workload]=$(echo "$line" | sed -E 's/.*"ops_per_s":([0-9.]+).*/\1/')
  done

  # 2. The service.
  recreate "$service_db"
  DATABASE_URL="$(url_for "$service_db")" WALLET_BATCH="$batch" RUST_LOG=warn LOG_FORMAT=json \
    WALLET_DATABASE_MAX_CONNECTIONS=$(( connections + 4 )) \
    "$target/release/wallet-http" --dev --migrate --bind 127.0.0.1:0 > "$work/server.out" 2> "$work/server.err" &
  server_pid=$!
  token=""
  for _ in $(seq 1 100); do
    token=$(awk -F= '/^export SERVICE_TOKEN=/ { print $2 }' "$work/server.out")
    base_url=$(awk -F= '/^export WALLET_URL=/ { print $2 }' "$work/server.out")
    [ -n "$token" ] && [ -n "$base_url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
    sleep 0.2
  done
  [ -n "$token" ] || { echo "bench-http.sh: the service printed no token" >&2; cat "$work/server.err" >&2; exit 1; }
  prefix=$(printf '%08x' $(( (RANDOM << 16) | RANDOM )))

  # The wallets: created through the API, not timed (the create run stops
  # when its share is done; the duration is only an upper bound).
  run_wrk create "$wallets" 120
  if [ "$(field "$result" errors)" != 0 ]; then
    echo "bench-http.sh: creating the wallets failed: $result" >&2
    exit 1
  fi
  # wrk may drop a thread's very first request (it calls the script once
  # more than it sends): create what is missing one by one.
  for user in $(missing_wallets "$wallets"); do
    curl -sf -o /dev/null -X POST "$base_url/api/v1/wallets" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d "{\"userId\": \"$user\"}"
  done
  if [ -n "$(missing_wallets "$wallets")" ]; then
    echo "bench-http.sh: some wallets could not be created" >&2
    exit 1
  fi

  for workload in spread hot-deposit; do
    mode=spread
    [ "$workload" = hot-deposit ] && mode=hot
    run_wrk "$mode" "$wallets" "$seconds"
    rps=$(field "$result" requests_per_s)
    lib=${library[$workload]}
    ratio=$(awk -v a="$rps" -v b="$lib" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    hwm=$(kib_of "$server_pid" VmHWM)
    printf '%-12s %-8s %10.0f %8s %8s %7s %12.0f %6s %9s %9s\n' \
      "$workload" "$path" "$rps" "$(field "$result" p50_ms)" "$(field "$result" p99_ms)" \
      "$(field "$result" errors)" "$lib" "$ratio" "$(mib "$rss_peak")" "$(mib "${hwm:-0}")"
  done
  stop_server
done
