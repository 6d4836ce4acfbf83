#!/usr/bin/env bash
# Starts the example blue and green backends and the gateway in front of
# them; stops the backends when the gateway exits (Ctrl-C included).
set -euo pipefail
cd "$(dirname "$0")/.."

pids=()
stop() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop EXIT INT TERM

./bin/backend -listen 127.0.0.1:9001 -pool blue -release v1 & pids+=($!)
./bin/backend -listen 127.0.0.1:9002 -pool green -release v2 & pids+=($!)

echo "gateway: http://localhost:8080 (blue 127.0.0.1:9001, green 127.0.0.1:9002)"
./bin/switchback run --config Caddyfile --adapter caddyfile &
pids+=($!)
wait "${pids[-1]}"
