#!/usr/bin/env bash
# Which release profile is fastest? Builds each candidate and runs the same side-by-side bench
# against it (nginx is the constant baseline in every run, so the ratios compare across runs).
set -euo pipefail
cd "$(dirname "$0")/.."
for profile in release release-fat release-thin-cgu16; do
  cargo build --profile "$profile" --workspace --bins --quiet
  dir=target/$profile
  echo "== $profile =="
  "$dir/switchyard-bench" --bin-dir "$dir" --out "bench/results/lto-$profile" "$@" 2>/dev/null | tail -8
done
