# Shell functions shared by the bench runners (sourced, not run).
#
#   free_port                 prints a free loopback port not handed out before
#   stop_pid PID              SIGTERM, then SIGKILL after 10 s; waits for it
#   synapse_python            the interpreter of the Synapse virtualenv
#   write_synapse_config DIR NAME PORT SECRET DATABASE_JSON [EXTRA_LISTENER_JSON [EXTRA_KEYS_JSON]]
#                             a homeserver.yaml (as JSON) for a benchmark Synapse
#   prepare_run SCRIPT OUT_PREFIX
#                             checks $bin (default: the release myelin), finds or builds
#                             myelin-bench into $bench, makes $out (a new temp dir by default)

bench_ports_taken=" "
free_port() {
    local candidate
    for _ in $(seq 50); do
        candidate=$((20000 + RANDOM % 40000))
        [[ "$bench_ports_taken" == *" $candidate "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
            bench_ports_taken+="$candidate "
            echo "$candidate"
            return
        fi
    done
    echo "found no free port" >&2
    exit 1
}

stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "!! pid $pid did not exit within 10 s of SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

synapse_python() {
    local repo
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    echo "${SYNAPSE_PYTHON:-$repo/complement-tests/synapse/.venv/bin/python}"
}

# Rate limits are lifted (every rc_* the scenarios could hit), presence is
# off, logs go to DIR/homeserver.log at WARNING (Myelin runs at warn),
# bcrypt costs the minimum (passwords are only hashed while registering,
# which is never timed). The signing key is made by --generate-config, whose
# homeserver.yaml is then replaced.
write_synapse_config() {
    local dir=$1 name=$2 port=$3 secret=$4 database=$5
    local extra_listener=${6:-} extra_keys=${7:-}
    local python
    python="$(synapse_python)"
    mkdir -p "$dir"
    (cd "$dir" && "$python" -m synapse.app.homeserver --server-name "$name" \
        --config-path "$dir/homeserver.yaml" --data-directory "$dir" \
        --generate-config --report-stats=no >/dev/null)
    cat >"$dir/log.config.yaml" <<EOF
{"version": 1,
 "formatters": {"precise": {"format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"}},
 "handlers": {"file": {"class": "logging.FileHandler", "formatter": "precise", "filename": "$dir/homeserver.log", "encoding": "utf8"}},
 "root": {"level": "${SYNAPSE_LOG_LEVEL:-WARNING}", "handlers": ["file"]},
 "disable_existing_loggers": false}
EOF
    local lenient='{"per_second": 100000, "burst_count": 1000000}'
    cat >"$dir/homeserver.yaml" <<EOF
{"server_name": "$name",
 "pid_file": "$dir/homeserver.pid",
 "listeners": [
   {"port": $port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": false, "x_forwarded": false,
    "resources": [{"names": ["client", "federation"], "compress": false}]}${extra_listener:+,
   $extra_listener}],
 "database": $database,
 "log_config": "$dir/log.config.yaml",
 "media_store_path": "$dir/media_store",
 "signing_key_path": "$dir/$name.signing.key",
 "registration_shared_secret": "$secret",
 "macaroon_secret_key": "bench-macaroon-secret",
 "form_secret": "bench-form-secret",
 "report_stats": false,
 "enable_registration": false,
 "bcrypt_rounds": 4,
 "trusted_key_servers": [],
 "suppress_key_server_warning": true,
 "presence": {"enabled": false},
 "rc_message": $lenient,
 "rc_registration": $lenient,
 "rc_registration_token_validity": $lenient,
 "rc_login": {"address": $lenient, "account": $lenient, "failed_attempts": $lenient},
 "rc_joins": {"local": $lenient, "remote": $lenient},
 "rc_joins_per_room": $lenient,
 "rc_invites": {"per_room": $lenient, "per_user": $lenient, "per_issuer": $lenient},
 "rc_room_creation": $lenient,
 "rc_admin_redaction": $lenient,
 "rc_federation": {"window_size": 1000, "sleep_limit": 10000, "sleep_delay": 0, "reject_limit": 10000, "concurrent": 1000}${extra_keys:+,
 $extra_keys}}
EOF
}

prepare_run() {
    local script="$1" out_prefix="$2"
    bin="${bin:-/tmp/release-target/release/myelin}"
    [[ -x "$bin" ]] || { echo "$script: no executable myelin binary at $bin" >&2; exit 1; }
    bench="${MYELIN_BENCH_BIN:-}"
    if [[ -z "$bench" ]]; then
        echo "== building myelin-bench (release)"
        (cd "$repo" && cargo build --quiet --release -p complement-tests --bin myelin-bench)
        bench="${CARGO_TARGET_DIR:-$repo/target}/release/myelin-bench"
    fi
    [[ -x "$bench" ]] || { echo "$script: no executable myelin-bench at $bench" >&2; exit 1; }
    if [[ -z "$out" ]]; then
        out="$(mktemp -d "/tmp/$out_prefix.XXXXXX")"
    else
        mkdir -p "$out"
    fi
}
