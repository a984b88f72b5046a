#!/usr/bin/env bash
# Throughput of one wallet-http instance against two on the same database,
# and how often the batching writers' kept wallets go stale when another
# instance changes them.
#
# Each round, for 1 and then 2 instances: a scratch database of the
# DATABASE_URL server; the instances (release build, development mode on
# 127.0.0.1, batching on with its default kept wallets); 10,000 wallets
# made through the first; then two workloads of deposits, `spread` (a
# random one of the 10,000 wallets) and `hot` (wallet 0), each driven by
# wrk (scripts/bench-http.lua) for the given seconds. The connections are
# split evenly over the instances, one wrk per instance, all at once (the
# part of a load balancer that spreads requests); the requests per second
# are summed. Around each workload every instance's /metrics is read: the
# batches it committed (`wallet_batch_size_count`), those run again
# because a kept wallet had been changed elsewhere
# (`wallet_batch_stale_total`), and the wallets taken from its kept copies
# (`wallet_batch_kept_wallets_total`).
#
# One line per round, instances and workload, then the medians over the
# rounds with the ratio of two instances to one.
#
# Usage: scripts/bench-scale.sh [--connections N] [--seconds S] [--rounds R]
# Needs wrk (apt-get install wrk). DATABASE_URL as for scripts/bench.sh;
# CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=16
seconds=10
rounds=3
wallets=10000
usage="usage: scripts/bench-scale.sh [--connections N] [--seconds S] [--rounds R]"
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
for value in "$connections" "$seconds" "$rounds"; do
  case "$value" in
    ''|*[!0-9]*) echo "$usage" >&2; exit 2 ;;
  esac
done
if [ "$connections" -lt 2 ] || [ "$connections" -gt 512 ] || [ "$seconds" -lt 1 ] \
  || [ "$seconds" -gt 600 ] || [ "$rounds" -lt 1 ] || [ "$rounds" -gt 20 ]; then
  echo "bench-scale.sh: 2 to 512 connections, 1 to 600 seconds, 1 to 20 rounds" >&2
  exit 2
fi
command -v wrk >/dev/null 2>&1 || { echo "bench-scale.sh: wrk is needed (apt-get install wrk)" >&2; exit 1; }

eval "$(scripts/ensure-postgres.sh)"
admin_url="$DATABASE_URL"
database="wallet_bench_scale"
database_url="${admin_url%/*}/$database"
target="${CARGO_TARGET_DIR:-target}"
work=$(mktemp -d)
pids=()
urls=()
tokens=()

stop_instances() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  pids=()
  urls=()
  tokens=()
}
cleanup() {
  stop_instances
  psql "$admin_url" -qc "drop database if exists $database" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "bench-scale.sh: building wallet-http (release)" >&2
cargo build --release -p wallet-http >&2

# Starts instance number $1 on the database; appends its pid, URL and
# Service token.
start_instance() {
  local out="$work/instance-$1.out" pid url="" token=""
  DATABASE_URL="$database_url" RUST_LOG=warn LOG_FORMAT=json \
    WALLET_DATABASE_MAX_CONNECTIONS=$(( connections + 4 )) \
    "$target/release/wallet-http" --dev --migrate --bind 127.0.0.1:0 > "$out" 2> "$work/instance-$1.err" &
  pid=$!
  for _ in $(seq 1 100); do
    token=$(awk -F= '/^export SERVICE_TOKEN=/ { print $2 }' "$out")
    url=$(awk -F= '/^export WALLET_URL=/ { print $2 }' "$out")
    [ -n "$token" ] && [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/instance-$1.err" >&2; exit 1; }
    sleep 0.2
  done
  [ -n "$token" ] || { echo "bench-scale.sh: instance $1 printed no token" >&2; exit 1; }
  pids+=("$pid")
  urls+=("$url")
  tokens+=("$token")
}

# The sum over the instances of an unlabelled counter on /metrics.
metric_sum() { # name
  local url total=0 value
  for url in "${urls[@]}"; do
    value=$(curl -sf "$url/metrics" | awk -v name="$1" '$1 == name { print $2 }')
    total=$(( total + ${value:-0} ))
  done
  echo "$total"
}
field() { # line name
  echo "$1" | tr ' ' '\n' | awk -F= -v name="$2" '$1 == name { print $2 }'
}

# Runs one wrk per instance at once, each with its share of the
# connections; prints the summed requests/s and errors.
drive() { # mode duration
  local i share=$(( connections / ${#urls[@]} ))
  local wrk_pids=()
  for i in "${!urls[@]}"; do
    wrk -t 1 -c "$share" -d "${2}s" --timeout 10s -s scripts/bench-http.lua "${urls[$i]}" \
      -- "$1" "$wallets" "${tokens[$i]}" "$prefix" 1 > "$work/wrk-$i.out" 2>&1 &
    wrk_pids+=($!)
  done
  for i in "${!wrk_pids[@]}"; do wait "${wrk_pids[$i]}" || true; done
  local rps=0 errors=0 line
  for i in "${!urls[@]}"; do
    line=$(grep '^result ' "$work/wrk-$i.out" || echo "result requests_per_s=0 errors=-1")
    rps=$(awk -v a="$rps" -v b="$(field "$line" requests_per_s)" 'BEGIN { printf "%.1f", a + b }')
    errors=$(( errors + $(field "$line" errors) ))
  done
  echo "$rps $errors"
}

# Makes the wallets through the first instance (wrk's `create` mode, then
# one by one whatever wrk left out: it may drop a thread's first request).
create_wallets() {
  local url="${urls[0]}" token="${tokens[0]}" wrk_pid user made last=-1 still=0
  wrk -t 1 -c 8 -d 300s --timeout 10s -s scripts/bench-http.lua "$url" \
    -- create "$wallets" "$token" "$prefix" 1 > "$work/create.out" 2>&1 &
  wrk_pid=$!
  # wrk runs its whole duration even when its thread has stopped: stop it
  # once every wallet is there, or once the count has not moved for 2 s.
  while kill -0 "$wrk_pid" 2>/dev/null; do
    made=$(wallets_made)
    if [ "$made" -eq "$last" ]; then still=$(( still + 1 )); else still=0; fi
    last=$made
    if [ "$made" -ge "$wallets" ] || { [ "$made" -gt 0 ] && [ "$still" -ge 4 ]; }; then kill -INT "$wrk_pid" 2>/dev/null || true; fi
    sleep 0.5
  done
  wait "$wrk_pid" || true
  for user in $(psql "$database_url" -Atqc "
      select u from (select format('%s-0000-7000-8000-%s', '$prefix', lpad(to_hex(n), 12, '0')) as u
                     from generate_series(0, $wallets - 1) n) ids
      where not exists (select 1 from wallets w where w.user_id = ids.u::uuid)"); do
    curl -sf -o /dev/null -X POST "$url/api/v1/wallets" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d "{\"userId\": \"$user\"}"
  done
  [ "$(wallets_made)" -eq "$wallets" ] || { echo "bench-scale.sh: the wallets could not be made" >&2; exit 1; }
}
wallets_made() { psql "$database_url" -Atqc "select count(*) from wallets" 2>/dev/null || echo 0; }

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-6s %-9s %-7s %10s %7s %9s %7s %8s %9s\n' \
  round instances workload http_rps errors batches stale stale_pct kept
: > "$work/rows"
for round in $(seq 1 "$rounds"); do
  for instances in 1 2; do
    psql "$admin_url" -qc "drop database if exists $database" >/dev/null 2>&1 || true
    psql "$admin_url" -qc "create database $database" >/dev/null
    prefix=$(printf '%08x' $(( (RANDOM << 16) | RANDOM )))
    start_instance 1
    # The second starts once the first has migrated the database.
    [ "$instances" -eq 2 ] && start_instance 2
    create_wallets
    for mode in spread hot; do
      batches_before=$(metric_sum wallet_batch_size_count)
      stale_before=$(metric_sum wallet_batch_stale_total)
      kept_before=$(metric_sum wallet_batch_kept_wallets_total)
      read -r rps errors <<< "$(drive "$mode" "$seconds")"
      batches=$(( $(metric_sum wallet_batch_size_count) - batches_before ))
      stale=$(( $(metric_sum wallet_batch_stale_total) - stale_before ))
      kept=$(( $(metric_sum wallet_batch_kept_wallets_total) - kept_before ))
      pct=$(awk -v s="$stale" -v b="$batches" 'BEGIN { if (b > 0) printf "%.2f", 100 * s / b; else print 0 }')
      printf '%-6s %-9s %-7s %10.0f %7s %9s %7s %8s %9s\n' \
        "$round" "$instances" "$mode" "$rps" "$errors" "$batches" "$stale" "$pct" "$kept"
      echo "$instances $mode $rps $pct" >> "$work/rows"
    done
    stop_instances
  done
done

echo
echo "medians over $rounds round(s), $connections connections, ${seconds}s per workload:"
printf '%-7s %12s %12s %7s %14s %14s\n' workload rps_1 rps_2 ratio stale_pct_1 stale_pct_2
for mode in spread hot; do
  one=$(awk -v m="$mode" '$1 == 1 && $2 == m { print $3 }' "$work/rows" | median)
  two=$(awk -v m="$mode" '$1 == 2 && $2 == m { print $3 }' "$work/rows" | median)
  stale_one=$(awk -v m="$mode" '$1 == 1 && $2 == m { print $4 }' "$work/rows" | median)
  stale_two=$(awk -v m="$mode" '$1 == 2 && $2 == m { print $4 }' "$work/rows" | median)
  ratio=$(awk -v a="$two" -v b="$one" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  printf '%-7s %12.0f %12.0f %7s %14s %14s\n' "$mode" "$one" "$two" "$ratio" "$stale_one" "$stale_two"
done
