#!/usr/bin/env bash
# Builds sockhost plugins written in Python into components, with
# componentize-py at the version sdk/python/requirements.txt pins
# (scripts/setup.sh installs it from PyPI).
#
#   plugins/build-python.sh                 build examples/python-* into
#                                           target/python-plugins/NAME/
#   plugins/build-python.sh DIR ...         build these plugin folders
#   plugins/build-python.sh --out OUT ...   build into OUT/NAME/ instead
#
# A Python plugin is a folder with plugin.toml and app.py (the module
# componentize-py exports from; more modules beside it may be imported), built
# against wit/0.1.0 with the helper package sdk/python/sockhost_plugin on the
# path. The component (~17.5 MiB: CPython and its standard library) goes to
# OUT/NAME/<plugin.component>, and a copy of the manifest beside it with
# plugin.sha256 set to the built component's: load that copy. Nothing built
# is committed.
#
# A folder whose sources (its files, the helper package, the WIT, the
# componentize-py version) have not changed since its last build is not
# rebuilt; --force rebuilds anyway.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out="$repo/target/python-plugins"
force=0
dirs=()
die() { echo "build-python.sh: $*" >&2; exit 1; }
while (($#)); do
    case "$1" in
        --out)
            shift
            [[ $# -gt 0 ]] || die "--out needs a folder"
            mkdir -p "$1"
            out=$(cd "$1" && pwd)
            ;;
        --force) force=1 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) die "unknown argument $1 (see --help)" ;;
        *) [[ -d $1 ]] || die "$1 is not a folder"; dirs+=("$(cd "$1" && pwd)") ;;
    esac
    shift
done
if ((${#dirs[@]} == 0)); then
    for d in "$repo"/examples/python-*/; do dirs+=("${d%/}"); done
fi

pin=$(grep -E '^componentize-py==' "$repo/sdk/python/requirements.txt" | cut -d= -f3)
[[ -n $pin ]] || die "sdk/python/requirements.txt pins no componentize-py version"
command -v componentize-py >/dev/null ||
    die "componentize-py not found: run bash scripts/setup.sh (installs componentize-py==$pin from PyPI)"
have=$(componentize-py --version | awk '{print $2}')
[[ $have == "$pin" ]] ||
    die "componentize-py $have is installed, sdk/python/requirements.txt pins $pin: run bash scripts/setup.sh"

# shellcheck source=plugins/manifest.sh
source "$here/manifest.sh"

# inputs DIR: one hash of everything the component is built from.
inputs() {
    {
        echo "componentize-py $pin"
        (cd "$1" && find . -type f -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
        (cd "$repo" && find sdk/python/sockhost_plugin wit/0.1.0 -type f -not -path '*/__pycache__/*' -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -d' ' -f1
}

for dir in "${dirs[@]}"; do
    manifest="$dir/plugin.toml"
    [[ -f $manifest ]] || die "$dir has no plugin.toml"
    [[ -f $dir/app.py ]] || die "$dir has no app.py (the module the component exports from)"
    name=$(field "$manifest" name)
    world=$(field "$manifest" world)
    component=$(field "$manifest" component)
    [[ -n $name && -n $world && -n $component ]] || die "$manifest: cannot read plugin.name, world or component"
    [[ $component != */* ]] || die "$manifest: plugin.component must be a file name (the component is written beside the built manifest)"
    dest="$out/$name"
    stamp=$(inputs "$dir")
    if ((!force)) && [[ -f $dest/$component && -f $dest/plugin.toml && $(cat "$dest/.inputs" 2>/dev/null) == "$stamp" ]]; then
        printf '  %-20s up to date  %s\n' "$name" "$dest/plugin.toml"
        continue
    fi
    mkdir -p "$dest"
    rm -f "$dest/.inputs"
    start=$(date +%s.%N)
    # Bindings are generated in memory from the WIT; nothing is stubbed:
    # what CPython imports and the plugin is not granted, the host links
    # without authority.
    (cd "$dir" && componentize-py -d "$repo/wit/0.1.0" -w "$world" componentize \
        -p "$dir" -p "$repo/sdk/python" app -o "$dest/$component") >"$dest/build.log" 2>&1 || {
        cat "$dest/build.log" >&2
        die "componentize-py failed for $dir"
    }
    sum=$(sha256sum "$dest/$component" | cut -d' ' -f1)
    with_sha256 "$manifest" "$sum" "$dest/plugin.toml"
    echo "$stamp" >"$dest/.inputs"
    printf '  %-20s %9d bytes  %s  %.1f s\n' "$name" "$(stat -c %s "$dest/$component")" "$sum" \
        "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
done
