#!/usr/bin/env bash
# The three-node cluster benchmark in one command (issue 13):
#
#   bench/cluster-bench.sh [quick|full] [more cluster-bench flags]
#
# Builds the workspace optimised, then runs cluster-bench, which starts fresh etcd (Debian's
# /usr/bin/etcd) and warrant clusters on loopback, measures every scenario and the anchors in the
# same run, and writes bench/results/<date>[-quick].json, SVG plots beside it, and the
# cluster-bench section of BENCHMARKS.md. quick takes at most 3 minutes, full at most 15.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-quick}"
shift || true
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --workspace
exec "$target_dir/release/cluster-bench" --mode "$mode" --warrant-bin "$target_dir/release/warrant" "$@"
