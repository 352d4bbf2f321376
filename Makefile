# Switchyard. `make run` starts the demo switch; `make test` runs every test.
GO      ?= go
BIN     := bin/switchyard
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/switchyard/switchyard/internal/cli.Version=$(VERSION)
# Fuzz budgets are execution counts, not durations: a duration races the Go 1.26 fuzz
# coordinator's deadline (golang/go#75804) and fails spuriously on a loaded machine.
FUZZTIME ?= 300000x
FUZZTIME_HSM ?= 100000x
FUZZTIME_WAL ?= 20000x
FUZZTIME_CUP ?= 100000x # FuzzCUPProcess runs the whole adapter, some ten times slower a body
BENCHTIME ?= 30s

.PHONY: build install run test tidy-check fuzz bench bench-faults bench-go vet fmt clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/switchyard

## install: switchyard on your PATH, in $(go env GOBIN) or else $(go env GOPATH)/bin
install:
	$(GO) install -ldflags "$(LDFLAGS)" ./cmd/switchyard

## run: the demo switch on the embedded default (Badger under ./data)
run: build
	./$(BIN) serve --demo --data ./data --log-format console $(RUN_ARGS)

## test: go.mod tidy, vet, unit and integration tests under the race detector, the
## 3-node cluster tests (subprocesses; skipped under -race, run once more without it, the
## four at once: they mostly wait), the JetStream smoke test's atomic batch step (a race
## inside nats-server's batch apply fails it under -race), the long one-goroutine
## computations (NORACE_TESTS: skipped under -race, internal/racedetect), a brief fuzz of
## the decoders, the rule pack's tests. `make test RACE=` runs everything without -race.
RACE ?= -race
# Tests that run a long computation on one goroutine (the risk engine's fraud scenarios
# and its heap per card, the alerting rules' PromQL unit tests): some ten times slower
# under -race, where the detector has nothing to find; they skip there and run here
# without it, in full.
NORACE_TESTS := TestBenchScenarios|TestEngineHeapPerDistinctCard|TestRulesUnit
# The packages whose tests take longest, named first: go test starts the packages' runs
# in the order of its arguments (a repeat of ./... is dropped), -p of them at once, so
# the longest start first and the short ones fill in beside them, instead of the
# longest starting last and the run waiting on them alone.
SLOW_FIRST := ./switch/e2e/ ./switch/cluster/ ./switch/server/ ./switch/console/ ./bench/ \
	./switch/registry/ ./switch/cluster/cjournal/ ./switch/cup/
test: build tidy-check
	$(GO) vet ./...
	$(GO) test $(RACE) -count=1 -timeout 25m $(SLOW_FIRST) ./...
	$(GO) test -count=1 -parallel 4 -run '^TestCluster' ./switch/e2e/
	$(GO) test -count=1 -run '^TestSmoke$$' ./switch/cluster/jsbench/
	$(if $(RACE),$(GO) test -count=1 -run '^($(NORACE_TESTS))$$' ./risk/ ./switch/alerts/)
	$(MAKE) --no-print-directory fuzz
	@if [ -d rules ] && ls rules/*.yaml >/dev/null 2>&1; then ./$(BIN) rules test rules; fi

## tidy-check: fail when `go mod tidy` would change go.mod or go.sum
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy" >&2; exit 1; }

## fuzz: each fuzz target for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./switch/message
	$(GO) test -run '^$$' -fuzz '^FuzzCUPDecode$$' -fuzztime $(FUZZTIME) ./switch/cup
	$(GO) test -run '^$$' -fuzz '^FuzzCUPProcess$$' -fuzztime $(FUZZTIME_CUP) ./switch/cup
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./switch/qr
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME_WAL) ./switch/journal/wal
	@for t in $$($(GO) test -list '^Fuzz' ./hsm/... 2>/dev/null | grep '^Fuzz'); do \
		pkg=$$(grep -rl "func $$t(" hsm --include=*_test.go | head -1 | xargs dirname); \
		echo "fuzz $$pkg $$t"; \
		$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME_HSM) ./$$pkg || exit 1; \
	done

## bench: load the demo switch with a simulated fleet and compare it with a plain relay
bench: build
	./$(BIN) bench --duration $(BENCHTIME)

## bench-faults: the fault bench (issuer drops, late answers and an outage, a kill -9 of the switch; ~2.5 min)
bench-faults: build
	./$(BIN) bench --faults

## bench-go: the Go micro-benchmarks
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w .

clean:
	rm -rf bin data bench/results
