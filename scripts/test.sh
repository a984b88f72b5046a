#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (against a real
# PostgreSQL), a build of the fuzz targets, and the OpenAPI document
# fuzzed against the service. Sets up what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/ensure-postgres.sh)"
echo "test.sh: DATABASE_URL=$DATABASE_URL"

# The relay's tests start nats-server processes of their own (never the
# machine's); without the binary they fail, so install it when missing.
NATS_SERVER_BIN="${NATS_SERVER_BIN:-/usr/sbin/nats-server}"
if [ ! -x "$NATS_SERVER_BIN" ]; then
    echo "test.sh: $NATS_SERVER_BIN is missing; installing Debian's nats-server"
    if ! { apt-get install -y nats-server || { apt-get update && apt-get install -y nats-server; }; }; then
        echo "test.sh: cannot install nats-server; the relay tests cannot run" >&2
        exit 1
    fi
fi
"$NATS_SERVER_BIN" --version
export NATS_SERVER_BIN

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
# Every test, the bank test among them (wallet-http/tests/bank: two
# instances under faults for 60 s of load, then its checker and the audit).
cargo test --workspace --all-features --no-fail-fast
# No normal build carries test code: wallet-core's `testing` module sits
# behind its `testing` feature, which dependents enable in dev-dependencies
# only. The library builds without it, and no normal edge turns it on.
cargo check -p wallet-core --lib
if cargo tree --workspace -e normal,build,features -i wallet-core | grep -q 'feature "testing"'; then
  echo "test.sh: a normal build enables wallet-core's \`testing\` feature" >&2
  exit 1
fi
# The fuzz crate is outside the workspace; make sure its target still builds.
cargo check --manifest-path fuzz/Cargo.toml --bins
# The API reference page in headless Chromium (installed if missing): every
# route of the document shown, nothing fetched past loopback.
scripts/check-docs.sh
# The OpenAPI document against the running service (a few minutes).
scripts/fuzz-api.sh
