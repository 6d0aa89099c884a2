#!/usr/bin/env bash
# Installs what building and testing sockhost needs on a fresh Debian machine
# with rustup's stable toolchain: the offline wasm32 toolchain (Debian's
# rustc-web with its library source, for -Zbuild-std) and wasi-libc; nginx
# and curl (peers for the tests and benchmarks); prometheus (promtool lints
# the /metrics exposition, and the server scrapes it); chromium (the headless
# browser of tests/tests/serve_browser.rs); iproute2 and nftables (the
# network-namespace fault tests); aioquic from PyPI; componentize-py from PyPI
# at the version sdk/python/requirements.txt pins (Python plugins); Node.js
# and, from the npm registry, the ComponentizeJS that sdk/js/package-lock.json
# pins (JavaScript plugins).
set -euo pipefail

need=()
for pkg in rustc-web cargo-web rust-web-src wasi-libc ca-certificates openssl nginx curl chromium iproute2 nftables; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing packages ${need[*]}; run as root or install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
fi
# prometheus: only its programs (tests/tests/metrics_exposition.rs runs them
# on loopback), not its recommended exporters nor the service it enables.
if ! dpkg -s prometheus >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing package prometheus; run as root or install it" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now prometheus.service || true
    fi
fi
# aioquic (PyPI): the HTTP/3 server the interop tests talk to.
if ! python3 -c 'import aioquic' 2>/dev/null; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3-pip
    fi
    # Debian's Python refuses installs outside a venv unless told (PEP 668).
    python3 -m pip install --quiet aioquic 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages aioquic
    python3 -c 'import aioquic' || { echo "setup: aioquic did not install" >&2; exit 1; }
fi
# componentize-py (PyPI): builds the Python plugins (plugins/build-python.sh).
pin=$(grep -E '^componentize-py==' "$(dirname "$0")/../sdk/python/requirements.txt")
if [[ $(componentize-py --version 2>/dev/null) != "componentize-py ${pin#*==}" ]]; then
    python3 -m pip --version >/dev/null 2>&1 || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3-pip
    }
    python3 -m pip install --quiet "$pin" 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages "$pin"
    [[ $(componentize-py --version 2>/dev/null) == "componentize-py ${pin#*==}" ]] ||
        { echo "setup: $pin did not install (is pip's bin folder on PATH?)" >&2; exit 1; }
fi
# Node.js and ComponentizeJS (npm): build the JavaScript plugins
# (plugins/build-js.sh). `npm ci` runs again only when the lock file changed.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm
fi
js="$(cd "$(dirname "$0")/.." && pwd)/sdk/js"
if ! cmp -s "$js/package-lock.json" "$js/node_modules/.sockhost-installed-lock"; then
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$js/package-lock.json" "$js/node_modules/.sockhost-installed-lock"
fi
"$js/node_modules/.bin/componentize-js" --version >/dev/null ||
    { echo "setup: componentize-js did not install in $js" >&2; exit 1; }
for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
