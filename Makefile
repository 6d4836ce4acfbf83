# Switchback: `make run` starts the gateway with its example backends,
# `make test` runs every test, `make bench` prints the benchmark tables.
GO        ?= go
BIN       := bin
PKGS      := ./...
# Tests that need PostgreSQL or MariaDB read these and skip when unset;
# .ci/run sets both for the local servers.
export SWITCHBACK_TEST_POSTGRES
export SWITCHBACK_TEST_MYSQL

# `make fuzz` runs every Fuzz target of every package for FUZZTIME each;
# FUZZ=FuzzName narrows it to the targets whose names match.
FUZZTIME  ?= 30s
FUZZ      ?= .
# `make soak` runs the soak test (soak/) for SOAK.
SOAK      ?= 10m

.PHONY: build run test bench vet fmt clean fuzz soak

build:
	$(GO) build -o $(BIN)/switchback ./cmd/switchback
	$(GO) build -o $(BIN)/backend ./examples/backend/cmd/backend

# Starts blue (127.0.0.1:9001) and green (127.0.0.1:9002) example backends and
# the gateway on :8080 with the top-level Caddyfile; Ctrl-C stops all three.
run: build
	@./examples/run.sh

test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# go test runs one fuzz target at a time, so each runs on its own; a new
# func FuzzX in any _test.go is picked up without a change here.
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for target in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -d' ' -f2 | grep -E '$(FUZZ)'); do \
			echo "fuzz $$dir $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

# Three gateways on one etcd under steady load, flips, flag and pool
# changes, guard fallbacks and SSE clients for SOAK; fails when memory,
# goroutines, file descriptors, etcd keys or metric series keep growing.
soak:
	$(GO) run ./soak -duration $(SOAK)

# The load table pins the servers to one CPU and interleaves ROUNDS rounds
# (default 20) of REQUESTS requests (default 10000) per target; nginx gets a
# row when installed (apt-get install nginx-light). Best on a quiet machine.
bench: build
	@./bench/run.sh

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
