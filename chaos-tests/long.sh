#!/usr/bin/env bash
# The long tier: every nemesis alone at length, then all of them composed (30 minutes or more).
# Usage: chaos-tests/long.sh [--seed N] [--minutes M]   (as root: it makes network namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."
# Debug builds, like the CI tier: the same `warrant` binary the tests run, with the `chaos`
# feature, and no second RocksDB build for a release profile.
cargo build -p warrant-node --features chaos --bin warrant
cargo build -p warrant-chaos --bin warrant-chaos
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/debug/warrant-chaos" long --table chaos-tests/last-long-run.md "$@"
