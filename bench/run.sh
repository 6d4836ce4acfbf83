#!/usr/bin/env bash
# make bench: micro-benchmarks of the hot path and the store as one table,
# then the load comparison (backend direct, plain reverse_proxy, switchback)
# against the same gateway binary.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Micro-benchmarks (go test -bench; ns/op is per call) =="
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" \
	./gateway/ ./caddymodule/ ./configstore/ ./migrate/ 2>&1 | go run ./bench/benchtab

echo
echo "== Load: same backend reached directly, through reverse_proxy, through switchback =="
go run ./bench/loadbench -bin bin/switchback "$@"
