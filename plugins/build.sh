#!/usr/bin/env bash
# Builds sockhost plugins into components.
#
#   plugins/build.sh                  build every plugin under plugins/ into
#                                     plugins/dist/ and update the sha256 in
#                                     each plugin.toml
#   plugins/build.sh --check          rebuild into a temporary folder and fail
#                                     if anything differs from what is
#                                     committed (what CI runs)
#   plugins/build.sh --crate DIR ...  build out-of-tree plugin crates (each a
#                                     workspace of its own with a plugin.toml,
#                                     e.g. examples/fixed-window)
#
# A plugin is a folder with Cargo.toml and plugin.toml; the component goes
# where plugin.toml's `component` points. The core module is built for
# wasm32-unknown-unknown, with rustup's wasm32 target when the machine has
# one, otherwise with Debian's rustc-web and -Zbuild-std (scripts/setup.sh
# installs it; nothing is downloaded from outside the package registries).
# Then tools/componentize makes it a component of the manifest's world.
#
# Builds are reproducible: the sources are copied to one fixed folder
# (rustc's crate hashes, and so symbol names and type ids, depend on where a
# path dependency such as sdk/ lives), embedded paths are remapped, and the
# toolchain is recorded in dist/TOOLCHAIN, so the same sources and
# toolchain give the same bytes on any machine and in any checkout. An
# out-of-tree crate's own folder is remapped too (to /plugin), so moving it
# does not change its bytes (moving a path dependency such as the SDK
# still does, through cargo's crate hashes).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
target=wasm32-unknown-unknown

check=0
crates=()
while (($#)); do
    case "$1" in
        --check) check=1 ;;
        --crate)
            shift
            [[ $# -gt 0 ]] || { echo "build.sh: --crate needs a folder" >&2; exit 2; }
            crates+=("$(cd "$1" && pwd)")
            ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "build.sh: $*" >&2; exit 1; }

# --- the wasm32 toolchain ---------------------------------------------------
sysroot=$(rustc --print sysroot)
if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    recipe=rustup
    wasm_cargo=(cargo)
    wasm_rustc=rustc
    build_std=()
    wasm_env=()
else
    recipe=debian-build-std
    [[ -x /usr/bin/rustc && -d /usr/lib/rustlib/src/rust/library ]] ||
        die "no wasm32 toolchain: install rustc-web cargo-web rust-web-src (bash scripts/setup.sh)"
    lld_bin="$sysroot/lib/rustlib/x86_64-unknown-linux-gnu/bin"
    [[ -x "$lld_bin/rust-lld" ]] || die "rust-lld not found in $lld_bin"
    wasm_cargo=(/usr/bin/cargo)
    wasm_rustc=/usr/bin/rustc
    build_std=(-Zbuild-std=std,panic_abort)
    wasm_env=(PATH="/usr/bin:$lld_bin:$lld_bin/gcc-ld:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1)
fi
toolchain="$recipe: $($wasm_rustc -V)"

# The fixed folder the in-tree plugins are built in (see the top).
stage=/tmp/sockhost-plugin-build
mkdir -p "$stage"
exec 9>"$stage/.lock"
flock 9 || die "cannot lock $stage"

cargo_home=${CARGO_HOME:-$HOME/.cargo}
rust_src=$($wasm_rustc --print sysroot)/lib/rustlib/src/rust
# Absolute paths end up in panic messages; remapping them makes the bytes
# independent of where the sources and the caches are.
rustflags="--remap-path-prefix=$stage/src=/sockhost --remap-path-prefix=$repo=/sockhost --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$rust_src=/rust-src"

echo "build.sh: toolchain $toolchain"

# --- the componentize tool (a host-workspace binary) ------------------------
(cd "$repo" && cargo build --quiet -p sockhost-componentize)
componentize="${CARGO_TARGET_DIR:-$repo/target}/debug/sockhost-componentize"

# shellcheck source=plugins/manifest.sh
source "$here/manifest.sh"

# build_workspace DIR TARGET_DIR [RUSTFLAGS]: builds the cargo workspace at DIR
# for wasm32, with RUSTFLAGS added to the common ones.
build_workspace() {
    echo "build.sh: building $1"
    (cd "$1" && env "${wasm_env[@]}" RUSTFLAGS="$rustflags${3:+ $3}" CARGO_TARGET_DIR="$2" \
        "${wasm_cargo[@]}" build --quiet --release --locked --target "$target" "${build_std[@]}" --workspace) ||
        die "cargo build failed in $1"
}

# stage_sources: copies what the in-tree plugins are built from to $stage/src
# (modification times kept, so cargo rebuilds only what changed).
stage_sources() {
    mkdir -p "$stage/src"
    local part
    for part in wit sdk plugins; do
        rm -rf "${stage:?}/src/$part"
        mkdir -p "$stage/src/$part"
        (cd "$repo/$part" && tar --exclude=./target --exclude=./dist -cf - .) |
            (cd "$stage/src/$part" && tar -xf -)
    done
}

failures=()
outdir=$(mktemp -d)
trap 'rm -rf "$outdir"' EXIT

# componentize_one PLUGIN_DIR WORKSPACE_DIR
componentize_one() {
    local dir=$1 ws=$2
    local manifest="$dir/plugin.toml"
    local crate world component module wit wit_world out sum
    crate=$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1)
    world=$(field "$manifest" world)
    component=$(field "$manifest" component)
    [[ -n $crate && -n $world && -n $component ]] || die "$manifest: cannot read crate name, world or component"
    module="$ws/$target/release/${crate//-/_}.wasm"
    [[ -f $module ]] || die "$module was not built (is $crate a cdylib?)"
    # A plugin with its own wit/ folder (a fixture importing something
    # sockhost does not define) names its world after the plugin.
    if [[ -d "$dir/wit" ]]; then
        wit="$dir/wit"
        wit_world=$(field "$manifest" name)
    else
        wit="$repo/wit/0.1.0"
        wit_world=$world
    fi
    out="$dir/$component"
    if ((check)); then
        out="$outdir/${component//\//_}"
    fi
    mkdir -p "$(dirname "$out")"
    "$componentize" --wit "$wit" --world "$wit_world" "$module" -o "$out" ||
        die "componentize failed for $crate"
    sum=$(sha256sum "$out" | cut -d' ' -f1)
    local rel=${dir#"$repo"/}
    if ((check)); then
        if ! cmp -s "$out" "$dir/$component"; then
            failures+=("$rel: $component differs from a fresh build")
        fi
        if [[ $(field "$manifest" sha256) != "$sum" ]]; then
            failures+=("$rel/plugin.toml: sha256 is not the fresh build's $sum")
        fi
    else
        sed -i "s/^sha256 = \".*\"/sha256 = \"$sum\"/" "$manifest"
        printf '  %-36s %7d bytes  %s\n' "$rel" "$(stat -c %s "$out")" "$sum"
    fi
}

if ((${#crates[@]})); then
    for c in "${crates[@]}"; do
        [[ -f "$c/plugin.toml" ]] || die "$c has no plugin.toml"
        # The author's own folder must not end up in the component's panic
        # messages (it names their home directory).
        build_workspace "$c" "$c/target" "--remap-path-prefix=$c=/plugin"
        componentize_one "$c" "$c/target"
    done
else
    stage_sources
    build_workspace "$stage/src/plugins" "$stage/target"
    mapfile -t dirs < <(cd "$here" && find . -name plugin.toml -not -path './target/*' -not -path './dist/*' |
        sed 's|/plugin.toml$||; s|^\./||' | LC_ALL=C sort)
    for d in "${dirs[@]}"; do
        componentize_one "$here/$d" "$stage/target"
    done
    if ((check)); then
        [[ $(cat "$here/dist/TOOLCHAIN" 2>/dev/null) == "$toolchain" ]] ||
            failures+=("dist/TOOLCHAIN says '$(cat "$here/dist/TOOLCHAIN" 2>/dev/null)', this build used '$toolchain'")
    else
        echo "$toolchain" >"$here/dist/TOOLCHAIN"
    fi
fi

if ((${#failures[@]})); then
    echo "build.sh: plugins/dist does not match its sources:" >&2
    printf '  %s\n' "${failures[@]}" >&2
    echo "build.sh: run plugins/build.sh and commit the result" >&2
    exit 1
fi
((check)) && echo "build.sh: every component matches a fresh build"
exit 0
