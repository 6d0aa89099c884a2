#!/usr/bin/env bash
# Tests the sockhost_plugin helper package natively: generates
# componentize-py's bindings of each world it covers into a scratch folder
# and runs that world's unit tests against them. Host imports (log, storage,
# rules) are not reachable natively; the end-to-end tests
# (tests/tests/python_plugins.rs) run the helper inside the host.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for pair in extension:test_extension telemetry-probe:test_probe; do
    world=${pair%%:*}
    module=${pair#*:}
    componentize-py -d "$repo/wit/0.1.0" -w "$world" bindings "$scratch/$world" >/dev/null
    (cd "$here/tests" && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$scratch/$world:$here" python3 -m unittest -q "$module")
done
