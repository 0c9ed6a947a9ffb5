#!/usr/bin/env bash
# `make bench`: release build with the production profile, LiteLLM's proxy in a virtualenv of its
# own (pinned in bench/litellm-requirements.txt), then the side-by-side run.
# Extra arguments go to switchyard-bench (see `target/release/switchyard-bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nginx >/dev/null 2>&1 || { echo "bench needs nginx: apt-get install -y nginx-light" >&2; exit 1; }
command -v sqlite3 >/dev/null 2>&1 || { echo "bench needs sqlite3 (the propagation scenario fills the store): apt-get install -y sqlite3" >&2; exit 1; }
venv=bench/.litellm
if [ ! -f "$venv/.installed" ] || [ bench/litellm-requirements.txt -nt "$venv/.installed" ]; then
  if python3 -m venv "$venv" &&
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/litellm-requirements.txt; then
    touch "$venv/.installed"
  else
    echo "LiteLLM could not be installed; the bench runs without it" >&2
  fi
fi
litellm=()
[ -f "$venv/.installed" ] && litellm=(--litellm "$venv/bin/litellm")
cargo build --release --workspace --bins
exec target/release/switchyard-bench "${litellm[@]}" "$@"
