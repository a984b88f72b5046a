#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (against a real
# PostgreSQL), a build of the fuzz targets, and the OpenAPI document
# fuzzed against the service. Sets up what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/ensure-postgres.sh)"
echo "test.sh: DATABASE_URL=$DATABASE_URL"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --all-features --no-fail-fast
# The fuzz crate is outside the workspace; make sure its target still builds.
cargo check --manifest-path fuzz/Cargo.toml --bins
# The OpenAPI document against the running service (a few minutes).
scripts/fuzz-api.sh
