#!/usr/bin/env bash
# `sockhost serve` as a forward proxy next to squid and tinyproxy, in front
# of the same nginx (Debian's), all on 127.0.0.1, interleaved round by round
# (direct, sockhost, squid, tinyproxy):
# - 1 KiB responses over plain HTTP with wrk at concurrency 16 (absolute-form
#   requests through each proxy): requests/s, p50, p99, and the proxy's CPU
#   time per request (its process tree's utime+stime);
# - a 1 GiB HTTPS download through a CONNECT tunnel with curl: MiB/s, and the
#   proxy's CPU time for it;
# - sockhost's resident memory idle and holding 1,000 idle client
#   connections.
# Prints figures, asserts nothing. Installs squid, tinyproxy and wrk when
# missing (Debian; CI does not run this). Environment: ROUNDS (3), DURATION
# (wrk seconds per run, 5), CONNS (16), IDLE_CONNS (1000).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-3}
duration=${DURATION:-5}
conns=${CONNS:-16}
idle_conns=${IDLE_CONNS:-1000}

source scripts/bench-common.sh
bench_need squid tinyproxy wrk curl python3

cargo build --quiet --release -p sockhost -p sockhost-tests --bins
bin=${CARGO_TARGET_DIR:-target}/release

tmp=$(mktemp -d)
chmod 0755 "$tmp"
# A free loopback port (bound, read, released: the proxy binds it next).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_listening() { # PORT NAME LOG
    local i
    for ((i = 0; i < 200; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "$2 did not listen on 127.0.0.1:$1:" >&2
    cat "$3" >&2 || true
    exit 1
}

coproc NGINX { exec "$bin/test-nginx"; }
read -r tls_addr ca http_addr <&"${NGINX[0]}"
tls_port=${tls_addr##*:}
http_port=${http_addr##*:}
[[ -n $http_port ]] || { echo "test-nginx printed no cleartext address" >&2; exit 1; }

# sockhost: plugins and state as a user's would be, except the Alt-Svc
# cache, kept out of the user's data folder.
XDG_DATA_HOME=$tmp/sockhost-data "$bin/sockhost" serve --listen 127.0.0.1:0 --no-unix \
    --resolve "localhost:$tls_port:127.0.0.1" --ca "$ca" --connect-port "$tls_port" \
    >"$tmp/sockhost.out" 2>"$tmp/sockhost.log" &
pids+=($!)
sockhost_pid=$!
for ((i = 0; i < 400; i++)); do
    [[ -s $tmp/sockhost.out ]] && break
    kill -0 "$sockhost_pid" 2>/dev/null || { cat "$tmp/sockhost.log" >&2; exit 1; }
    sleep 0.05
done
sockhost_addr=$(head -1 "$tmp/sockhost.out" | sed -n 's|^listening on http://\([^ ]*\) .*|\1|p')
[[ -n $sockhost_addr ]] || { echo "sockhost printed no address" >&2; cat "$tmp/sockhost.log" >&2; exit 1; }
sockhost_port=${sockhost_addr##*:}

# squid: no cache, no access log; it drops root for the `proxy` user, who
# must write its pid and log.
squid_port=$(free_port)
mkdir -p "$tmp/squid"
cat >"$tmp/squid/squid.conf" <<EOF
http_port 127.0.0.1:$squid_port
acl SSL_ports port $tls_port
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
http_access allow localhost
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log $tmp/squid/cache.log
pid_filename $tmp/squid/squid.pid
coredump_dir $tmp/squid
netdb_filename none
shutdown_lifetime 0 seconds
pinger_enable off
EOF
if [[ $(id -u) == 0 ]]; then chown -R proxy:proxy "$tmp/squid"; fi
squid -N -f "$tmp/squid/squid.conf" >"$tmp/squid/stdout.log" 2>&1 &
pids+=($!)
squid_pid=$!
wait_listening "$squid_port" squid "$tmp/squid/cache.log"

# tinyproxy: threads, logging errors only.
tinyproxy_port=$(free_port)
mkdir -p "$tmp/tinyproxy"
cat >"$tmp/tinyproxy/tinyproxy.conf" <<EOF
Port $tinyproxy_port
Listen 127.0.0.1
Allow 127.0.0.1
ConnectPort $tls_port
Timeout 600
MaxClients 256
LogLevel Error
LogFile "$tmp/tinyproxy/tinyproxy.log"
PidFile "$tmp/tinyproxy/tinyproxy.pid"
EOF
if [[ $(id -u) == 0 ]]; then
    printf 'User nobody\nGroup nogroup\n' >>"$tmp/tinyproxy/tinyproxy.conf"
    chown -R nobody:nogroup "$tmp/tinyproxy"
fi
tinyproxy -d -c "$tmp/tinyproxy/tinyproxy.conf" >"$tmp/tinyproxy/stdout.log" 2>&1 &
pids+=($!)
tinyproxy_pid=$!
wait_listening "$tinyproxy_port" tinyproxy "$tmp/tinyproxy/stdout.log"

declare -A proxy_port=([sockhost]=$sockhost_port [squid]=$squid_port [tinyproxy]=$tinyproxy_port)
declare -A proxy_pid=([sockhost]=$sockhost_pid [squid]=$squid_pid [tinyproxy]=$tinyproxy_pid)
names=(direct sockhost squid tinyproxy)
hz=$(getconf CLK_TCK)

# Resident KiB of a process tree.
rss_kib() {
    local total=0 p kib
    for p in $(tree "$1"); do
        kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

bench_wrk_script "$tmp/abs.lua"

results=$tmp/results
: >"$results"

small() { # NAME ROUND
    local name=$1 target path before after line
    if [[ $name == direct ]]; then
        target=http://127.0.0.1:$http_port/
        path=/small.txt
    else
        target=http://127.0.0.1:${proxy_port[$name]}/
        path=http://127.0.0.1:$http_port/small.txt
    fi
    [[ $name == direct ]] || before=$(cpu_ticks "${proxy_pid[$name]}")
    line=$(BENCH_PATH=$path BENCH_HOST=127.0.0.1:$http_port \
        wrk -c "$conns" -t 2 -d "${duration}s" --latency -s "$tmp/abs.lua" "$target" |
        grep '^RESULT ')
    [[ $name == direct ]] || after=$(cpu_ticks "${proxy_pid[$name]}")
    # RESULT requests seconds p50_us p99_us non-2xx/3xx socket-errors
    read -r _ reqs secs p50 p99 bad sock <<<"$line"
    echo "small $name $2 $reqs $secs $p50 $p99 $bad $((${after:-0} - ${before:-0})) $sock" >>"$results"
    python3 -c "print(f'  small  {\"$name\":9} {$reqs / $secs:8.0f} req/s  p50 {$p50 / 1000:6.2f} ms  p99 {$p99 / 1000:6.2f} ms  non-2xx $bad  socket errors $sock')"
}

large() { # NAME ROUND
    local name=$1 before after speed proxy=()
    [[ $name == direct ]] || proxy=(-x "http://127.0.0.1:${proxy_port[$name]}")
    [[ $name == direct ]] || before=$(cpu_ticks "${proxy_pid[$name]}")
    speed=$(curl -sS --fail "${proxy[@]}" --cacert "$ca" -o /dev/null -w '%{speed_download}' \
        "https://localhost:$tls_port/1g.bin")
    [[ $name == direct ]] || after=$(cpu_ticks "${proxy_pid[$name]}")
    echo "large $name $2 $speed $((${after:-0} - ${before:-0}))" >>"$results"
    python3 -c "print(f'  1 GiB  {\"$name\":9} {$speed / 1048576:8.0f} MiB/s')"
}

# Resident memory before any traffic.
for name in sockhost squid tinyproxy; do
    echo "rss_idle_start $name $(rss_kib "${proxy_pid[$name]}")" >>"$results"
done

# One unmeasured download first: the first one after nginx starts is slow.
curl -sS --fail --cacert "$ca" -o /dev/null "https://localhost:$tls_port/1g.bin"

for ((round = 1; round <= rounds; round++)); do
    echo "round $round/$rounds" >&2
    for name in "${names[@]}"; do small "$name" "$round" >&2; done
    for name in "${names[@]}"; do large "$name" "$round" >&2; done
done

# sockhost at rest after the rounds, then holding idle client connections
# (connected, nothing sent).
sleep 1
echo "rss_idle_after sockhost $(rss_kib "$sockhost_pid")" >>"$results"
# A fifo, not a second coproc (bash runs one at a time): the helper holds
# the connections until its stdin closes.
mkfifo "$tmp/hold.in"
python3 -c '
import socket, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
print(len(held), flush=True)
sys.stdin.read()
' "$idle_conns" "$sockhost_port" <"$tmp/hold.in" >"$tmp/hold.out" &
pids+=($!)
hold_pid=$!
exec {hold_in}>"$tmp/hold.in"
for ((i = 0; i < 600; i++)); do
    [[ -s $tmp/hold.out ]] && break
    kill -0 "$hold_pid" 2>/dev/null || { echo "the connection holder failed" >&2; exit 1; }
    sleep 0.05
done
read -r held <"$tmp/hold.out"
sleep 2
open=$(ls "/proc/$sockhost_pid/fd" | wc -l)
echo "rss_held sockhost $(rss_kib "$sockhost_pid") $held $open" >>"$results"
exec {hold_in}>&-
wait "$hold_pid" 2>/dev/null || true

python3 - "$results" "$hz" "$rounds" "$duration" "$conns" <<'EOF'
import statistics, sys
path, hz, rounds, duration, conns = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
small, large, rss = {}, {}, {}
for line in open(path):
    f = line.split()
    if f[0] == "small":
        small.setdefault(f[1], []).append(
            (int(f[3]), float(f[4]), int(f[5]), int(f[6]), int(f[7]), int(f[8]), int(f[9])))
    elif f[0] == "large":
        large.setdefault(f[1], []).append((float(f[3]), int(f[4])))
    else:
        rss[(f[0], f[1])] = f[2:]
names = ["direct", "sockhost", "squid", "tinyproxy"]
med = statistics.median
print()
print(f"Small responses (1 KiB, plain HTTP, wrk -c {conns}, {duration} s x {rounds} rounds; "
      "median of rounds; CPU = the proxy's, total over all rounds / requests)")
print(f"{'':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} {'non-2xx':>8} "
      f"{'socket errors':>14}")
for n in names:
    r = small.get(n, [])
    if not r:
        continue
    reqs = sum(x[0] for x in r)
    cpu = "-" if n == "direct" else f"{sum(x[5] for x in r) / hz / reqs * 1e6:.1f}"
    print(f"{n:10} {med(x[0] / x[1] for x in r):9.0f} {med(x[2] for x in r) / 1000:8.2f} "
          f"{med(x[3] for x in r) / 1000:8.2f} {cpu:>11} {sum(x[4] for x in r):8} "
          f"{sum(x[6] for x in r):14}")
print("(socket errors: mostly a proxy closing the connection after a response without\n"
      " `Connection: close`, as tinyproxy does: wrk reconnects and counts a read error)")
print()
print(f"1 GiB over HTTPS through CONNECT (curl; {rounds} rounds; median; CPU = the proxy's per GiB)")
print(f"{'':10} {'MiB/s':>9} {'CPU s/GiB':>10}")
for n in names:
    r = large.get(n, [])
    if not r:
        continue
    cpu = "-" if n == "direct" else f"{sum(x[1] for x in r) / hz / len(r):.2f}"
    print(f"{n:10} {med(x[0] for x in r) / 1048576:9.0f} {cpu:>10}")
print()
print("Resident memory (VmRSS, MiB)")
for n in ["sockhost", "squid", "tinyproxy"]:
    v = rss.get(("rss_idle_start", n))
    if v:
        print(f"{n:10} idle at start {int(v[0]) / 1024:8.1f}")
v = rss.get(("rss_idle_after", "sockhost"))
if v:
    print(f"{'sockhost':10} idle after the rounds {int(v[0]) / 1024:8.1f}")
v = rss.get(("rss_held", "sockhost"))
if v:
    kib, held, fds = int(v[0]), v[1], v[2]
    print(f"{'sockhost':10} with {held} idle client connections {kib / 1024:8.1f} "
          f"({fds} open fds)")
EOF
