#!/usr/bin/env bash
# make bench: every benchmark, as tables.
#  1. the hot path and the store (go test -bench; ns/op is per call)
#  2. gateway instances: real processes on real etcd (propagation, flips
#     under load, fallback time)
#  3. load: the same backend reached directly, through plain reverse_proxy
#     and through switchback, against the same binary
#  4. OFREP: flag evaluation for OpenFeature clients (handler, HTTP on
#     127.0.0.1, and a kill seen by the web provider; the last needs
#     `npm ci` in ofrep/testdata/node)
set -euo pipefail
cd "$(dirname "$0")/.."

# The database benchmarks use the local servers; set these to use others.
export SWITCHBACK_TEST_POSTGRES="${SWITCHBACK_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
export SWITCHBACK_TEST_MYSQL="${SWITCHBACK_TEST_MYSQL:-root@tcp(127.0.0.1:3306)/test}"

echo "== 1. Hot path, store, migrations =="
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" \
	./gateway/ ./guard/ ./caddymodule/ ./configstore/ 2>&1 | go run ./bench/benchtab
go test -run '^$' -bench . -benchtime 1x -timeout 20m ./migrate/ 2>&1 | go run ./bench/benchtab

echo
echo "== 2. Gateway instances (separate processes, embedded etcd) =="
go test -run '^$' -bench . -benchtime 1x -timeout 10m ./e2e/ 2>&1 | go run ./bench/benchtab

echo
echo "== 3. Load: backend direct vs reverse_proxy vs switchback (same binary) =="
go run ./bench/loadbench -bin bin/switchback -rounds 5 -requests 30000 "$@"

echo
echo "== 4. OFREP: single and bulk (10 flags) evaluation; a kill seen by the OpenFeature web provider =="
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" ./ofrep/ 2>&1 | go run ./bench/benchtab
go test -run '^$' -bench OFREPKillSeen -benchtime 3x -timeout 5m ./caddymodule/ 2>&1 | go run ./bench/benchtab
