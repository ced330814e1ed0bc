#!/usr/bin/env bash
# Runs the scenarios S1–S6 of myelin-bench against Myelin and then against
# Synapse, on this machine, in one go, and writes the comparison (figures of
# both, ratios, the goals of issue 8) into docs/benchmarks.md.
#
#   complement-tests/bench/vs-synapse.sh [--smoke | --medium] [--only S1,S3,...]
#       [--bin PATH] [--bench-bin PATH] [--postgres] [--no-pin] [--out DIR]
#       [--docs FILE | --no-docs] [--note TEXT] [--server myelin|synapse]
#
# Sizes: full by default (S2 3,000 messages; S3 senders 1,4,16,64,256 x
#   rooms 1,10,100, 10 s per cell; S4 1,000 clients and 10,000 idle syncs;
#   S5 1,000 rooms; S6 100,000 events). --medium: S2 500; S3 up to 64
#   senders, 5 s per cell; S4 100 clients and 1,000 idle; S5 100 rooms; S6
#   5,000 events. --smoke: tiny sizes of everything (CI), results not
#   written into the docs unless --docs is given.
# --only: a comma-separated subset of S1,S2,S3,S4,S5,S6. --server: one of
#   the two only (to look into one figure; the comparison then has a blank
#   column).
# Myelin: --bin, else $MYELIN_BIN, else built here in release
#   (cargo build --release -p myelin, in $MYELIN_RELEASE_TARGET_DIR, default
#   /tmp/release-target; CARGO_TARGET_DIR is not used for it).
# myelin-bench: --bench-bin, else $MYELIN_BENCH_BIN, else built likewise.
# Synapse 1.163.2: complement-tests/synapse/.venv (what ./dev test installs
#   from complement-tests/synapse/requirements.txt), installed here when
#   missing or of another version; $SYNAPSE_PYTHON overrides. SQLite by
#   default; --postgres: PostgreSQL from Debian packages (installed and
#   started when needed), one new database per Synapse start.
# Pinning: each server on core 0, the load generator on core 1 (taskset,
#   needs 2 CPUs; --no-pin: none). With --postgres, PostgreSQL's processes
#   are pinned to the server's core too.
# Every scenario gets a new server with an empty data directory, started,
#   measured and stopped: Myelin first, then Synapse. The JSON of every run,
#   the servers' logs and report.md are kept in --out (default: a new
#   /tmp/vs-synapse.* directory).
# Exit status: 0 when every scenario ran cleanly on both servers; 3 when
#   every scenario ran but a server misbehaved in some (failed requests,
#   missing deliveries; flagged ⚠ in the table); 1 when a scenario could not
#   run or a server died.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

SYNAPSE_VERSION=1.163.2
size=full
only="S1,S2,S3,S4,S5,S6"
bin="${MYELIN_BIN:-}"
bench="${MYELIN_BENCH_BIN:-}"
postgres=0
pin=1
out=""
docs=""
write_docs=1
notes=()
servers="myelin synapse"
invocation="complement-tests/bench/vs-synapse.sh $*"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) size=smoke; shift ;;
        --medium) size=medium; shift ;;
        --only) only="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --bench-bin) bench="$2"; shift 2 ;;
        --postgres) postgres=1; shift ;;
        --no-pin) pin=0; shift ;;
        --out) out="$2"; shift 2 ;;
        --docs) docs="$2"; shift 2 ;;
        --no-docs) write_docs=0; shift ;;
        --note) notes+=(--note "$2"); shift 2 ;;
        --server) servers="$2"; shift 2 ;;
        -h|--help) sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "vs-synapse.sh: unknown argument $1" >&2; exit 64 ;;
    esac
done
if [[ -z "$docs" && $size == smoke ]]; then write_docs=0; fi
docs="${docs:-$repo/docs/benchmarks.md}"
wants() { [[ ",$only," == *",$1,"* ]]; }

# ---- sizes ------------------------------------------------------------------
case "$size" in
    smoke)
        sizes=(--smoke)
        s2=(); s3=(); s4_fanout=(); s4_idle=(); s5=(); s6=()
        ;;
    medium)
        sizes=()
        s2=(-n 500)
        s3=(--senders 1,4,16,64 --rooms 1,10,100 --duration-secs 5)
        s4_fanout=(-c 100 -m 100 --interval-ms 100)
        s4_idle=(-n 1000)
        s5=(--rooms 100)
        s6=(--events 5000)
        ;;
    full)
        sizes=()
        s2=(-n 3000)
        s3=(--senders 1,4,16,64,256 --rooms 1,10,100 --duration-secs 10)
        # 1,000 receivers, 2 messages/s: 2,000 deliveries/s. (10 messages/s overloads
        # Myelin on one core: its sends time out.)
        s4_fanout=(-c 1000 -m 60 --interval-ms 500 --grace-secs 120)
        s4_idle=(-n 10000)
        s5=(--rooms 1000)
        # One filler: concurrent sends into one room fork Synapse's room DAG (it creates up to
        # 5 events of a room at once), and with 16 fillers its forward extremities piled up
        # until each message cost it ~700 `stream_ordering_to_exterm` rows (6.6 GB at 53,000
        # events) and the fill fell from 45 to 10 msg/s. Untimed either way.
        s6=(--events 100000 --fillers 1)
        ;;
esac

# ---- binaries ---------------------------------------------------------------
# Release builds get a target directory of their own, whatever CARGO_TARGET_DIR says
# (it usually names the debug one, where a first release build would take long).
release_target="${MYELIN_RELEASE_TARGET_DIR:-/tmp/release-target}"
if [[ -z "$bin" || -z "$bench" ]]; then
    echo "== building myelin and myelin-bench (release, $release_target)"
    (cd "$repo" && CARGO_TARGET_DIR="$release_target" cargo build --quiet --release \
        -p myelin --bin myelin -p complement-tests --bin myelin-bench)
    bin="${bin:-$release_target/release/myelin}"
    bench="${bench:-$release_target/release/myelin-bench}"
fi
[[ -x "$bin" ]] || { echo "vs-synapse.sh: no executable myelin at $bin" >&2; exit 1; }
[[ -x "$bench" ]] || { echo "vs-synapse.sh: no executable myelin-bench at $bench" >&2; exit 1; }

python="$(synapse_python)"
installed="$("$python" -c 'import synapse; print(synapse.__version__.split()[0])' 2>/dev/null || true)"
if [[ "$installed" != "$SYNAPSE_VERSION" ]]; then
    [[ -n "${SYNAPSE_PYTHON:-}" ]] && { echo "vs-synapse.sh: $SYNAPSE_PYTHON has Synapse '$installed', not $SYNAPSE_VERSION" >&2; exit 1; }
    grep -qx "matrix-synapse==$SYNAPSE_VERSION" "$repo/complement-tests/synapse/requirements.txt" \
        || { echo "vs-synapse.sh: complement-tests/synapse/requirements.txt does not pin $SYNAPSE_VERSION" >&2; exit 1; }
    echo "== installing Synapse $SYNAPSE_VERSION into complement-tests/synapse/.venv"
    venv="$repo/complement-tests/synapse/.venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$repo/complement-tests/synapse/requirements.txt"
fi

# ---- PostgreSQL (optional) ---------------------------------------------------
pg_started=0
if [[ $postgres == 1 ]]; then
    if ! command -v pg_ctlcluster >/dev/null; then
        echo "== installing PostgreSQL (Debian packages)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    "$python" -c 'import psycopg2' 2>/dev/null \
        || "$python" -m pip install --quiet --disable-pip-version-check --no-input psycopg2-binary==2.9.13
    read -r pg_version pg_cluster _ < <(pg_lsclusters --no-header | head -1)
    if ! pg_lsclusters --no-header | head -1 | grep -q online; then
        pg_ctlcluster "$pg_version" "$pg_cluster" start
        pg_started=1
    fi
    pg_isready -q -t 30 || { echo "vs-synapse.sh: PostgreSQL did not come up" >&2; exit 1; }
    as_postgres() { (cd / && su postgres -c "$1"); }
    as_postgres "psql -qc \"DO \\\$\\\$ BEGIN CREATE ROLE bench LOGIN PASSWORD 'bench'; EXCEPTION WHEN duplicate_object THEN NULL; END \\\$\\\$;\"" >/dev/null
fi

# A new, empty database for one Synapse start; its JSON config on stdout.
synapse_database() {
    local dir=$1
    if [[ $postgres == 0 ]]; then
        echo "{\"name\": \"sqlite3\", \"args\": {\"database\": \"$dir/homeserver.db\"}}"
        return
    fi
    # Named after the data directory: this runs in a subshell, which cannot count.
    local db
    db="vs_synapse_$$_$(basename "$dir" | tr -c 'a-z0-9\n' _)"
    as_postgres "createdb -O bench -E UTF8 --locale=C -T template0 $db"
    echo "{\"name\": \"psycopg2\", \"args\": {\"user\": \"bench\", \"password\": \"bench\", \"database\": \"$db\", \"host\": \"127.0.0.1\", \"cp_min\": 5, \"cp_max\": 10}}"
}

# ---- pinning, limits, results -------------------------------------------------
server_pin=()
bench_pin=()
if [[ $pin == 0 ]]; then
    pinning="no CPU pinning"
elif command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
    server_pin=(taskset -c 0)
    bench_pin=(taskset -c 1)
    pinning="each server on core 0, the load generator on core 1 (taskset)"
    [[ $postgres == 1 ]] && pinning+="; PostgreSQL on core 0 too"
else
    pinning="no CPU pinning (taskset missing or a single CPU)"
fi
if [[ $postgres == 1 && ${#server_pin[@]} -gt 0 ]]; then
    for pid in $(pgrep -u postgres); do taskset -a -p -c 0 "$pid" >/dev/null 2>&1 || true; done
fi
# 10,000 idle syncs need 10,000 sockets on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ -z "$out" ]]; then
    out="$(mktemp -d /tmp/vs-synapse.XXXXXX)"
else
    mkdir -p "$out"
fi
mkdir -p "$out/myelin" "$out/synapse"
out="$(cd "$out" && pwd)"
work="$(mktemp -d /tmp/vs-synapse-servers.XXXXXX)"
server_pid=""
cleanup() {
    local status=$?
    [[ -n "$server_pid" ]] && stop_pid "$server_pid"
    rm -rf "$work"
    if [[ $postgres == 1 ]]; then
        for db in $(as_postgres "psql -Atc \"SELECT datname FROM pg_database WHERE datname LIKE 'vs\\_synapse\\_$$\\_%'\""); do
            as_postgres "dropdb --if-exists $db" >/dev/null 2>&1 || true
        done
    fi
    # A cluster this run started is stopped again.
    [[ $pg_started == 1 ]] && pg_ctlcluster "$pg_version" "$pg_cluster" stop
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

secret="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
mapfile -t inherited < <(compgen -e | grep '^MYELIN_' || true)
server_name=bench.test

# Myelin's benchmark configuration, as `env` arguments: no other MYELIN_*
# variable and no RUST_LOG reach it.
myelin_env() {
    local dir=$1 port=$2 var
    printf '%s\n' env -u RUST_LOG
    for var in "${inherited[@]}"; do printf '%s\n' -u "$var"; done
    printf '%s\n' MYELIN_SERVER_NAME="$server_name" \
        MYELIN_LISTEN="127.0.0.1:$port" \
        MYELIN_DATABASE_PATH="$dir/db" \
        MYELIN_MEDIA__PATH="$dir/media" \
        MYELIN_REGISTRATION=closed \
        MYELIN_REGISTRATION_SHARED_SECRET="$secret" \
        MYELIN_RATE_LIMITS__ENABLED=false \
        MYELIN_PRESENCE__ENABLED=false \
        MYELIN_PASSWORD__ARGON2_MEMORY_KIB=1024 \
        MYELIN_PASSWORD__ARGON2_ITERATIONS=1 \
        MYELIN_LOG__LEVEL=warn
}

# prepare KIND SCENARIO: a new data directory and port; sets $dir, $port,
# $url, $server_cmd (for Synapse, writes the configuration).
prepare() {
    local kind=$1 scenario=$2
    dir="$work/$kind-$scenario"
    port=$(free_port)
    url="http://127.0.0.1:$port"
    mkdir -p "$dir"
    if [[ $kind == myelin ]]; then
        mapfile -t server_cmd < <(myelin_env "$dir" "$port")
        server_cmd+=("${server_pin[@]}" "$bin")
    else
        write_synapse_config "$dir" "$server_name" "$port" "$secret" "$(synapse_database "$dir")"
        server_cmd=("${server_pin[@]}" "$python" -m synapse.app.homeserver -c "$dir/homeserver.yaml")
    fi
}

# start KIND SCENARIO: a new server, answering /versions; sets $server_pid.
# A port found free can be taken by another process before the server binds
# it: then the start is tried again on another port.
start() {
    local kind=$1 scenario=$2 attempt
    for attempt in 1 2 3; do
        prepare "$kind" "$scenario"
        "${server_cmd[@]}" >"$out/$kind-$scenario.log" 2>&1 </dev/null &
        server_pid=$!
        for _ in $(seq 1200); do
            if curl -fsS -o /dev/null "$url/_matrix/client/versions" 2>/dev/null; then return; fi
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            echo "vs-synapse.sh: $kind did not answer within 120 s" >&2
            exit 1
        fi
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
        if ! grep -qi 'address already in use' "$out/$kind-$scenario.log" "$dir/homeserver.log" 2>/dev/null; then
            break
        fi
        echo "-- $kind: port $port was taken meanwhile (attempt $attempt); another port"
        rm -rf "$dir"
    done
    echo "vs-synapse.sh: $kind exited during startup:" >&2
    tail -30 "$out/$kind-$scenario.log" "$dir/homeserver.log" 2>/dev/null >&2 || true
    exit 1
}

stop() {
    local kind=$1 scenario=$2
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "!! $kind died during $scenario" >&2
        status=1
    fi
    stop_pid "$server_pid"
    server_pid=""
    [[ -f "$dir/homeserver.log" ]] && cp "$dir/homeserver.log" "$out/synapse-$scenario.homeserver.log"
    rm -rf "$dir"
}

# bench KIND NAME ARGS...: one scenario on the load generator's core.
bench() {
    local kind=$1 name=$2
    shift 2
    echo
    echo "== $kind: $name"
    "${bench_pin[@]}" "$bench" --url "$url" --shared-secret "$secret" "${sizes[@]}" "$@" \
        --json "$out/$kind/$name.json" || outcome $? "$kind $name"
}

# outcome EXIT WHAT: a scenario that could not run (exit 1, 2) fails the whole
# run; one where the server misbehaved (exit 3: failed requests, missing
# deliveries, wrong room counts) ran, and is flagged in the table.
outcome() {
    if [[ $1 == 3 ]]; then
        echo "!! $2: the server misbehaved (see above); flagged in the table"
        misbehaved+=("$2")
    else
        echo "!! $2 failed (exit $1)"
        status=1
    fi
}

status=0
misbehaved=()
started_at=$(date +%s)
echo "== Myelin $bin; Synapse $SYNAPSE_VERSION ($([[ $postgres == 1 ]] && echo PostgreSQL || echo SQLite)); $pinning"
echo "== sizes: $size; scenarios: $only; results in $out"
for kind in $servers; do
    if wants S1; then
        prepare "$kind" startup
        echo
        echo "== $kind: startup"
        "${bench_pin[@]}" "$bench" --url "$url" "${sizes[@]}" startup --log "$out/$kind-startup.log" \
            --json "$out/$kind/startup.json" -- "${server_cmd[@]}" \
            || outcome $? "$kind startup"
        rm -rf "$dir"
    fi
    if wants S2; then
        start "$kind" send
        bench "$kind" send send "${s2[@]}" --server-pid "$server_pid"
        stop "$kind" send
    fi
    if wants S3; then
        start "$kind" concurrent
        bench "$kind" concurrent-sends concurrent-sends "${s3[@]}"
        stop "$kind" concurrent
    fi
    if wants S4; then
        start "$kind" fanout
        bench "$kind" fanout fanout "${s4_fanout[@]}" --server-pid "$server_pid"
        stop "$kind" fanout
        start "$kind" idle
        bench "$kind" idle-syncs idle-syncs "${s4_idle[@]}" --server-pid "$server_pid"
        stop "$kind" idle
    fi
    if wants S5; then
        start "$kind" initial-sync
        bench "$kind" initial-sync initial-sync "${s5[@]}"
        stop "$kind" initial-sync
    fi
    if wants S6; then
        start "$kind" paginate
        bench "$kind" paginate paginate "${s6[@]}"
        stop "$kind" paginate
    fi
done
elapsed=$(( $(date +%s) - started_at ))

# ---- the comparison -----------------------------------------------------------------
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
memory="$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
os="$(. /etc/os-release && echo "$PRETTY_NAME")"
machine="$(nproc) vCPU ($cpu), $memory, $os, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
myelin_desc="$("$bin" --version 2>/dev/null || echo myelin), binary built $(date -u -r "$bin" '+%Y-%m-%d %H:%M UTC') (the tree's HEAD was $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$repo" && git diff --quiet HEAD -- homeserver 2>/dev/null || echo ', with uncommitted changes') when the run ended), RocksDB, every acknowledged write fsynced (WAL, group commit)"
synapse_desc="$SYNAPSE_VERSION on Python $("$python" -c 'import platform; print(platform.python_version())'), $([[ $postgres == 1 ]] && echo "PostgreSQL $(pg_lsclusters --no-header | awk 'NR==1 {print $1}') (fsync and synchronous_commit on)" || echo 'SQLite (WAL, synchronous=FULL: every commit fsynced)')"
"$bench" report --dir "$out" --date "$(date -u '+%Y-%m-%d %H:%M UTC'), $elapsed s for the whole run" \
    --machine "$machine" --myelin "$myelin_desc" --synapse "$synapse_desc" --pinning "$pinning" \
    --command "$invocation" "${notes[@]}" >"$out/report.md"
cat "$out/report.md"
if [[ $write_docs == 1 ]]; then
    "$bench" report --dir "$out" --docs "$docs" --date "$(date -u '+%Y-%m-%d %H:%M UTC'), $elapsed s for the whole run" \
        --machine "$machine" --myelin "$myelin_desc" --synapse "$synapse_desc" --pinning "$pinning" \
        --command "$invocation" "${notes[@]}" >/dev/null
    echo "== comparison written into $docs"
fi
if [[ $status == 0 && ${#misbehaved[@]} -gt 0 ]]; then
    echo "== every scenario ran, but a server misbehaved in: ${misbehaved[*]}"
    status=3
fi
echo "== done in $elapsed s (exit status $status); results in $out"
exit "$status"
