# Sourced by the plugin build scripts (build.sh, build-python.sh,
# build-js.sh): reading a plugin.toml and writing the copy of it that names
# a built component's sha256. Each script defines `die` before sourcing.

# field FILE KEY: the string value of KEY in FILE's [plugin] table.
field() {
    awk -v key="$2" '
        /^\[/ { in_plugin = ($0 == "[plugin]") }
        in_plugin && $1 == key && $2 == "=" {
            v = $0; sub(/^[^=]*= *"/, "", v); sub(/".*$/, "", v); print v; exit
        }' "$1"
}

# with_sha256 MANIFEST SUM OUT: MANIFEST with its sha256 set to SUM, written
# to OUT. The line must be there to be replaced: a copy without it would
# fail to load with a less helpful error.
with_sha256() {
    grep -q '^sha256 = ' "$1" || die "$1 has no sha256 line to fill in"
    sed "s/^sha256 = .*/sha256 = \"$2\"/" "$1" >"$3"
}
