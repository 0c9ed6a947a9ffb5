#!/usr/bin/env bash
# `make dev`: builds Switchyard and runs a working gateway on embedded defaults: two mock
# providers (Mock A and Mock B, each its own process, each scriptable on its own), the control
# plane (SQLite under $SWITCHYARD_DATA_DIR) and one dataplane. Stays in the foreground until
# Ctrl-C. No Redis or PostgreSQL needed.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR="${SWITCHYARD_DATA_DIR:-$PWD/.data}"
mkdir -p "$DATA_DIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
LOGS="$DATA_DIR/logs"
mkdir -p "$LOGS"

# First free port at or after $1.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}
GATEWAY_PORT=$(free_port "${SWITCHYARD_PORT:-8080}")
# The other ports: the first free ones from the defaults, unless given (the e2e test gives them,
# as a port seen free here can still be taken before it is bound on a busy machine).
CP_HTTP_PORT=${SWITCHYARD_DEV_CP_HTTP_PORT:-$(free_port 8081)}
[ "$CP_HTTP_PORT" = "$GATEWAY_PORT" ] && CP_HTTP_PORT=$(free_port $((GATEWAY_PORT + 1)))
CP_GRPC_PORT=${SWITCHYARD_DEV_CP_GRPC_PORT:-$(free_port 50051)}
CP_ADMIN_PORT=${SWITCHYARD_DEV_CP_ADMIN_PORT:-$(free_port $((CP_GRPC_PORT + 1)))}
MOCK_PORT=${SWITCHYARD_DEV_MOCK_PORT:-$(free_port 9000)}
MOCK_B_PORT=${SWITCHYARD_DEV_MOCK_B_PORT:-$(free_port $((MOCK_PORT + 1)))}

# SWITCHYARD_DEV_NO_BUILD=1 runs the binaries already built (the e2e test does: a cargo build
# under the test runner's environment would redo the workspace's build).
if [ -z "${SWITCHYARD_DEV_NO_BUILD:-}" ]; then
  echo "Building Switchyard (first build takes a few minutes)..."
  cargo build --workspace --bins --quiet
fi
BIN=target/debug

pids=()
stopping=
cleanup() {
  stopping=1
  trap - INT TERM EXIT
  echo
  echo "Stopping Switchyard..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

wait_http() { # url what
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "error: $2 did not come up; see $LOGS" >&2
  exit 1
}

MOCK_URL="http://127.0.0.1:$MOCK_PORT/v1"
MOCK_URL_B="http://127.0.0.1:$MOCK_B_PORT/v1"
"$BIN/switchyard-mock" --listen "127.0.0.1:$MOCK_PORT" --ttfb-ms 150 --inter-token-ms 20 \
  >"$LOGS/mock-a.log" 2>&1 &
pids+=($!)
"$BIN/switchyard-mock" --listen "127.0.0.1:$MOCK_B_PORT" --ttfb-ms 250 --inter-token-ms 25 \
  >"$LOGS/mock-b.log" 2>&1 &
pids+=($!)

SWITCHYARD_MOCK_URL="$MOCK_URL" SWITCHYARD_MOCK_URL_B="$MOCK_URL_B" \
  "$BIN/switchyard-controlplane" --data-dir "$DATA_DIR" \
  --http-listen "127.0.0.1:$CP_HTTP_PORT" --grpc-listen "127.0.0.1:$CP_GRPC_PORT" \
  --admin-listen "127.0.0.1:$CP_ADMIN_PORT" \
  >"$LOGS/controlplane.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$CP_HTTP_PORT/health" "the control plane"

# The dataplane's /metrics and /health/providers answer only to this token (kept in the data dir).
OPS_TOKEN_FILE="$DATA_DIR/ops.token"
# (od reads its 16 bytes and ends: no reader is cut off, which pipefail would count as failure.)
[ -s "$OPS_TOKEN_FILE" ] || (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$OPS_TOKEN_FILE")
SWITCHYARD_OPS_TOKEN=$(cat "$OPS_TOKEN_FILE") \
"$BIN/switchyard-dataplane" --data-dir "$DATA_DIR" --listen "127.0.0.1:$GATEWAY_PORT" \
  --control-plane "http://127.0.0.1:$CP_GRPC_PORT" \
  --control-plane-http "http://127.0.0.1:$CP_HTTP_PORT" --grace-period-secs 1 \
  >"$LOGS/dataplane.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$GATEWAY_PORT/health/ready" "the dataplane"

CREDENTIALS="$DATA_DIR/controlplane/credentials.env"
if [ -f "$CREDENTIALS" ]; then
  # shellcheck disable=SC1090
  . "$CREDENTIALS"
else
  SWITCHYARD_MANAGEMENT_KEY="<shown at first start; delete $DATA_DIR to start afresh>"
  SWITCHYARD_INFERENCE_KEY="<shown at first start>"
fi

cat <<MSG

  Switchyard is running: one base URL for inference and management.

    gateway        http://127.0.0.1:$GATEWAY_PORT/api/v1
    console        http://127.0.0.1:$CP_HTTP_PORT/console (Activity; sign in with the management key)
    control plane  http://127.0.0.1:$CP_HTTP_PORT (REST), 127.0.0.1:$CP_GRPC_PORT (gRPC)
    operator API   http://127.0.0.1:$CP_ADMIN_PORT (swctl --server; token in $DATA_DIR/controlplane/operator.token)
    mock providers $MOCK_URL (Mock A), $MOCK_URL_B (Mock B)
    data           $DATA_DIR (logs in $LOGS)

  Paste these into another shell:

export OPENAI_BASE_URL=http://127.0.0.1:$GATEWAY_PORT/api/v1
export OPENAI_API_KEY=$SWITCHYARD_INFERENCE_KEY
export SWITCHYARD_MANAGEMENT_KEY=$SWITCHYARD_MANAGEMENT_KEY
export SWITCHYARD_MOCK_URL=$MOCK_URL
export SWITCHYARD_MOCK_URL_B=$MOCK_URL_B
export SWITCHYARD_OPS_TOKEN=$(cat "$OPS_TOKEN_FILE")

  Then try:

curl -s \$OPENAI_BASE_URL/chat/completions -H "Authorization: Bearer \$OPENAI_API_KEY" -H 'Content-Type: application/json' -d '{"model":"mock/fast","messages":[{"role":"user","content":"Hello"}]}'

  Models: mock/fast, mock/smart (two providers each), mock/free, mock/unpriced;
  mock/claude (Anthropic's format), mock/gemini (Gemini's), mock/azure (an Azure deployment),
  mock/embed (POST /embeddings), mock/rerank (POST /rerank). The same base URL serves
  /messages (Anthropic's SDK: base URL http://127.0.0.1:$GATEWAY_PORT/api), /responses and
  /completions.
  Press Ctrl-C to stop.
MSG

# Stay in the foreground; stop everything if any part exits.
wait -n "${pids[@]}" || true
[ -n "$stopping" ] || echo "a Switchyard process exited; see $LOGS" >&2
