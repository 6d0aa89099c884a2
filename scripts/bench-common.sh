# Sourced by the bench-*.sh scripts that start processes of their own:
# installing what is missing, stopping what they started (by pid), and the
# CPU time of a process tree. The script sets `tmp` (its temp folder) and
# appends the pids it starts to `pids`; test-nginx runs as the coproc NGINX.

pids=()

# Installs the Debian packages among "$@" that are missing.
bench_need() {
    local pkg missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "installing ${missing[*]}" >&2
        apt-get install -y "${missing[@]}" >&2
    fi
}

bench_cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    # Closing its stdin makes test-nginx stop nginx (master and workers)
    # and exit; a signal would leave nginx running.
    if [[ -n ${NGINX_PID:-} ]]; then
        exec {NGINX[1]}>&- 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
    if [[ -n ${tmp:-} ]]; then rm -rf "$tmp"; fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# PID and its live descendants.
tree() {
    local p
    echo "$1"
    for p in $(ps -o pid= --ppid "$1"); do tree "$p"; done
}

# CPU ticks (user+system) of a process tree, the reaped children's included.
cpu_ticks() {
    local total=0 p stat f
    for p in $(tree "$1"); do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        # Fields after the command (which may hold spaces): field 14 is utime.
        read -ra f <<<"${stat##*) }"
        total=$((total + f[11] + f[12] + f[13] + f[14]))
    done
    echo "$total"
}

# wrk's Lua script for one prebuilt request: GET $BENCH_PATH (absolute-form
# through a proxy, origin-form direct) with Host $BENCH_HOST; wrk ends with
# `RESULT requests seconds p50-us p99-us non-2xx/3xx socket-errors`.
bench_wrk_script() { # FILE
    cat >"$1" <<'EOF'
-- One prebuilt request: absolute-form through a proxy, origin-form direct.
local req
function init(args)
    req = wrk.format("GET", os.getenv("BENCH_PATH"), { Host = os.getenv("BENCH_HOST") })
end
function request()
    return req
end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %d %.3f %d %d %d %d\n", summary.requests,
        summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
        e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
}
