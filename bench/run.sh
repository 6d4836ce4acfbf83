#!/usr/bin/env bash
# make bench: every benchmark, as tables.
#  1. the hot path and the store (go test -bench; ns/op is per call), with
#     what switchback allocates per request beyond Caddy's reverse_proxy
#  2. gateway instances: real processes on real etcd (propagation, flips
#     under load, fallback time, and fault to fallback with three instances
#     judging together or each alone: BenchmarkFleetFallback, and a release
#     rolled back whole: BenchmarkReleaseRollback)
#  3. load: gateway CPU per request for the backend reached directly, nginx
#     doing the same split (when installed), plain reverse_proxy and
#     switchback, pinned and interleaved, with the switchback/reverse_proxy
#     ratio's 95% interval
#  4. OFREP: flag evaluation for OpenFeature clients (handler, HTTP on
#     127.0.0.1, and a kill seen by the web provider; the last needs
#     `npm ci` in ofrep/testdata/node)
#  5. drills: `switchback drill all` in the sandbox, both triggers: each
#     pattern's trigger to recovered as clients see it
set -euo pipefail
cd "$(dirname "$0")/.."

# The database benchmarks use the local servers; set these to use others.
export SWITCHBACK_TEST_POSTGRES="${SWITCHBACK_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
export SWITCHBACK_TEST_MYSQL="${SWITCHBACK_TEST_MYSQL:-root@tcp(127.0.0.1:3306)/test}"

echo "== 1. Hot path, store, migrations =="
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" \
	./gateway/ ./guard/ ./caddymodule/ ./configstore/ 2>&1 | go run ./bench/benchtab
go test -run '^$' -bench . -benchtime 1x -timeout 20m ./migrate/ 2>&1 | go run ./bench/benchtab
# The allocation budget as a test (without -race, which changes what
# allocates): every variant, guarded or not, against reverse_proxy.
echo
if out=$(go test -count=1 -run '^TestAllocsPerRequest$' -v ./caddymodule/ 2>&1); then
	echo "allocation budget (TestAllocsPerRequest): met"
else
	echo "allocation budget (TestAllocsPerRequest): MISSED"
fi
grep -E 'allocs/request|want at most' <<<"$out" | sed -e 's/^ *alloc_test.go:[0-9]*: /  /'

echo
echo "== 2. Gateway instances (separate processes, embedded etcd) =="
go test -run '^$' -bench . -benchtime 1x -timeout 10m ./e2e/ 2>&1 | go run ./bench/benchtab

echo
echo "== 2b. Service configuration delivery (admin API on 127.0.0.1, embedded etcd) =="
go test -run '^$' -bench . -benchtime "${CONFIG_ROUNDS:-5}x" -timeout 10m ./configclient/ 2>&1 | go run ./bench/benchtab

echo
echo "== 3. Load: gateway CPU per request, direct vs nginx vs reverse_proxy vs switchback =="
go run ./bench/loadbench -bin bin/switchback -rounds "${ROUNDS:-20}" -requests "${REQUESTS:-10000}" "$@"

echo
echo "== 4. OFREP: single and bulk (10 flags) evaluation; a kill seen by the OpenFeature web provider =="
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" ./ofrep/ 2>&1 | go run ./bench/benchtab
go test -run '^$' -bench OFREPKillSeen -benchtime 3x -timeout 5m ./caddymodule/ 2>&1 | go run ./bench/benchtab

echo
echo "== 5. Drills: switchback drill all in the sandbox (trigger to recovered, from the client's side) =="
start=$(date +%s%N)
bin/switchback drill all --no-record 2>/dev/null || echo "(a drill failed or was flagged)"
echo "whole run, sandbox start and teardown included: $((($(date +%s%N) - start) / 1000000)) ms"
