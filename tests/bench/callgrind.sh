#!/usr/bin/env bash
# Instruction counts of `kubebridge watch pods -A` on the replay feed, under callgrind:
# repeatable on a noisy shared machine, where wall-clock rates are not. Prints the total
# instructions per change and the functions that cost the most.
#
#   tests/bench/callgrind.sh [EVENTS] [LISTED]      (defaults 20000 and 1000)
#
# With EVENTS=0 it counts an initial sync: `tests/bench/callgrind.sh 0 10000` lists 10 000
# pods (with gzip, as kubebridge asks) and prints the instructions per pod, from the
# LIST's decode to the last line on stdout.
#
# Needs a release build (`cargo build --release`) and valgrind. The replay server runs
# natively; only kubebridge runs under callgrind. Output: $OUT (default
# /tmp/kubebridge.callgrind).
set -euo pipefail
events=${1:-20000}
listed=${2:-1000}
out=${OUT:-/tmp/kubebridge.callgrind}
bin=${KUBEBRIDGE_BIN:-${CARGO_TARGET_DIR:-target}/release/kubebridge}
dir=$(mktemp -d)
trap 'kill $sim 2>/dev/null || true; rm -rf "$dir"' EXIT

"$bin" sim --listen 127.0.0.1:0 --namespaces 50 --replay "$listed" --replay-events "$events" \
  --write-kubeconfig "$dir/kubeconfig" 2>"$dir/sim.log" &
sim=$!
for _ in $(seq 600); do [[ -s $dir/kubeconfig ]] && break; sleep 0.1; done

# kubebridge writes one line per listed pod, then one per event; stop it (SIGINT: it
# delivers what is queued and exits 0, so callgrind writes its counts) after the last.
mkfifo "$dir/out"
valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" watch pods -A \
  --kubeconfig "$dir/kubeconfig" >"$dir/out" 2>"$dir/kb.log" &
kb=$!
head -n $((listed + events)) "$dir/out" | wc -l >"$dir/count"
kill -INT $kb
cat "$dir/out" >/dev/null &
wait $kb || true
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "lines read: $(cat "$dir/count"); instructions: $total; per change: $((total / (listed + events)))"
callgrind_annotate --inclusive=no "$out" 2>/dev/null | sed -n '/file:function/,$p' | head -40
