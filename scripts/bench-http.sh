#!/usr/bin/env bash
# sockhost vs curl against the same nginx (Debian's), interleaved: a 1 GiB
# HTTP/2 download and 10,000 small requests; then the request path with the
# default plugins vs none. Extra arguments go to `sockhost bench http`
# (e.g. --rounds 5 --small-requests 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p sockhost -p sockhost-tests --bins
coproc NGINX { exec target/release/test-nginx; }
# Closing its stdin makes test-nginx stop nginx (master and workers) and
# exit; a signal would leave nginx running.
stop_nginx() {
    exec {NGINX[1]}>&- 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
}
trap stop_nginx EXIT
read -r addr ca _http_addr <&"${NGINX[0]}"
port=${addr##*:}
target/release/sockhost bench http \
    --large-url "https://nginx.test:$port/1g.bin" \
    --small-url "https://nginx.test:$port/small.txt" \
    --ca "$ca" --resolve "nginx.test:$port:127.0.0.1" "$@"
