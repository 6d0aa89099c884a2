#!/usr/bin/env bash
# sockhost's main job on its embedded defaults: fetch from a local origin
# through the full stack (DNS override, connection race, HTTP, the built-in
# blocklist extension and request-stats probe), then show the blocklist
# cancelling an ad host before any connection is made.
#
# The local origin is Python's http.server on loopback, serving this
# repository; nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${SOCKHOST_DEMO_PORT:-8765}

cargo build --quiet --release -p sockhost
bin=target/release/sockhost

python3 -m http.server "$port" --bind 127.0.0.1 --directory . >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

echo "== fetch through the full stack (tracking parameter stripped by the blocklist hook):"
"$bin" fetch --json --metrics \
    --resolve "www.local.test:$port:127.0.0.1" \
    "http://www.local.test:$port/README.md?utm_source=demo" | python3 -m json.tool
echo
echo "== an ad host, cancelled by the blocklist's rules before any connection:"
if "$bin" fetch --resolve "ads.example:$port:127.0.0.1" "http://ads.example:$port/banner.js"; then
    echo "demo: the ad request was not blocked" >&2
    exit 1
fi
