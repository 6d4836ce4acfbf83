# Switchback: `make run` starts the gateway with its example backends,
# `make test` runs every test, `make bench` prints the benchmark tables.
GO        ?= go
BIN       := bin
PKGS      := ./...
# Tests that need PostgreSQL or MariaDB read these and skip when unset;
# .ci/run sets both for the local servers.
export SWITCHBACK_TEST_POSTGRES
export SWITCHBACK_TEST_MYSQL

.PHONY: build run test bench vet fmt clean

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
