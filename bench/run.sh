#!/usr/bin/env bash
# `make bench`: release build with the production profile, then the side-by-side run.
# Extra arguments go to switchyard-bench (see `target/release/switchyard-bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nginx >/dev/null 2>&1 || { echo "bench needs nginx: apt-get install -y nginx-light" >&2; exit 1; }
cargo build --release --workspace --bins
exec target/release/switchyard-bench "$@"
