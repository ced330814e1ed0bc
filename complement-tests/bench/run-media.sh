#!/usr/bin/env bash
# Media throughput and memory: uploads and downloads a file through a release Myelin on loopback
# and reports MB/s and the server's peak RSS increase while the file streams.
#
#   complement-tests/bench/run-media.sh --bin target/release/myelin [--mb 50] [--runs 3]
#
# RSS is sampled from /proc every 5 ms during each transfer (VmRSS); the increase is the
# highest sample minus the RSS just before the transfer. curl is the client.
set -euo pipefail

bin=target/release/myelin
mb=50
runs=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --mb) mb="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
MYELIN_DATABASE_PATH="$dir/db" MYELIN_LISTEN="127.0.0.1:$port" MYELIN_RATE_LIMITS__ENABLED=false \
    MYELIN_LOG__LEVEL=warn "$bin" >"$dir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
until curl -sf "$url/health" >/dev/null; do sleep 0.05; done

token=$(curl -sf -X POST "$url/_matrix/client/v3/register" \
    -d '{"username":"bench","password":"bench-pw","auth":{"type":"m.login.dummy"}}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
head -c $((mb * 1024 * 1024)) /dev/urandom >"$dir/file"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }

# Runs "$@" while sampling the server's RSS; prints "<curl output> <peak increase in KB>".
sampled() {
    local before peak=0 sample out
    before=$(rss_kb)
    "$@" >"$dir/curl.out" &
    local client=$!
    while kill -0 "$client" 2>/dev/null; do
        sample=$(rss_kb)
        ((sample > peak)) && peak=$sample
        sleep 0.005
    done
    wait "$client"
    out=$(cat "$dir/curl.out")
    echo "$out $((peak - before))"
}

echo "server RSS before the runs: $(($(rss_kb) / 1024)) MB"
printf '%-9s %4s %10s %18s\n' transfer run 'MB/s' 'peak RSS +MB'
for run in $(seq 1 "$runs"); do
    # A different file each run: identical bytes would be deduplicated.
    printf '%08d' "$run" | dd of="$dir/file" bs=1 seek=0 conv=notrunc status=none
    result=$(sampled curl -sf -X POST "$url/_matrix/media/v3/upload?filename=bench.bin" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
        -T "$dir/file" -w ' %{speed_upload}')
    uri=$(grep -o 'mxc://[^"]*' <<<"$result")
    read -r speed grow <<<"${result##*\}}"
    printf '%-9s %4d %10.1f %18.1f\n' upload "$run" "$(echo "$speed / 1048576" | bc -l)" "$(echo "$grow / 1024" | bc -l)"
    media="${uri#mxc://}"
    read -r speed grow <<<"$(sampled curl -sf -o "$dir/down" -w '%{speed_download}' \
        -H "Authorization: Bearer $token" "$url/_matrix/client/v1/media/download/$media")"
    cmp -s "$dir/file" "$dir/down" || { echo "download $run differs from the upload" >&2; exit 1; }
    printf '%-9s %4d %10.1f %18.1f\n' download "$run" "$(echo "$speed / 1048576" | bc -l)" "$(echo "$grow / 1024" | bc -l)"
done
echo "server RSS after the runs: $(($(rss_kb) / 1024)) MB"
