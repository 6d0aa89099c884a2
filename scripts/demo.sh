#!/usr/bin/env bash
# sockhost's main job on its embedded defaults, driven by curl: a daemon
# (`sockhost serve`, with the built-in blocklist extension and request-stats
# probe) is started on a free loopback port, and curl, unchanged, fetches
# through it as through any HTTP proxy:
#   1. a page from a local origin (the blocklist's hook strips utm_source,
#      and the response says so in Sockhost-Actions, asked for);
#   2. the same over the daemon's Unix socket, with an h2c client, and with
#      sockhost's own IPC client (`sockhost fetch --via`);
#   3. an ad host, cancelled by the blocklist before any connection (403);
#   4. the same refusal as JSON, for programs;
# then the daemon is stopped with SIGTERM: it finishes cleanly and prints
# what its probe counted. Last, the one-shot `sockhost fetch --json` shows
# every detail of one fetch.
#
# The local origin is Python's http.server on loopback, serving this
# repository; nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${SOCKHOST_DEMO_PORT:-8765}

cargo build --quiet --release -p sockhost
bin=target/release/sockhost
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

python3 -m http.server "$port" --bind 127.0.0.1 --directory . >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

# The daemon, on the embedded defaults; its data (Alt-Svc cache) and socket
# go to a scratch folder. Port 0: a free port, read from its first line.
XDG_DATA_HOME="$work/data" "$bin" serve --listen 127.0.0.1:0 --unix "$work/sockhost.sock" \
    --resolve "www.local.test:$port:127.0.0.1" --resolve "ads.example:$port:127.0.0.1" \
    >"$work/serve.out" 2>"$work/serve.err" &
daemon=$!
pids+=("$daemon")
for _ in $(seq 100); do
    grep -q '^listening on http://' "$work/serve.out" 2>/dev/null && break
    kill -0 "$daemon" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.1
done
echo "== the daemon says:"
cat "$work/serve.out"
proxy=$(sed -n 's|^listening on \(http://[^ ]*\).*|\1|p' "$work/serve.out" | head -1)
[[ -n $proxy ]] || { echo "demo: the daemon did not say where it listens" >&2; exit 1; }

echo
echo "== curl -x $proxy (an HTTP proxy, absolute form); response headers:"
curl -sS --fail -x "$proxy" -H 'Sockhost-Actions: ?1' -o "$work/page" -D - \
    "http://www.local.test:$port/README.md?utm_source=demo" | tr -d '\r'
echo "($(wc -c <"$work/page") bytes of README.md)"

echo
echo "== the same over the daemon's Unix socket, HTTP/2 with prior knowledge:"
# Over h2 the request's :scheme and :authority name the origin.
curl -sS --fail --http2-prior-knowledge --unix-socket "$work/sockhost.sock" \
    -o /dev/null -w 'status %{http_code}, HTTP/%{http_version}, %{size_download} bytes\n' \
    "http://www.local.test:$port/README.md"
echo "== and with sockhost's IPC client (one HTTP/2 connection to the socket):"
"$bin" fetch --via "$work/sockhost.sock" -o /dev/null "http://www.local.test:$port/README.md"
echo "fetched through the daemon"

echo
echo "== an ad host: the blocklist cancels it before any connection:"
code=$(curl -sS -x "$proxy" -o "$work/refusal" -w '%{http_code}' \
    "http://ads.example:$port/banner.js")
echo "status $code: $(cat "$work/refusal")"
[[ $code == 403 ]] || { echo "demo: the ad request was not blocked" >&2; exit 1; }

echo
echo "== the same refusal for a program (Accept: application/json):"
curl -sS -x "$proxy" -H 'Accept: application/json' "http://ads.example:$port/banner.js"

echo
echo "== SIGTERM: the daemon stops accepting, finishes what is in flight, saves what it learned,"
echo "   and says what its probe counted:"
kill -TERM "$daemon"
wait "$daemon" && echo "the daemon exited cleanly" || { echo "demo: the daemon failed" >&2; exit 1; }
cat "$work/serve.err"

echo
echo "== one fetch in-process with every detail (sockhost fetch --json --metrics):"
"$bin" fetch --json --metrics \
    --resolve "www.local.test:$port:127.0.0.1" \
    "http://www.local.test:$port/README.md?utm_source=demo" | python3 -m json.tool
