#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (against a real
# PostgreSQL), and a build of the fuzz targets. Sets up what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/ensure-postgres.sh)"
echo "test.sh: DATABASE_URL=$DATABASE_URL"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --all-features --no-fail-fast
# The fuzz crate is outside the workspace; make sure its target still builds.
cargo check --manifest-path fuzz/Cargo.toml --bins
# The API reference page in headless Chromium (installed if missing): every
# route of the document shown, nothing fetched past loopback.
scripts/check-docs.sh
