#!/usr/bin/env bash
# Starts a throw-away Myelin server and runs the myelin-bench scenarios
# `send` then `fanout` against it.
#
#   complement-tests/bench/run-myelin.sh [--smoke] [--no-pin] [--out DIR] [--bin PATH] [MYELIN_BIN]
#
# Server binary: --bin, the positional argument, $MYELIN_BIN, or
# /tmp/release-target/release/myelin (in that order).
# Bench binary: $MYELIN_BENCH_BIN, or built here with
# `cargo build --release -p complement-tests --bin myelin-bench` (in
# $CARGO_TARGET_DIR, default <repo>/target): the load generator shares the
# machine with the server, so it should not be a debug build.
#
# The server gets a free loopback port, a temporary database, a random
# registration shared secret, rate limits off, cheap Argon2 and log level
# warn. With taskset and at least two CPUs, the server is pinned to core 0
# and the bench to core 1 (--no-pin: no pinning). The bench reports the CPU
# time of both during each timed phase. The JSON results, the server log and
# the server's VmRSS/VmHWM/Threads (at start, after `send`, after `fanout`,
# in server-memory.txt) are kept in --out (default: a new
# /tmp/myelin-bench-results.* directory).
# Exit status: non-zero when the server failed to start, a scenario failed,
# or the server misbehaved.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

smoke=()
pin=1
out=""
bin="${MYELIN_BIN:-}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=(--smoke); shift ;;
        --no-pin) pin=0; shift ;;
        --out) out="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "run-myelin.sh: unknown option $1" >&2; exit 64 ;;
        *) bin="$1"; shift ;;
    esac
done
prepare_run run-myelin.sh myelin-bench-results
work="$(mktemp -d /tmp/myelin-bench-server.XXXXXX)"
server_pid=""

cleanup() {
    local status=$?
    [[ -n "$server_pid" ]] && stop_pid "$server_pid"
    [[ -f "$work/server.log" ]] && cp "$work/server.log" "$out/server.log"
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)
url="http://127.0.0.1:$port"
secret="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

server_pin=()
bench_pin=()
if [[ $pin == 0 ]]; then
    pinning="no CPU pinning (--no-pin)"
elif command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
    server_pin=(taskset -c 0)
    bench_pin=(taskset -c 1)
    pinning="server on core 0, bench on core 1"
else
    pinning="no CPU pinning (taskset missing or a single CPU)"
fi

# Only the variables set here reach the server.
mapfile -t inherited < <(compgen -e | grep '^MYELIN_' || true)
(
    for var in "${inherited[@]}"; do unset "$var"; done
    unset RUST_LOG
    export MYELIN_SERVER_NAME=bench.test \
        MYELIN_LISTEN="127.0.0.1:$port" \
        MYELIN_DATABASE_PATH="$work/db" \
        MYELIN_REGISTRATION=closed \
        MYELIN_REGISTRATION_SHARED_SECRET="$secret" \
        MYELIN_RATE_LIMITS__ENABLED=false \
        MYELIN_PASSWORD__ARGON2_MEMORY_KIB=1024 \
        MYELIN_PASSWORD__ARGON2_ITERATIONS=1 \
        MYELIN_LOG__LEVEL=warn
    cd "$work"
    exec "${server_pin[@]}" "$bin"
) >"$work/server.log" 2>&1 </dev/null &
server_pid=$!

for _ in $(seq 300); do
    if curl -fsS -o /dev/null "$url/health" 2>/dev/null; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "run-myelin.sh: the server exited during startup; its log:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
curl -fsS -o /dev/null "$url/health" || { echo "run-myelin.sh: /health did not answer within 30 s" >&2; exit 1; }

memory() {
    awk -v label="$1" '/^(VmRSS|VmHWM|Threads):/ { printf "%s %s %s %s\n", label, $1, $2, $3 }' \
        "/proc/$server_pid/status" | tee -a "$out/server-memory.txt"
}

echo "== myelin $bin (pid $server_pid) on $url; $pinning"
echo "== results in $out"
: >"$out/server-memory.txt"
memory start

status=0
echo
"${bench_pin[@]}" "$bench" --url "$url" --shared-secret "$secret" send "${smoke[@]}" \
    --server-pid "$server_pid" --json "$out/send.json" || status=$?
memory after-send
echo
"${bench_pin[@]}" "$bench" --url "$url" --shared-secret "$secret" fanout "${smoke[@]}" \
    --server-pid "$server_pid" --json "$out/fanout.json" || status=$?
memory after-fanout

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "!! the server died during the run" >&2
    status=1
fi
if grep -qiE 'panic|error' "$work/server.log"; then
    echo
    echo "!! the server logged errors (last 20 lines of its log):"
    grep -iE 'panic|error' "$work/server.log" | tail -20
fi
echo
echo "== done (exit status $status); results in $out"
exit "$status"
