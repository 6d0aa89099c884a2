#!/usr/bin/env bash
# Builds sockhost plugins written in JavaScript into components, with the
# ComponentizeJS that sdk/js/package-lock.json pins (scripts/setup.sh installs
# it with `npm ci` into sdk/js/node_modules).
#
#   plugins/build-js.sh [--out DIR] [PLUGIN_DIR ...]
#
# A JavaScript plugin is a folder with plugin.js (an ES module exporting the
# world's interface, e.g. `export const addOn = {...}`) and plugin.toml (the
# source manifest, whose `sha256` is a placeholder). Each one is built into
# DIR/<name>/ (default DIR: target/js-plugins; default folders:
# examples/js-extension): the component where the manifest's `component`
# points, and a copy of plugin.toml with the component's sha256 filled in.
# Load that copy. The components are not committed (about 12 MiB each: the
# SpiderMonkey engine is inside).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

die() { echo "build-js.sh: $*" >&2; exit 1; }

out="$repo/target/js-plugins"
dirs=()
while (($#)); do
    case "$1" in
        --out)
            shift
            [[ $# -gt 0 ]] || die "--out needs a folder"
            mkdir -p "$1"
            out=$(cd "$1" && pwd)
            ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        -*) die "unknown argument $1 (see --help)" ;;
        *)
            [[ -d $1 ]] || die "$1 is not a folder"
            dirs+=("$(cd "$1" && pwd)")
            ;;
    esac
    shift
done
((${#dirs[@]})) || dirs=("$repo/examples/js-extension")

command -v node >/dev/null || die "node is not installed (bash scripts/setup.sh installs it)"
componentize="$repo/sdk/js/node_modules/.bin/componentize-js"
[[ -x $componentize ]] ||
    die "$componentize is missing: run bash scripts/setup.sh (npm ci in sdk/js)"
echo "build-js.sh: node $(node --version), componentize-js $("$componentize" --version)"

# shellcheck source=plugins/manifest.sh
source "$here/manifest.sh"

for dir in "${dirs[@]}"; do
    manifest="$dir/plugin.toml"
    [[ -f $manifest ]] || die "$dir has no plugin.toml"
    [[ -f $dir/plugin.js ]] || die "$dir has no plugin.js"
    name=$(field "$manifest" name)
    world=$(field "$manifest" world)
    component=$(field "$manifest" component)
    [[ -n $name && -n $world && -n $component ]] || die "$manifest: cannot read name, world or component"
    dest="$out/$name"
    mkdir -p "$dest"
    # Builds of one plugin into one folder take turns.
    exec 9>"$dest/.lock"
    flock 9 || die "cannot lock $dest"
    wasm="$dest/$component"
    mkdir -p "$(dirname "$wasm")"
    rm -f "$wasm" "$dest/plugin.toml"
    started=$EPOCHREALTIME
    # `http` and `fetch-event` are disabled: the host owns every request, and
    # wasi:http is refused at load. The WIT path is given relative to the
    # repository (the form ComponentizeJS was checked with).
    (cd "$repo" && "$componentize" "$dir/plugin.js" --wit wit/0.1.0 --world-name "$world" \
        -d http fetch-event -o "$wasm") || die "componentize-js failed for $dir/plugin.js"
    [[ -s $wasm ]] || die "componentize-js wrote no component for $dir/plugin.js"
    took=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    sum=$(sha256sum "$wasm" | cut -d' ' -f1)
    with_sha256 "$manifest" "$sum" "$dest/plugin.toml"
    printf 'build-js.sh: %s: %d bytes in %s s, sha256 %s\n  manifest %s\n' \
        "${dir#"$repo"/}" "$(stat -c %s "$wasm")" "$took" "$sum" "$dest/plugin.toml"
    exec 9>&-
done
