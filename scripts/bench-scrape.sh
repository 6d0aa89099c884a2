#!/usr/bin/env bash
# What scraping `/metrics` costs the proxy: one release `sockhost serve`
# (the embedded default plugins) in front of Debian's nginx, all on
# 127.0.0.1, wrk at concurrency 16 sending absolute-form requests for a
# 1 KiB file through it, in rounds taking turns:
#   A: nobody scrapes;
#   B: a scraper sends `GET /metrics` to the daemon's control socket every
#      100 ms (one Python process, one kept-alive connection: no fork per
#      scrape).
# Prints requests/s per round, the medians, the ratio B/A of the medians
# and the median of the paired ratios (issue 13's target: at least 0.98),
# the daemon's CPU time per request in A and in B (its utime+stime from
# /proc, steadier than requests/s on a shared machine), what one scrape
# costs (size, latency, daemon CPU; the status snapshot's share), the ratio
# that cost implies for a CPU-bound daemon, and the load average before
# and after. Asserts nothing. Installs wrk when missing
# (Debian). Environment: ROUNDS (per mode, 5), DURATION (wrk seconds per
# round, 5), CONNS (16), INTERVAL_MS (100).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-5}
duration=${DURATION:-5}
conns=${CONNS:-16}
interval_ms=${INTERVAL_MS:-100}

source scripts/bench-common.sh
bench_need wrk curl python3

cargo build --quiet --release -p sockhost -p sockhost-tests --bins
bin=${CARGO_TARGET_DIR:-target}/release

tmp=$(mktemp -d)
echo "load before: $(uptime)"

coproc NGINX { exec "$bin/test-nginx"; }
read -r _tls_addr _ca http_addr <&"${NGINX[0]}"
http_port=${http_addr##*:}
[[ -n $http_port ]] || { echo "test-nginx printed no cleartext address" >&2; exit 1; }

control=$tmp/run/control.sock
XDG_DATA_HOME=$tmp/data XDG_STATE_HOME=$tmp/state \
    "$bin/sockhost" serve --listen 127.0.0.1:0 --no-unix --control "$control" \
    >"$tmp/sockhost.out" 2>"$tmp/sockhost.log" &
pids+=($!)
daemon_pid=$!
for ((i = 0; i < 400; i++)); do
    [[ -S $control ]] && grep -q '^control API on' "$tmp/sockhost.out" 2>/dev/null && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$tmp/sockhost.log" >&2; exit 1; }
    sleep 0.05
done
daemon_addr=$(sed -n 's|^listening on http://\([^ ]*\) .*|\1|p' "$tmp/sockhost.out" | head -1)
[[ -n $daemon_addr && -S $control ]] || {
    echo "sockhost printed no address or made no control socket" >&2
    cat "$tmp/sockhost.out" "$tmp/sockhost.log" >&2
    exit 1
}

hz=$(getconf CLK_TCK)
# The scraper: GET /metrics on the control socket every INTERVAL for
# SECONDS, on one connection (reopened if the daemon closes it); prints
# READY once connected, then `SCRAPES count bytes-of-the-last mean-ms
# max-ms failures own-cpu-ms`.
cat >"$tmp/scrape.py" <<'EOF'
import http.client, socket, sys, time

class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)

path, seconds, interval = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]) / 1000
conn = UnixConnection(path)
conn.connect()
# Python's start is not the scrapes' cost: the round starts after this.
print("READY", flush=True)
cpu0 = time.process_time()
times, size, failures = [], 0, 0
start = time.monotonic()
tick = start
while tick - start < seconds:
    t0 = time.monotonic()
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            failures += 1
        size = len(body)
        times.append(time.monotonic() - t0)
    except (OSError, http.client.HTTPException):
        failures += 1
        conn.close()
        conn = UnixConnection(path)
    tick += interval
    time.sleep(max(0.0, tick - time.monotonic()))
mean = sum(times) / len(times) * 1000 if times else 0
print(f"SCRAPES {len(times)} {size} {mean:.3f} {max(times, default=0) * 1000:.3f} {failures} "
      f"{(time.process_time() - cpu0) * 1000:.1f}")
EOF

bench_wrk_script "$tmp/abs.lua"

run_wrk() {
    BENCH_PATH=http://127.0.0.1:$http_port/small.txt BENCH_HOST=127.0.0.1:$http_port \
        wrk -c "$conns" -t 2 -d "${duration}s" -s "$tmp/abs.lua" "http://$daemon_addr/" |
        grep '^RESULT '
}

# What one scrape is, and what it costs the daemon, with nothing else
# running: 20 scrapes by curl for size and latency, then 2000 by the
# scraper at full speed for the daemon's CPU per scrape.
one_scrape() {
    local i
    for ((i = 0; i < 20; i++)); do
        curl -sS --fail --unix-socket "$control" -o /dev/null \
            -w '%{size_download} %{time_total}\n' http://localhost/metrics
    done
}

results=$tmp/results
: >"$results"

# Warm-up, unmeasured: the pool's connections to nginx, the instances.
duration=2 run_wrk >/dev/null
one_scrape | sort -k2 -n | awk '{a[NR] = $0} END {split(a[int((NR + 1) / 2)], m, " "); print "one_scrape", m[1], m[2]}' >>"$results"
# 2000 requests for PATH back to back on one connection, and the daemon's
# CPU ticks for them (a tick is 10 ms: enough of them to count).
burst() { # PATH
    local before after n ms
    before=$(cpu_ticks "$daemon_pid")
    python3 - "$control" "$1" >"$tmp/burst.out" <<'EOF'
import socket, sys, time
path, target = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(path)
f = sock.makefile("rb")
n = 2000
t0 = time.monotonic()
for _ in range(n):
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    length = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    if length is None:
        sys.exit(f"no Content-Length in the {target} answer")
    f.read(length)
print(n, f"{(time.monotonic() - t0) / n * 1000:.3f}")
EOF
    after=$(cpu_ticks "$daemon_pid")
    read -r n ms <"$tmp/burst.out"
    echo "burst $1 $n $ms $((after - before))" >>"$results"
}
# /metrics is the status snapshot (/v1/status's document) rendered, plus
# the probes' collect calls into WASM: the difference between the two.
burst /metrics
burst /v1/status

for ((round = 1; round <= rounds; round++)); do
    for mode in A B; do
        scraper=
        if [[ $mode == B ]]; then
            python3 "$tmp/scrape.py" "$control" "$duration" "$interval_ms" >"$tmp/scrape.out" &
            scraper=$!
            pids+=($scraper)
            until grep -q READY "$tmp/scrape.out"; do
                kill -0 "$scraper" 2>/dev/null || { echo "the scraper failed" >&2; exit 1; }
                sleep 0.01
            done
        fi
        before=$(cpu_ticks "$daemon_pid")
        line=$(run_wrk)
        after=$(cpu_ticks "$daemon_pid")
        scrapes="- 0 0 0 0 0"
        if [[ -n $scraper ]]; then
            wait "$scraper"
            scrapes=$(sed -n 's/^SCRAPES //p' "$tmp/scrape.out")
        fi
        read -r _ reqs secs _p50 _p99 bad sock <<<"$line"
        echo "round $mode $round $reqs $secs $bad $sock $((after - before)) $scrapes" >>"$results"
        python3 -c "print(f'round {$round} $mode {$reqs / $secs:8.0f} req/s  CPU {($after - $before) / $hz / $reqs * 1e6:6.1f} us/req  non-2xx $bad  socket errors $sock  scrapes: ${scrapes%% *}')" >&2
    done
done

echo "load after: $(uptime)"
python3 - "$results" "$hz" "$rounds" "$duration" "$conns" "$interval_ms" <<'EOF'
import statistics, sys
path, hz = sys.argv[1], int(sys.argv[2])
rounds, duration, conns, interval = sys.argv[3:]
rows = {"A": [], "B": []}
bursts = {}
for line in open(path):
    f = line.split()
    if f[0] == "round":
        rows[f[1]].append(f[2:])
    elif f[0] == "one_scrape":
        size, scrape_s = int(f[1]), float(f[2])
    elif f[0] == "burst":
        bursts[f[1]] = (int(f[2]), float(f[3]), int(f[4]))
med = statistics.median
print()
print(f"Scrape cost: 1 KiB through `sockhost serve` (default plugins), wrk -c {conns}, "
      f"{duration} s per round, {rounds} rounds each, A and B in turn")
print(f"A: not scraped; B: GET /metrics on the control socket every {interval} ms")
print(f"{'round':>5} {'mode':>4} {'req/s':>9} {'CPU us/req':>11} {'non-2xx':>8} {'sock err':>9} "
      f"{'scrapes':>8} {'scrape ms':>10} {'max ms':>8} {'scraper CPU ms':>15}")
rate, cpu = {}, {}
for i in range(int(rounds)):
    for mode in "AB":
        r = rows[mode][i]
        reqs, secs, bad, sock, ticks = int(r[1]), float(r[2]), int(r[3]), int(r[4]), int(r[5])
        scrapes = "-" if r[6] == "-" else r[6]
        mean = "-" if r[6] == "-" else r[8]
        mx = "-" if r[6] == "-" else r[9]
        own = "-" if r[6] == "-" else r[11]
        print(f"{r[0]:>5} {mode:>4} {reqs / secs:9.0f} {ticks / hz / reqs * 1e6:11.1f} {bad:8} {sock:9} "
              f"{scrapes:>8} {mean:>10} {mx:>8} {own:>15}")
        rate.setdefault(mode, []).append(reqs / secs)
        cpu.setdefault(mode, []).append(ticks / hz / reqs * 1e6)
a, b = med(rate["A"]), med(rate["B"])
ca, cb = med(cpu["A"]), med(cpu["B"])
print()
print(f"median req/s:      A {a:9.0f}   B {b:9.0f}   ratio B/A {b / a:.3f} (target >= 0.98)")
print(f"median CPU us/req: A {ca:9.1f}   B {cb:9.1f}   ratio B/A {cb / ca:.3f}")
# Each B against the A just before it: drift in the machine's load
# cancels better than in the ratio of medians.
pairs = [b_ / a_ for a_, b_ in zip(rate["A"], rate["B"])]
print(f"median of the {len(pairs)} paired ratios B/A (req/s): {med(pairs):.3f}")
n, ms, ticks = bursts["/metrics"]
per_scrape = ticks / hz / n
sn, sms, sticks = bursts["/v1/status"]
print(f"one scrape: {size} bytes, {scrape_s * 1000:.2f} ms (curl, median of 20, idle daemon)")
print(f"{n} scrapes back to back: {ms:.3f} ms each; daemon CPU {per_scrape * 1e3:.3f} ms each "
      f"(GET /v1/status, the snapshot alone: {sticks / hz / sn * 1e3:.3f} ms)")
# The daemon's CPU that scraping takes against what it spends on
# requests in A: what scraping would cost a CPU-bound daemon.
busy = ca / 1e6 * a
scraping = per_scrape / (int(interval) / 1000)
print(f"scraping every {interval} ms: {scraping * 1e3:.2f} ms of daemon CPU per second "
      f"({scraping * 100:.2f}% of a core), against {busy * 1e3:.0f} ms/s on requests in A: "
      f"expected ratio {busy / (busy + scraping):.4f}")
EOF
