#!/usr/bin/env bash
# Throughput of wallet-http on loopback against the library's own figure on
# the same workload, measured in the same run, with the machine's HTTP
# ceiling, where a request's time goes, and the service's memory.
#
# Each round:
# 0. the ceiling: wrk on `/health/live` (no token, no store, no script)
#    against the round's first service, with the same connections: what
#    this machine's HTTP stack and wrk reach when a request does nothing;
# then, for each write path (one transaction per command, then the
# batching writer), and for each build (this one, then the `--baseline`
# one when given, alternately):
# 1. the library: the load generator drives wallet-pg directly (workloads
#    `spread`: deposits over 10,000 wallets, and `hot-deposit`: deposits
#    into one wallet) on a scratch database;
# 2. the service: wallet-http (release build, development mode on
#    127.0.0.1, a scratch database of the same server, WALLET_BATCH on or
#    off) is given the same deposits by wrk (scripts/bench-http.lua) with
#    the same number of connections; its resident memory is sampled from
#    /proc/<pid>/status while it runs (VmRSS, largest seen) and read at the
#    end (VmHWM, the peak); its stage timings are read from /metrics
#    before and after the run (`wallet_http_stage_seconds`,
#    `wallet_batch_stage_seconds_total`): the mean time per request in
#    each stage.
# Each line gives requests/s, p50, p99, errors, the library's ops/s and the
# ratio, and the memory; each `stages` line the mean milliseconds per
# command of: `read` (token, path, body, command built), `execute` (the
# application service: validation and the store), `answer` (the response
# rendered), and inside the store: `queued` (until its writer took it),
# `begin`, `lock`, `apply`, `write`, `commit` (each the time of the
# command's batch in that step, which every command of the batch waits
# through) and `store` (from queueing to the answer received); `batch` is
# the mean commands per batch; each `library` line the load generator's
# own stages and CPU per operation (its clients, the service and the store
# code in one process); each `cpu` line the CPU time per request of the
# service process and of every PostgreSQL process of the machine during
# the run (`-` when the server runs elsewhere), beside the load
# generator's per operation (wrk's own is in the `--perf` shares). With
# several rounds it ends with the medians (the ratio is the median of the
# rounds').
#
# Usage: scripts/bench-http.sh [--connections N] [--seconds S] [--rounds R]
#          [--path single|batched|both] [--baseline DIR] [--perf DIR]
#   --baseline DIR  also measure the build whose `wallet-http` and
#                   `loadgen` are in DIR, alternately with this one
#   --perf DIR      record a CPU profile of the whole machine (perf, from
#                   linux-perf) during each service run into DIR, and print
#                   the share of CPU time of each process
# Needs wrk (apt-get install wrk). Environment: DATABASE_URL as for
# scripts/bench.sh; CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=16
seconds=10
rounds=1
paths="single batched"
wallets=10000
baseline=""
perf_dir=""
usage="usage: scripts/bench-http.sh [--connections N] [--seconds S] [--rounds R] [--path single|batched|both] [--baseline DIR] [--perf DIR]"
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --path)
      case "$2" in
        single|batched) paths="$2" ;;
        both) paths="single batched" ;;
        *) echo "$usage" >&2; exit 2 ;;
      esac
      shift 2 ;;
    --baseline) baseline="$2"; shift 2 ;;
    --perf) perf_dir="$2"; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
for value in "$connections" "$seconds" "$rounds"; do
  case "$value" in
    ''|*[!0-9]*) echo "$usage" >&2; exit 2 ;;
  esac
done
if [ "$connections" -lt 1 ] || [ "$connections" -gt 512 ] || [ "$seconds" -lt 1 ] || [ "$seconds" -gt 600 ] \
  || [ "$rounds" -lt 1 ] || [ "$rounds" -gt 20 ]; then
  echo "bench-http.sh: 1 to 512 connections, 1 to 600 seconds, 1 to 20 rounds" >&2
  exit 2
fi
command -v wrk >/dev/null 2>&1 || { echo "bench-http.sh: wrk is needed (apt-get install wrk)" >&2; exit 1; }
if [ -n "$baseline" ] && { [ ! -x "$baseline/wallet-http" ] || [ ! -x "$baseline/loadgen" ]; }; then
  echo "bench-http.sh: --baseline $baseline needs wallet-http and loadgen in it" >&2
  exit 2
fi
if [ -n "$perf_dir" ]; then
  command -v perf >/dev/null 2>&1 || { echo "bench-http.sh: --perf needs perf (apt-get install linux-perf)" >&2; exit 1; }
  mkdir -p "$perf_dir"
fi

eval "$(scripts/ensure-postgres.sh)"
admin_url="$DATABASE_URL"
url_for() { echo "${admin_url%/*}/$1"; }
# Databases of this run only (another run on the same server keeps its own).
library_db="wallet_bench_http_library_$$"
service_db="wallet_bench_http_service_$$"
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
builds="current"
[ -n "$baseline" ] && builds="current baseline"
binary() { # build name
  if [ "$1" = baseline ]; then echo "$baseline/$2"
  elif [ "$2" = loadgen ]; then echo "$target/release/examples/loadgen"
  else echo "$target/release/wallet-http"; fi
}

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

# The stage sums of /metrics, one `name value` a line.
stage_sums() {
  curl -sf "$base_url/metrics" | awk '
    /^wallet_http_stage_seconds_sum/ { match($0, /stage="[a-z]+"/); s = substr($0, RSTART + 7, RLENGTH - 8); print s, $2 }
    /^wallet_http_stage_seconds_count\{stage="execute"/ { print "requests", $2 }
    /^wallet_batch_stage_seconds_total/ { match($0, /stage="[a-z]+"/); s = substr($0, RSTART + 7, RLENGTH - 8); print s, $2 }
    /^wallet_batch_size_sum/ { print "commands", $2 }
    /^wallet_batch_size_count/ { print "batches", $2 }'
}
# The mean ms per request of each stage between two `stage_sums`.
stage_line() { # before after
  awk 'NR == FNR { before[$1] = $2; next } { after[$1] = $2 }
    END {
      n = after["requests"] - before["requests"]
      if (n <= 0) { print "no requests"; exit }
      line = ""
      count = split("read execute answer queued begin lock apply write commit store", order, " ")
      for (i = 1; i <= count; i++) {
        s = order[i]
        if (s in after) line = line sprintf(" %s=%.3f", s, (after[s] - before[s]) * 1000 / n)
      }
      b = after["batches"] - before["batches"]
      if (b > 0) line = line sprintf(" batch=%.1f", (after["commands"] - before["commands"]) / b)
      print substr(line, 2)
    }' "$1" "$2"
}

# The CPU time (user and system, clock ticks) the processes have used so
# far: a process that ended in between is not counted.
clock_ticks=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_ticks() { # pid...
  local total=0 pid ticks
  for pid in "$@"; do
    ticks=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$(( total + ${ticks:-0} ))
  done
  echo "$total"
}
per_request() { # ticks requests -> microseconds of CPU per request
  awk -v t="$1" -v n="$2" -v hz="$clock_ticks" 'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n; else print "?" }'
}
# The load generator's stages (mean ms per command), as the service's are printed.
library_stages() { # json line
  echo "$1" | sed -nE 's/.*"stages_ms":\{([^}]*)\}.*/\1/p' | tr -d '"' | tr ':,' '= '
}

# A CPU profile of the whole machine while `seconds` pass; prints each
# process's share of the samples.
profile_start() { # name
  perf record -a -g -F 499 -o "$perf_dir/$1.data" -- sleep "$seconds" >/dev/null 2>&1 &
  perf_pid=$!
}
profile_report() { # name
  wait "$perf_pid" || true
  perf report -i "$perf_dir/$1.data" --no-children --sort comm --stdio 2>/dev/null \
    | awk '/^ +[0-9.]+%/ { printf "%s=%s ", $2, $1 } END { print "" }' > "$perf_dir/$1.comm"
  echo "cpu $1: $(head -c 400 "$perf_dir/$1.comm")"
}

start_server() { # build batch
  recreate "$service_db"
  DATABASE_URL="$(url_for "$service_db")" WALLET_BATCH="$2" RUST_LOG=warn LOG_FORMAT=json \
    WALLET_DATABASE_MAX_CONNECTIONS=$(( connections + 4 )) \
    "$(binary "$1" wallet-http)" --dev --migrate --bind 127.0.0.1:0 > "$work/server.out" 2> "$work/server.err" &
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
}

# The wallets: created through the API, not timed (the create run stops
# when its share is done; the duration is only an upper bound).
create_wallets() {
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
}

# wrk on a route that does nothing, as fast as the machine serves HTTP.
measure_ceiling() { # round
  local out rps
  out=$(wrk -t 2 -c "$connections" -d "${seconds}s" --latency "$base_url/health/live" 2>&1)
  rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
  echo "ceiling round=$1 route=/health/live connections=$connections http_rps=${rps:-0}"
  printf 'ceiling\t%s\t-\t-\t%s\t0\t0\t0\t0\t0\t0\t0\n' "$1" "${rps:-0}" >> "$work/results"
}

: > "$work/results"
ceiling_round=""
printf '%-5s %-8s %-12s %-8s %10s %8s %8s %7s %12s %6s %9s %9s\n' \
  round build workload path "http_rps" "p50_ms" "p99_ms" errors "library_ops" ratio "rss_MiB" "hwm_MiB"
for round in $(seq 1 "$rounds"); do
  for path in $paths; do
    batch=false
    loadgen_path=single
    if [ "$path" = batched ]; then batch=true; loadgen_path=batched; fi
    for build in $builds; do
      # 1. The library on the same workloads, with the pool settings the
      #    service uses (a liveness check per acquire).
      recreate "$library_db"
      declare -A library=() library_cpu=()
      for workload in spread hot-deposit; do
        line=$("$(binary "$build" loadgen)" --database-url "$(url_for "$library_db")" \
          --workload "$workload" --path "$loadgen_path" --clients "$connections" \
          --seconds "$seconds" --test-before-acquire --json)
        library[$workload]=$(echo "$line" | sed -E 's/.*"ops_per_s":([0-9.]+).*/\1/')
        library_cpu[$workload]=$(echo "$line" | sed -nE 's/.*"cpu_us_per_op":([0-9.]+).*/\1/p')
        echo "library round=$round build=$build workload=$workload path=$path" \
          "cpu_us_per_op=${library_cpu[$workload]:-?} $(library_stages "$line")"
      done

      # 2. The service.
      start_server "$build" "$batch"
      if [ "$ceiling_round" != "$round" ]; then
        measure_ceiling "$round"
        ceiling_round=$round
      fi
      create_wallets
      for workload in spread hot-deposit; do
        mode=spread
        [ "$workload" = hot-deposit ] && mode=hot
        stage_sums > "$work/before"
        [ -z "$perf_dir" ] || profile_start "r$round-$build-$path-$workload"
        service_ticks=$(cpu_ticks "$server_pid")
        postgres_ticks=$(cpu_ticks $(pgrep -x postgres))
        run_wrk "$mode" "$wallets" "$seconds"
        service_ticks=$(( $(cpu_ticks "$server_pid") - service_ticks ))
        postgres_ticks=$(( $(cpu_ticks $(pgrep -x postgres)) - postgres_ticks ))
        stage_sums > "$work/after"
        rps=$(field "$result" requests_per_s)
        lib=${library[$workload]}
        ratio=$(awk -v a="$rps" -v b="$lib" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "0" }')
        hwm=$(kib_of "$server_pid" VmHWM)
        p50=$(field "$result" p50_ms)
        p99=$(field "$result" p99_ms)
        errors=$(field "$result" errors)
        printf '%-5s %-8s %-12s %-8s %10.0f %8s %8s %7s %12.0f %6s %9s %9s\n' \
          "$round" "$build" "$workload" "$path" "$rps" "$p50" "$p99" "$errors" "$lib" "$ratio" \
          "$(mib "$rss_peak")" "$(mib "${hwm:-0}")"
        echo "stages round=$round build=$build workload=$workload path=$path $(stage_line "$work/before" "$work/after")"
        requests=$(field "$result" requests)
        echo "cpu round=$round build=$build workload=$workload path=$path" \
          "service_us_per_request=$(per_request "$service_ticks" "$requests")" \
          "postgres_us_per_request=$( [ -n "$(pgrep -x postgres)" ] && per_request "$postgres_ticks" "$requests" || echo "-")" \
          "library_us_per_op=${library_cpu[$workload]:-?}"
        [ -z "$perf_dir" ] || profile_report "r$round-$build-$path-$workload"
        printf 'run\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$build" "$workload" "$path" \
          "$rps" "$p50" "$p99" "$errors" "$lib" "$ratio" "$(mib "$rss_peak")" "$(mib "${hwm:-0}")" >> "$work/results"
      done
      stop_server
    done
  done
done

if [ "$rounds" -gt 1 ]; then
  echo
  echo "medians of $rounds rounds (ratio: the median of the rounds' ratios, with their range):"
  awk -F'\t' '
    function median(list,    n, values, i, j, t) {
      n = split(list, values, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && values[j - 1] + 0 > values[j] + 0; j--) {
        t = values[j]; values[j] = values[j - 1]; values[j - 1] = t
      }
      lo = values[1]; hi = values[n]
      return n % 2 ? values[(n + 1) / 2] : (values[n / 2] + values[n / 2 + 1]) / 2
    }
    $1 == "ceiling" { ceiling = ceiling " " $5; next }
    {
      key = $3 " " $4 " " $5
      if (!(key in seen)) { seen[key] = 1; keys[++count] = key }
      rps[key] = rps[key] " " $6; p50[key] = p50[key] " " $7; p99[key] = p99[key] " " $8
      errors[key] += $9; lib[key] = lib[key] " " $10; ratio[key] = ratio[key] " " $11
      rss[key] = rss[key] " " $12; hwm[key] = hwm[key] " " $13
    }
    END {
      c = median(ceiling)
      printf "ceiling /health/live http_rps=%.0f (%.0f to %.0f)\n", c, lo, hi
      for (k = 1; k <= count; k++) {
        key = keys[k]; split(key, part, " ")
        r = median(ratio[key]); rlo = lo; rhi = hi
        h = median(rps[key])
        printf "%-8s %-12s %-8s http_rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d library_ops=%.0f ratio=%.2f (%.2f to %.2f) of_ceiling=%.2f rss_MiB=%.1f hwm_MiB=%.1f\n", \
          part[1], part[2], part[3], h, median(p50[key]), median(p99[key]), errors[key], \
          median(lib[key]), r, rlo, rhi, (c > 0 ? h / c : 0), median(rss[key]), median(hwm[key])
      }
    }' "$work/results"
fi
