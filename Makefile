# cn-relay-manager — the README's commands live here.
GO        ?= go
GOFLAGS   ?=
PKGS      := ./...
BIN       := bin

.PHONY: demo test test-short host-test deps build vet fmt-check fuzz bench clean

## demo: run the product's main job on embedded defaults against the built-in simulators
demo:
	$(GO) run ./cmd/api demo --exit

## test: everything CI runs (scripts/test.sh): deps, gofmt, vet, go test -race over every
## package, the pipeline suite on PostgreSQL, a short fuzz run; every stage runs even when
## one fails, and the last line is "N passed, N failed, N skipped"
test:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/test.sh

## host-test: the end-to-end suite against real sub2api hosts built from the backend source archive(s) named by CRM_SUB2API_SRC (a path or a glob); without one it says what it skipped and succeeds
host-test:
	@if [ -z "$(strip $(CRM_SUB2API_SRC))" ]; then \
		echo "host-test: skipped: CRM_SUB2API_SRC is not set (a path or glob of sub2api backend source archives)"; exit 0; fi; \
	found=""; for f in $(CRM_SUB2API_SRC); do if [ -f "$$f" ]; then found="$$found $$f"; fi; done; \
	if [ -z "$$found" ]; then echo "host-test: skipped: no sub2api source archive matches CRM_SUB2API_SRC=$(CRM_SUB2API_SRC)"; exit 0; fi; \
	echo "host-test: real sub2api hosts built from:$$found"; \
	CRM_SUB2API_SRC="$$found" $(GO) test -tags realhost -count=1 -p 1 -timeout 90m -v -run '^TestRealHost' ./internal/realhost/ ./internal/e2e/

## test-short: unit tests only
test-short:
	$(GO) test -short -count=1 $(PKGS)

## deps: install what the tests need on a fresh Debian/Ubuntu machine
deps:
	@scripts/deps.sh

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/api ./cmd/api
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/worker ./cmd/worker

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## fuzz: a short run of every fuzz target (longer: FUZZTIME=5m make fuzz; the default counts executions, which avoids a spurious "context deadline exceeded" of time-boxed fuzzing on busy machines)
FUZZTIME ?= 30000x
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

## bench: the benchmark of docs/perf.md (BENCH_ITEMS=1000 make bench)
BENCH_ITEMS ?= 200
bench:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/api ./cmd/worker ./cmd/crmsim ./cmd/crmctl
	$(BIN)/crmctl bench --items $(BENCH_ITEMS) --json

clean:
	rm -rf $(BIN) data
