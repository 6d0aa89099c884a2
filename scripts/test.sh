#!/usr/bin/env bash
# Sets up a fresh machine, checks that plugins/dist/ rebuilds byte for byte
# from source, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash plugins/build.sh --check
# The plugins' own logic, natively.
cargo test --manifest-path plugins/Cargo.toml --workspace
cargo test --workspace
