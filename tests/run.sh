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
if ! command -v s3s-fs >/dev/null; then
  # The S3-compatible server the pg-s3 stack talks to (real SigV4, multipart, ranges).
  cargo install s3s-fs --version 0.14.1 --features binary --locked --quiet
fi

log "starting PostgreSQL (the pg-s3 stack creates a fresh database per test server)"
if ! command -v pg_ctlcluster >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql postgresql-client
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
fi
psql -h 127.0.0.1 -U postgres -d postgres -qtc 'SELECT 1' >/dev/null

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

log "building"
cargo test --no-run --quiet 2>&1 | tail -n 3

log "running tests on the sqlite-fs stack (embedded SQLite + filesystem)"
out=$(mktemp)
set +e
BERTH_TEST_STACK=sqlite-fs cargo test --lib --bins --tests --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-4}" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
log "running the server suites again on the pg-s3 stack (PostgreSQL + S3)"
BERTH_TEST_STACK=pg-s3 cargo test --tests --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-4}" 2>&1 | tee -a "$out"
status2=${PIPESTATUS[0]}
set -e
# One closing line summing every test binary's "test result:" line of both runs.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, s }' "$out"
rm -f "$out"
[ "$status" -eq 0 ] && [ "$status2" -eq 0 ]
