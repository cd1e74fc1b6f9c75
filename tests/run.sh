#!/usr/bin/env bash
# Runs Berth's whole test suite on a fresh Debian 12 machine: installs the real clients and
# servers the tests use (only what is missing), starts the services they need, checks formatting
# and lints, then runs every Rust test once and prints one summary line at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth-target}"
export CARGO_TERM_COLOR=never
log() { printf '\n==> %s\n' "$*"; }

log "installing test dependencies (skipped when present)"
bash tests/install-clients.sh

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

log "building"
cargo test --no-run --quiet 2>&1 | tail -n 3

log "running tests"
out=$(mktemp)
set +e
cargo test --all-targets --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-4}" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# One closing line summing every test binary's "test result:" line.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, s }' "$out"
rm -f "$out"
exit "$status"
