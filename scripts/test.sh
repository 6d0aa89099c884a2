#!/usr/bin/env bash
# Sets up a fresh machine, checks that plugins/dist/ rebuilds byte for byte
# from source, builds the out-of-tree example with the SDK and the build
# script alone, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo; echo "=== test.sh: $* ==="; }

step setup
bash scripts/setup.sh
step "plugins/dist rebuilds byte for byte"
bash plugins/build.sh --check
step "the out-of-tree example builds and passes plugin check"
bash plugins/build.sh --crate examples/fixed-window
cargo run --quiet -p sockhost -- plugin check examples/fixed-window/plugin.toml
step "plugin logic, natively"
cargo test --manifest-path plugins/Cargo.toml --workspace
cargo test --manifest-path examples/fixed-window/Cargo.toml
bash sdk/python/test.sh
step "cargo test --workspace"
cargo test --workspace
