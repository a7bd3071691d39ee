#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs
# formatting and lint checks, unit tests, the binary against the simulated API server,
# and kubectl against the simulator. Usage: ./tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

# --- system packages -----------------------------------------------------------
# Build tools for crates with C parts. kubectl is part of the machine image; the
# kubectl fidelity test fails (not skips) without it unless KUBEBRIDGE_SKIP_KUBECTL=1.
need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  else
    echo "tests/run.sh: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi
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

log "cargo test"
cargo test --workspace --all-targets --locked
