#!/usr/bin/env bash
# The API reference page in a real browser: starts wallet-http --dev on a
# free loopback port, loads /docs in headless Chromium and checks that
#   1. the page rendered every path and operation of /openapi.json (Swagger
#      UI fetched the document and drew its operations, a lock on each that
#      needs a token, and the Authorize button), and
#   2. no request left loopback: the browser resolves no name but 127.0.0.1
#      and sends anything else to a dead loopback proxy, every request the
#      page made in its network log is to the service, and the browser
#      opened no connection and sent no datagram past loopback.
# Installs Debian's chromium when it is missing (as root, with apt-get).
# Exits non-zero with a message saying what failed; bounded in time.
#
# Usage: scripts/check-docs.sh
# Environment: CARGO_TARGET_DIR is honoured; CHECK_DOCS_BUDGET_MS is how
# long (virtual time) the page may take to render, 20000 by default.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every wait is bounded: the service must be up within this many seconds,
# and the browser must finish within this many.
readonly SERVER_START_SECONDS=30
readonly BROWSER_SECONDS=90
# A loopback port where no proxy listens: a request the browser would send
# past loopback fails there at once instead of leaving.
readonly DEAD_PROXY_PORT=1
budget_ms="${CHECK_DOCS_BUDGET_MS:-20000}"
case "$budget_ms" in
  ''|*[!0-9]*) fail_usage=1 ;;
  *) fail_usage="" ;;
esac
target="${CARGO_TARGET_DIR:-target}"

fail() {
  echo "check-docs.sh: $*" >&2
  exit 1
}
[ -z "$fail_usage" ] || fail "CHECK_DOCS_BUDGET_MS must be a number of milliseconds"

browser=""
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then
    browser="$name"
    break
  fi
done
if [ -z "$browser" ]; then
  [ "$(id -u)" = 0 ] || fail "chromium is missing; install it (apt-get install -y chromium) or run as root"
  echo "check-docs.sh: installing chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y chromium >&2; then
    apt-get update >&2
    apt-get install -y chromium >&2
  fi
  browser=chromium
fi
command -v python3 >/dev/null 2>&1 || fail "python3 is needed to read the document and the network log"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "check-docs.sh: building wallet-http" >&2
cargo build -p wallet-http >&2

# Port 0: the service takes a free port and prints its address. Without
# DATABASE_URL it runs on the in-memory store, which is all the page needs.
env -u DATABASE_URL "$target/debug/wallet-http" --dev --bind 127.0.0.1:0 \
  > "$work/server.out" 2> "$work/server.err" &
server_pid=$!
base_url=""
for _ in $(seq 1 $((SERVER_START_SECONDS * 10))); do
  base_url=$(awk -F= '/^export WALLET_URL=/ { print $2 }' "$work/server.out")
  [ -n "$base_url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; fail "wallet-http stopped at start"; }
  sleep 0.1
done
[ -n "$base_url" ] || fail "wallet-http did not print its address within ${SERVER_START_SECONDS}s"
case "$base_url" in
  http://127.0.0.1:*) ;;
  *) fail "wallet-http listens on $base_url, not on 127.0.0.1" ;;
esac

python3 - "$base_url/openapi.json" > "$work/expected.json" <<'EOF'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as reply:
    document = json.load(reply)
operations = [operation for item in document["paths"].values() for operation in item.values()]
json.dump({
    "paths": sorted(document["paths"]),
    "operations": len(operations),
    "secured": sum(1 for operation in operations if operation.get("security")),
}, sys.stdout)
EOF
grep -q '"paths": \["' "$work/expected.json" || fail "/openapi.json lists no paths"

echo "check-docs.sh: loading $base_url/docs in headless $browser" >&2
# Flags: no sandbox (root), no GPU, no QUIC, as little as can be turned off
# of the browser's own traffic (updates, sync, component downloads, the
# autofill server it would ask about the page), a fresh profile, every host
# name but 127.0.0.1 unresolvable, every address that is not loopback (an
# address written as digits needs no name) sent to a proxy on a loopback
# port where nothing listens, and a network log to check.
status=0
timeout --kill-after=5 "$BROWSER_SECONDS" "$browser" \
  --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-default-apps --disable-extensions --no-default-browser-check \
  --disable-domain-reliability --disable-client-side-phishing-detection --no-pings \
  --disable-features=AutofillServerCommunication,Translate,OptimizationHints,MediaRouter \
  --user-data-dir="$work/profile" \
  --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
  --proxy-server="http://127.0.0.1:$DEAD_PROXY_PORT" \
  --log-net-log="$work/net-log.json" \
  --virtual-time-budget="$budget_ms" \
  --dump-dom "$base_url/docs" > "$work/dom.html" 2> "$work/browser.err" || status=$?
if [ "$status" -ne 0 ]; then
  tail -n 20 "$work/browser.err" >&2
  fail "$browser failed (exit $status) loading $base_url/docs"
fi
[ -s "$work/dom.html" ] || fail "$browser rendered an empty page"

python3 - "$work/expected.json" "$work/dom.html" "$work/net-log.json" "$base_url" <<'EOF'
import html, json, re, sys

expected_file, dom_file, log_file, base_url = sys.argv[1:5]
expected = json.load(open(expected_file))
problems = []

# 1. The page shows every path and operation of the document. Swagger UI
# keeps each operation's path whole in a data-path attribute (its visible
# text has word-break elements inside), marks each operation that needs a
# token with a lock button, and has the Authorize button when the document
# declares a security scheme.
paths = expected["paths"]
dom = html.unescape(open(dom_file, encoding="utf-8", errors="replace").read())
rendered = set(re.findall(r'data-path="([^"]*)"', dom))
missing = [path for path in paths if path not in rendered]
if missing:
    problems.append("the page does not show %d of %d paths of /openapi.json: %s"
                    % (len(missing), len(paths), ", ".join(missing)))
operations = len(re.findall(r'class="opblock-summary-method"', dom))
if operations != expected["operations"]:
    problems.append("the page shows %d operations, the document has %d"
                    % (operations, expected["operations"]))
locks = len(re.findall(r'class="authorization__btn', dom))
if locks != expected["secured"]:
    problems.append("the page marks %d operations as needing a token, the document %d"
                    % (locks, expected["secured"]))
if not re.search(r'<button class="btn authorize', dom):
    problems.append("the page has no Authorize button")

# 2. The network log. A log cut short (a browser stopped by the timeout) is
# closed by hand, so that what it holds still counts.
text = open(log_file, encoding="utf-8", errors="replace").read()
try:
    log = json.loads(text)
except ValueError:
    log = json.loads(text.rstrip().rstrip(",") + "]}")
names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
events = [(names.get(e["type"], "?"), e.get("params") or {}, e["source"]["id"])
          for e in log["events"]]

def loopback(address):
    host = address.rsplit(":", 1)[0].strip("[]")
    return host == "::1" or host.startswith("127.")

# 2a. Every request the page made (the page is its initiator or its top
# frame) went to the service.
page_site = re.sub(r":\d+$", "", base_url)
page_requests = [params["url"] for name, params, _ in events
                 if name == "URL_REQUEST_START_JOB" and "url" in params
                 and (params.get("initiator") == base_url
                      or str(params.get("network_isolation_key", "")).startswith(page_site + " "))]
foreign = sorted({url for url in page_requests if not url.startswith(base_url + "/")})
if foreign:
    problems.append("the page asked for addresses that are not the service: " + ", ".join(foreign))
if base_url + "/openapi.json" not in page_requests:
    problems.append("the page did not fetch /openapi.json")

# 2b. Nothing the browser did went past loopback: every TCP connection it
# attempted, and every datagram it sent, was to a loopback address. The
# browser may still ask for its own update and sign-in checks, which the
# resolver rules leave unresolved, and may connect a UDP socket to a public
# address to learn its local address, which sends nothing.
udp_peer = {}
leaks = set()
for name, params, source in events:
    address = params.get("address") or params.get("remote_address")
    if name in ("UDP_CONNECT", "SOCKET_CONNECT") and address:
        udp_peer[source] = address
    elif name in ("TCP_CONNECT_ATTEMPT", "TCP_CONNECT") and address and not loopback(address):
        leaks.add("TCP to " + address)
    elif name == "UDP_BYTES_SENT":
        peer = address or udp_peer.get(source, "an unknown address")
        if not loopback(peer):
            leaks.add("UDP to " + peer)
if leaks:
    problems.append("traffic left loopback: " + ", ".join(sorted(leaks)))

if problems:
    for problem in problems:
        print("check-docs.sh: " + problem, file=sys.stderr)
    sys.exit(1)
print("check-docs.sh: /docs rendered all %d paths and %d operations of the document (%d with a"
      " token, and Authorize); the page made %d requests, all to the service, and no traffic"
      " left loopback" % (len(paths), operations, locks, len(page_requests)))
EOF
