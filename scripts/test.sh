#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (against a real
# PostgreSQL), and a build of the fuzz targets. Sets up what it needs.
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
cargo test --workspace --all-features --no-fail-fast
# The fuzz crate is outside the workspace; make sure its target still builds.
cargo check --manifest-path fuzz/Cargo.toml --bins
