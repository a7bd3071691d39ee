#!/usr/bin/env bash
# The smallest kubebridge: `cargo build --no-default-features` gives a binary with the
# stdout sink only (no librdkafka, no cmake, no async-nats, no simulator). This builds it
# in a target dir of its own (so it never replaces the full binary the tests run), checks
# its dependency tree, streams pods from a simulator served by the full binary, and checks
# that a sink URI it was built without is refused with one clear line and exit code 2.
# Usage: CARGO_TARGET_DIR=... ./tests/minimal-build.sh (tests/run.sh calls it after the
# tests, when the full debug binary exists).
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
full="$target/debug/kubebridge"
min_target="$target/minimal"
fail() { echo "minimal-build: $*" >&2; exit 1; }

[ -x "$full" ] || cargo build -p kubebridge --locked
CARGO_TARGET_DIR="$min_target" cargo build -p kubebridge --no-default-features --locked
min="$min_target/debug/kubebridge"

if cargo tree -p kubebridge --no-default-features -e normal --locked --prefix none \
  | grep -E '^(rdkafka|rdkafka-sys|async-nats|kubebridge-sim) '; then
  fail "the --no-default-features build still depends on the crates above"
fi

tmp="$(mktemp -d)"
"$full" sim --listen 127.0.0.1:0 --namespaces 2 --pods 5 \
  --write-kubeconfig "$tmp/kubeconfig" 2>"$tmp/sim.log" &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 1 100); do [ -f "$tmp/kubeconfig" ] && break; sleep 0.1; done
[ -f "$tmp/kubeconfig" ] || fail "the simulator wrote no kubeconfig: $(cat "$tmp/sim.log")"

# Streams: every pod of the simulator, one JSON envelope a line.
timeout 60 "$min" watch pods -A --once --kubeconfig "$tmp/kubeconfig" >"$tmp/out.jsonl" \
  || fail "watch --once failed"
added="$(grep -c '"type":"ADDED"' "$tmp/out.jsonl" || true)"
[ "$added" -ge 5 ] || fail "expected at least 5 ADDED pods (the simulator seeds 5) on stdout, got $added: $(head -c 400 "$tmp/out.jsonl")"
python3 - "$tmp/out.jsonl" <<'EOF' || fail "stdout is not JSON lines of envelopes"
import json, sys
for line in open(sys.argv[1]):
    n = json.loads(line)
    assert n["resource"]["resource"] == "pods" and n["object"]["kind"] == "Pod", n
EOF

# A sink this binary was built without: one line naming the missing feature, exit 2.
set +e
timeout 60 "$min" watch pods -A --once --kubeconfig "$tmp/kubeconfig" \
  --sink kafka://127.0.0.1:9/topic >/dev/null 2>"$tmp/err.txt"
code=$?
set -e
[ "$code" = 2 ] || fail "a kafka:// sink in a build without Kafka exited $code, not 2: $(cat "$tmp/err.txt")"
[ "$(wc -l <"$tmp/err.txt")" = 1 ] || fail "expected one line on stderr, got: $(cat "$tmp/err.txt")"
grep -q 'feature' "$tmp/err.txt" || fail "the error does not name the cargo feature: $(cat "$tmp/err.txt")"

echo "minimal-build: stdout-only binary streamed $added pods; kafka:// refused: $(cat "$tmp/err.txt")" >&2
