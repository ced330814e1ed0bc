#!/usr/bin/env bash
# Starts two throw-away Myelin servers that federate over TLS on loopback and
# runs the myelin-bench scenarios `federation-join`, then `federation-send`
# twice: live (away receives while home sends) and backlog (away is stopped
# with SIGSTOP while home accepts the messages, then continued).
#
#   complement-tests/bench/run-federation.sh [--smoke] [--state-events S] [--messages N]
#       [--concurrency C] [--only join|send|backlog] [--synapse-away] [--out DIR] [--bin PATH]
#
# Server binary: --bin, $MYELIN_BIN, or /tmp/release-target/release/myelin.
# Bench binary: $MYELIN_BENCH_BIN, or built here (release) in
# $CARGO_TARGET_DIR (default <repo>/target).
#
# Each server is named 127.0.0.1:<federation port> (its TLS federation
# listener, self-signed certificate, certificates not verified, private
# addresses allowed), has a plain-HTTP client listener on another free
# port, a temporary database, one shared registration secret, rate limits
# off, cheap Argon2. Log level: warn for home, info for away (the join is
# logged there with its duration). No CPU pinning: the join verifies
# signatures on all cores.
# --synapse-away: the joining server of `federation-join` is a Synapse
# (complement-tests/synapse/.venv, SQLite) instead of a second Myelin; the
# send scenario is then skipped.
# The JSON results and both server logs are kept in --out (default: a new
# /tmp/myelin-fed-bench.* directory).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

smoke=()
join_args=()
send_args=()
only=""
synapse=0
out=""
bin="${MYELIN_BIN:-}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=(--smoke); shift ;;
        --state-events) join_args+=(--state-events "$2"); shift 2 ;;
        --messages) send_args+=(--messages "$2"); shift 2 ;;
        --concurrency) join_args+=(--concurrency "$2"); send_args+=(--concurrency "$2"); shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --synapse-away) synapse=1; shift ;;
        --out) out="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-federation.sh: unknown argument $1" >&2; exit 64 ;;
    esac
done
prepare_run run-federation.sh myelin-fed-bench
work="$(mktemp -d /tmp/myelin-fed-servers.XXXXXX)"
pids=()

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    for log in "$work"/*.log "$work"/synapse/homeserver.log; do
        [[ -f "$log" ]] && cp "$log" "$out/"
    done
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

secret="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
mapfile -t inherited < <(compgen -e | grep '^MYELIN_' || true)

# start_myelin NAME LOG_LEVEL -> sets $url_NAME, $pid_NAME, $server_NAME
start_myelin() {
    local name=$1 level=$2 port fport
    port=$(free_port)
    fport=$(free_port)
    mkdir -p "$work/$name"
    (
        for var in "${inherited[@]}"; do unset "$var"; done
        unset RUST_LOG
        export MYELIN_SERVER_NAME="127.0.0.1:$fport" \
            MYELIN_LISTEN="127.0.0.1:$port" \
            MYELIN_DATABASE_PATH="$work/$name/db" \
            MYELIN_REGISTRATION=closed \
            MYELIN_REGISTRATION_SHARED_SECRET="$secret" \
            MYELIN_RATE_LIMITS__ENABLED=false \
            MYELIN_PASSWORD__ARGON2_MEMORY_KIB=1024 \
            MYELIN_PASSWORD__ARGON2_ITERATIONS=1 \
            MYELIN_LOG__LEVEL="$level" \
            MYELIN_FEDERATION__LISTEN="127.0.0.1:$fport" \
            MYELIN_FEDERATION__GENERATE_SELF_SIGNED_CERTIFICATE=true \
            MYELIN_FEDERATION__VERIFY_TLS=false \
            MYELIN_FEDERATION__ALLOW_PRIVATE_ADDRESSES=true \
            MYELIN_FEDERATION__RETRY_INITIAL_MS=200 \
            MYELIN_FEDERATION__RETRY_MAX_MS=2000
        cd "$work/$name"
        exec "$bin"
    ) >"$work/$name.log" 2>&1 </dev/null &
    local pid=$!
    pids+=("$pid")
    printf -v "url_$name" '%s' "http://127.0.0.1:$port"
    printf -v "pid_$name" '%s' "$pid"
    printf -v "server_$name" '%s' "127.0.0.1:$fport"
    for _ in $(seq 300); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then return; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "run-federation.sh: $name exited during startup; its log:" >&2
            cat "$work/$name.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "run-federation.sh: $name's /health did not answer within 30 s" >&2
    exit 1
}

# A Synapse named 127.0.0.1:<fport> with a TLS federation listener there and
# a plain client listener; configured like complement-tests/src/synapse.rs.
start_synapse() {
    local python dir="$work/synapse" port fport name
    python="$(synapse_python)"
    [[ -x "$python" ]] || { echo "run-federation.sh: no Synapse at $python" >&2; exit 1; }
    port=$(free_port)
    fport=$(free_port)
    name="127.0.0.1:$fport"
    mkdir -p "$dir"
    (cd "$dir" && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout tls.key -out tls.crt \
        -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null)
    SYNAPSE_LOG_LEVEL=INFO write_synapse_config "$dir" "$name" "$port" "$secret" \
        "{\"name\": \"sqlite3\", \"args\": {\"database\": \"$dir/homeserver.db\"}}" \
        "{\"port\": $fport, \"bind_addresses\": [\"127.0.0.1\"], \"type\": \"http\", \"tls\": true, \"x_forwarded\": false,
    \"resources\": [{\"names\": [\"federation\"], \"compress\": false}]}" \
        "\"tls_certificate_path\": \"$dir/tls.crt\", \"tls_private_key_path\": \"$dir/tls.key\",
 \"federation_verify_certificates\": false, \"federation_ip_range_blacklist\": [],
 \"ip_range_blacklist\": [], \"ip_range_blocklist\": [], \"ip_range_whitelist\": [\"127.0.0.0/8\", \"::1/128\"]"
    (cd "$dir" && exec "$python" -m synapse.app.homeserver -c "$dir/homeserver.yaml") \
        >"$work/synapse-stdout.log" 2>&1 </dev/null &
    local pid=$!
    pids+=("$pid")
    url_away="http://127.0.0.1:$port"
    pid_away=$pid
    server_away=$name
    for _ in $(seq 600); do
        if curl -fsS -o /dev/null "$url_away/_matrix/client/versions" 2>/dev/null; then return; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "run-federation.sh: Synapse exited during startup:" >&2
            tail -50 "$work/synapse-stdout.log" "$dir/homeserver.log" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    echo "run-federation.sh: Synapse did not answer within 60 s" >&2
    exit 1
}

start_myelin home warn
if [[ $synapse == 1 ]]; then
    start_synapse
    away_kind="Synapse $("$(synapse_python)" -c 'import synapse; print(synapse.__version__)')"
else
    start_myelin away info
    away_kind="myelin"
fi

echo "== home: myelin $bin (pid $pid_home), client $url_home, federation $server_home"
echo "== away: $away_kind (pid $pid_away), client $url_away, federation $server_away"
echo "== $(nproc) CPUs, no pinning; results in $out"

peers=(--home "$url_home" --away "$url_away" --home-pid "$pid_home" --away-pid "$pid_away")
status=0
if [[ -z "$only" || "$only" == join ]]; then
    echo
    "$bench" --shared-secret "$secret" federation-join "${peers[@]}" "${smoke[@]}" "${join_args[@]}" \
        --json "$out/federation-join.json" || status=$?
    if [[ $synapse == 0 ]]; then
        echo "-- away's log about the join:"
        grep -E 'joined a remote room|remote join failed|dropped an event' "$work/away.log" | head -20 || true
    fi
fi
if [[ $synapse == 0 && ( -z "$only" || "$only" == send ) ]]; then
    echo
    "$bench" --shared-secret "$secret" federation-send "${peers[@]}" "${smoke[@]}" "${send_args[@]}" \
        --json "$out/federation-send.json" || status=$?
fi
if [[ $synapse == 0 && ( -z "$only" || "$only" == backlog ) ]]; then
    echo
    "$bench" --shared-secret "$secret" federation-send --pause-away "${peers[@]}" "${smoke[@]}" "${send_args[@]}" \
        --json "$out/federation-send-backlog.json" || status=$?
fi

for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "!! a server (pid $pid) died during the run" >&2
        status=1
    fi
done
for log in "$work"/home.log "$work"/away.log; do
    [[ -f "$log" ]] || continue
    # The two warnings every such server logs at start are expected.
    problems=$(grep -E ' (ERROR|WARN) |panic' "$log" | grep -vE 'verify_tls = false|self-signed federation TLS certificate' || true)
    if [[ -n "$problems" ]]; then
        echo
        echo "!! $(basename "$log" .log) logged warnings or errors (last 10):"
        tail -10 <<<"$problems"
    fi
done
echo
echo "== done (exit status $status); results in $out"
exit "$status"
